"""The re-scorer: article context, complete signals for every candidate, one cited paragraph."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa import QAService
from qa._condense import condense
from qa._models import ChatTurn
from qa._retrieval import HybridRetriever
from qa._text import terms
from tests.conftest import make_settings

ACME = """Acme Widgets reports record year

Acme Widgets, the Leeds-based maker of garden tools, has reported its best year since it was founded in 1921.

The firm said profits rose to £12m, helped by a hot summer and strong sales of hosepipes.

Its chief executive said the company would open two more factories next spring.
"""

BOLTON = """Bolton Brickworks warns on costs

Bolton Brickworks, the family-owned builder's supplier, has warned that energy bills are squeezing margins.

The firm said profits rose to £3m, less than analysts had hoped for.

Its chairman said prices would have to rise in the new year.
"""


def _service(tmp_path: Path, **sections) -> QAService:
    articles = tmp_path / "articles"
    articles.mkdir(exist_ok=True)
    (articles / "acme.txt").write_text(ACME, encoding="utf-8")
    (articles / "bolton.txt").write_text(BOLTON, encoding="utf-8")
    service = QAService(make_settings(tmp_path, **sections))
    service.ingest([articles])
    return service


def test_the_article_a_question_names_decides_between_look_alike_paragraphs(tmp_path: Path) -> None:
    # Both "The firm said profits rose to ..." paragraphs match the question equally well;
    # only the lead paragraphs of their articles say which firm is meant (not the titles,
    # which every chunk carries as context).
    service = _service(tmp_path)
    for firm, doc in (("Acme Widgets", "acme.txt"), ("Bolton Brickworks", "bolton.txt")):
        response = service.ask(f"How much profit did {firm} make?", retrieve=8)
        ranked = [(p.doc, p.paragraph) for p in response.retrieved]
        other = "bolton.txt" if doc == "acme.txt" else "acme.txt"
        assert ranked.index((doc, 3)) < ranked.index((other, 3))
        assert ranked[0][0] == doc
        assert not response.abstained
        assert [c.doc for c in response.citations] == [doc]


def test_every_candidate_carries_both_signals(tmp_path: Path) -> None:
    # A paragraph proposed by only one retriever must still get the other's signal: the
    # cosine of its stored vector, its BM25 score, and a rank in both lists.
    service = _service(tmp_path, retrieval={"candidates": 2})
    snapshot = service.snapshot()
    retriever = HybridRetriever(service.index, service.embedder, snapshot, service.settings.retrieval)
    question = condense("Which company will open two more factories next spring?", None)
    vector = service.embedder.embed([question.standalone])[0]
    found = retriever.candidates(question.standalone, 6, vector)
    assert len(found) == 6
    # Every chunk's BM25 score, from a search of the whole index (a chunk it does not return scores 0).
    bm25 = {ref.chunk_id: score for ref, score in snapshot.keyword.search(terms(question.standalone),
                                                                           len(snapshot.keyword))}
    for candidate in found:
        assert candidate.dense_rank is not None and candidate.keyword_rank is not None
        vectors = service.index.chunk_vectors(sorted(candidate.chunk_ids))
        assert abs(candidate.dense - max(float(v @ vector) for v in vectors.values())) < 1e-4
        assert candidate.keyword == pytest.approx(max(bm25.get(i, 0.0) for i in candidate.chunk_ids))
    assert found[0].paragraph.text.startswith("Its chief executive")
    assert found == sorted(found, key=lambda c: c.score, reverse=True)


def test_follow_up_context_terms_weigh_less_than_the_question(tmp_path: Path) -> None:
    service = _service(tmp_path)
    history = [{"role": "user", "content": "How much profit did Bolton Brickworks make?"},
               {"role": "assistant", "content": "£3m. [1]"}]
    turns = [ChatTurn(**turn) for turn in history]
    response = service.ask("And what did its chairman say about prices?", turns)
    assert response.citations and response.citations[0].doc == "bolton.txt"
    assert "prices would have to rise" in response.answer


def test_no_question_word_is_a_search_term() -> None:
    # "Whose" was searched for as a word: for "Whose record did he overtake?" three of the top eight
    # paragraphs were there for their "whose" ("The rapper, whose real name…").
    assert terms("Whose record did he overtake, and whether he knew?") == ["record", "overtake", "knew"]
