"""Hybrid retrieval over paragraphs: dense (Chroma) + BM25 candidates, then a re-scorer.

Written against llama-index's ``BaseRetriever`` so it composes with its query
engines. The candidate pool is the union of the best paragraphs by dense
similarity and by BM25 (a chunk of two merged paragraphs proposes both; the
pieces of a split paragraph count once, at the best piece). Every candidate
then gets all of its signals, including the ones the other retriever did not
supply (its stored vector, its BM25 score), and is ranked by a weighted sum of:

- its cosine similarity, and its dense and BM25 ranks as reciprocal-rank terms;
- how strongly its *article* matches: the best cosine of the article's
  candidates, and article-level BM25 (title once, then every paragraph);
- how much of the question it covers: IDF-weighted question terms in the
  paragraph (title included), and in its best single sentence.

The article signals are what plain paragraph retrieval lacks: a news
paragraph often answers without naming its subject, which only the title or
the lead paragraph names. The weights are settings ([retrieval] weight_*),
fitted on the tuning halves of the evaluation sets (see README, "Retrieval").
Ours, because neither llama-index's fusion retrievers nor Chroma score
paragraphs with article context.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from qa._config import RetrievalSettings
from qa._keyword import KeywordIndex, parse_paragraph_numbers
from qa._models import ArticleRecord, Paragraph, RetrievedParagraph
from qa._store import ChromaIndex
from qa._text import sentence_term_sets, terms


@dataclass(frozen=True)
class IndexSnapshot:
    """One consistent view of the index: queries read it, ingest replaces it whole."""

    generation: str
    records: dict[str, ArticleRecord]
    keyword: KeywordIndex
    embedding_model: str | None = None  # whose vectors the index holds

    @classmethod
    def of(cls, generation: str, records: dict[str, ArticleRecord], keyword: KeywordIndex,
           embedding_model: str | None = None) -> "IndexSnapshot":
        return cls(generation, records, keyword, embedding_model)

    @functools.cached_property
    def paragraph_count(self) -> int:
        # Counted when first asked (the chat's library), not at every commit: 0.12 s at 1M paragraphs.
        return sum(len(r.paragraphs) for r in self.records.values())


@dataclass
class Candidate:
    """A retrieved paragraph with the signals the answerer and the abstention use."""

    record: ArticleRecord
    paragraph: Paragraph
    score: float = 0.0  # the re-scorer's
    dense: float = 0.0  # best cosine similarity of its chunks to the query
    keyword: float = 0.0  # best BM25 score of its chunks
    chunk_ids: set[str] = field(default_factory=set)
    dense_rank: int | None = None  # among the dense candidates, 1-based
    keyword_rank: int | None = None

    def public(self) -> RetrievedParagraph:
        return RetrievedParagraph(
            doc=self.record.doc,
            article_id=self.record.article_id,
            title=self.record.title,
            paragraph=self.paragraph.number,
            start=self.paragraph.start,
            end=self.paragraph.end,
            text=self.paragraph.text,
            section=self.paragraph.section,
            score=round(self.score, 6),
        )


class HybridRetriever(BaseRetriever):
    def __init__(self, index: ChromaIndex, embedder, snapshot: IndexSnapshot,
                 settings: RetrievalSettings) -> None:
        super().__init__()
        self._index = index
        self._embedder = embedder
        self._snapshot = snapshot
        self._settings = settings

    def candidates(self, query: str, k: int, query_vector: np.ndarray | None = None,
                   context_terms: tuple[str, ...] = ()) -> list[Candidate]:
        """The ``k`` best paragraphs for ``query``, best first.

        ``context_terms`` are terms a follow-up borrowed from earlier turns; in the coverage
        signals they count 0.3, as in the answerer.
        """
        if query_vector is None:
            query_vector = self._embedder.embed([query])[0]
        query_terms = terms(query)
        pool = self._pool(query_vector, query_terms, max(self._settings.candidates, k))
        if not pool:
            return []
        self._complete_signals(pool, query_vector, query_terms)
        self._rescore(pool, query_terms, set(context_terms))
        return sorted(pool, key=lambda c: c.score, reverse=True)[:k]

    def _pool(self, query_vector: np.ndarray, query_terms: list[str], n: int) -> list[Candidate]:
        records = self._snapshot.records
        pool: dict[tuple[str, int], Candidate] = {}

        def candidate(record: ArticleRecord, number: int) -> Candidate | None:
            key = (record.article_id, number)
            if key not in pool and 0 < number <= len(record.paragraphs):
                pool[key] = Candidate(record, record.paragraphs[number - 1])
            return pool.get(key)

        dense_ranked = 0
        for chunk_id, cosine, meta in self._index.dense_search(query_vector, n):
            record = records.get(meta.get("article_id"))
            if record is None or meta.get("content_hash") != record.content_hash:
                continue  # a chunk of an article version this snapshot does not have committed
            for number in parse_paragraph_numbers(meta["paragraphs"]):
                if (found := candidate(record, number)) is None:
                    continue
                found.chunk_ids.add(chunk_id)
                found.dense = max(found.dense, cosine)
                if found.dense_rank is None:  # hits come best first: the first piece is the best
                    dense_ranked += 1
                    found.dense_rank = dense_ranked

        keyword_ranked = 0
        for ref, score in self._snapshot.keyword.search(query_terms, n):
            record = records.get(ref.article_id)
            if record is None or ref.content_hash != record.content_hash:
                continue
            for number in ref.paragraph_numbers:
                if (found := candidate(record, number)) is None:
                    continue
                found.chunk_ids.add(ref.chunk_id)
                found.keyword = max(found.keyword, score)
                if found.keyword_rank is None:
                    keyword_ranked += 1
                    found.keyword_rank = keyword_ranked
        return list(pool.values())

    def _complete_signals(self, pool: list[Candidate], query_vector: np.ndarray,
                          query_terms: list[str]) -> None:
        """Give each candidate the signal the retriever that did not propose it would have."""
        unscored = [c for c in pool if c.keyword_rank is None]
        scores = self._snapshot.keyword.chunk_scores(query_terms, {i for c in unscored for i in c.chunk_ids})
        for found in unscored:
            found.keyword = max((scores[i] for i in found.chunk_ids if i in scores), default=0.0)
        missing = [c for c in pool if c.dense_rank is None]
        vectors = self._index.chunk_vectors(sorted({i for c in missing for i in c.chunk_ids}))
        for found in missing:
            found.dense = max((float(vectors[i] @ query_vector) for i in found.chunk_ids if i in vectors),
                              default=0.0)
        # Outsiders rank where their score would put them among the ranked ones.
        dense_ranked = sorted((c.dense for c in pool if c.dense_rank is not None), reverse=True)
        keyword_ranked = sorted((c.keyword for c in pool if c.keyword_rank is not None), reverse=True)
        for found in pool:
            if found.dense_rank is None:
                found.dense_rank = 1 + sum(1 for d in dense_ranked if d > found.dense)
            if found.keyword_rank is None:
                found.keyword_rank = 1 + sum(1 for s in keyword_ranked if s > found.keyword)

    def _rescore(self, pool: list[Candidate], query_terms: list[str], context_terms: set[str]) -> None:
        settings = self._settings
        keyword = self._snapshot.keyword
        article_keyword = keyword.article_scores(query_terms, {c.record.article_id for c in pool})
        article_dense: dict[str, float] = {}
        for found in pool:
            article_id = found.record.article_id
            article_dense[article_id] = max(article_dense.get(article_id, -1.0), found.dense)
        weights = {t: keyword.idf(t) * (0.3 if t in context_terms else 1.0) for t in set(query_terms)}
        total = sum(weights.values()) or 1.0
        title_terms: dict[str, set[str]] = {}
        for found in pool:
            article_id = found.record.article_id
            if article_id not in title_terms:
                title_terms[article_id] = set(terms(found.record.title))
            title = title_terms[article_id]
            sentences = sentence_term_sets(found.paragraph.text)
            in_paragraph = title.union(*sentences)
            paragraph_coverage = sum(w for t, w in weights.items() if t in in_paragraph) / total
            sentence_coverage = max(
                sum(w for t, w in weights.items() if t in title or t in sentence) for sentence in sentences
            ) / total
            found.score = (
                settings.weight_dense * found.dense
                + settings.weight_dense_rank * settings.rrf_k / (settings.rrf_k + found.dense_rank)
                + settings.weight_keyword_rank * settings.rrf_k / (settings.rrf_k + found.keyword_rank)
                + settings.weight_article_dense * article_dense[article_id]
                + settings.weight_article_keyword * article_keyword.get(article_id, 0.0)
                + settings.weight_paragraph_coverage * paragraph_coverage
                + settings.weight_sentence_coverage * sentence_coverage
            )

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [
            NodeWithScore(
                node=TextNode(
                    id_=f"{c.record.article_id}#{c.paragraph.number}",
                    text=c.paragraph.text,
                    metadata=c.public().model_dump(exclude={"text", "score"}),
                ),
                score=c.score,
            )
            for c in self.candidates(query_bundle.query_str, self._settings.top_k)
        ]
