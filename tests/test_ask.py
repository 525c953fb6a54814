"""Asking: hybrid retrieval, cited extractive answers, abstention, follow-ups, the JSON contract."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qa import ABSTENTION, IndexEmpty, InvalidInput, InvalidQuestion, QAService, source_text
from qa._models import ChatTurn

from conftest import REPO, SEED_FILE, SEEDS

MISSILES = "How many anti-ballistic missiles will encompass Russia?"


def _check_contract(response: dict, folder: Path) -> None:
    """Every [n] resolves to a citation, and every cited text is the file's text at its span."""
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", response["answer"])}
    numbers = {c["n"] for c in response["citations"]}
    assert markers == numbers
    for citation in response["citations"]:
        text = source_text(folder / citation["doc"])
        assert text[citation["start"] : citation["end"]] == citation["text"]
        if citation.get("quote_start") is not None:
            assert citation["start"] <= citation["quote_start"] < citation["quote_end"] <= citation["end"]
    for paragraph in response["retrieved"]:
        text = source_text(folder / paragraph["doc"])
        assert text[paragraph["start"] : paragraph["end"]] == paragraph["text"]


def test_answer_cites_the_paragraph_that_says_it(seeded_service: QAService) -> None:
    response = seeded_service.ask(MISSILES)
    assert not response.abstained
    assert "four hundred anti-ballistic missiles" in response.answer
    assert response.answer.endswith("[1]")
    (citation,) = response.citations
    assert (citation.doc, citation.paragraph) == (SEED_FILE.name, 6)
    quote = SEED_FILE.read_text(encoding="utf-8")[citation.quote_start : citation.quote_end]
    assert quote in response.answer
    _check_contract(response.model_dump(), SEEDS)


def test_answer_is_at_most_two_sentences_and_sixty_words(seeded_service: QAService) -> None:
    for question in (MISSILES, "What does Russia fear about the Aegis missile defense system in Japan?",
                     "What did the Russian diplomat say about security measures?"):
        response = seeded_service.ask(question)
        assert len(response.answer.split()) <= 60
        assert len(re.findall(r"\[\d+\]", response.answer)) <= 2


def test_unanswerable_question_abstains_with_related_not_citations(seeded_service: QAService) -> None:
    response = seeded_service.ask("What is the boiling point of mercury in Celsius?")
    assert response.abstained
    assert response.answer == ABSTENTION
    assert response.citations == [] and "[" not in response.answer
    assert response.related and response.related[0].doc == SEED_FILE.name


def test_follow_up_is_read_with_the_earlier_question(seeded_service: QAService) -> None:
    history = [ChatTurn(role="user", content="What did South Korea deploy that Russia condemned?"),
               ChatTurn(role="assistant", content="The THAAD system. [1]")]
    response = seeded_service.ask("And where in the US have such shields been placed?", history)
    assert "South Korea" in response.standalone_question
    assert not response.abstained
    assert "California and Alaska" in response.answer


def test_hybrid_retrieval_ranks_the_keyword_paragraph_first(seeded_service: QAService) -> None:
    response = seeded_service.ask("THAAD South Korea Beijing condemned", k=3)
    assert response.retrieved[0].paragraph == 5
    assert len(response.retrieved) == 3
    assert set(response.timings) >= {"embed", "retrieve", "answer", "total"}


@pytest.mark.parametrize("question", ["", "   \n\t ", "x" * 2001])
def test_bad_questions_are_refused(seeded_service: QAService, question: str) -> None:
    with pytest.raises(InvalidQuestion):
        seeded_service.ask(question)


def test_k_out_of_range_is_refused(seeded_service: QAService) -> None:
    with pytest.raises(InvalidInput, match="k must be"):
        seeded_service.ask(MISSILES, k=0)


def test_empty_index_says_so(service: QAService) -> None:
    with pytest.raises(IndexEmpty, match="qa ingest"):
        service.ask(MISSILES)


def _qa(*args: str, index_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir)}
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("cli") / "index"
    assert _qa("ingest", str(SEEDS), index_dir=index_dir).returncode == 0
    return index_dir


def test_cli_ask_json_contract(cli_index: Path) -> None:
    result = _qa("ask", MISSILES, "--json", index_dir=cli_index)
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert set(response) >= {"answer", "abstained", "citations", "retrieved", "timings"}
    assert response["abstained"] is False
    citation = response["citations"][0]
    assert set(citation) >= {"n", "doc", "title", "paragraph", "start", "end", "text", "quote_start", "quote_end"}
    assert all("score" in p for p in response["retrieved"])
    _check_contract(response, SEEDS)


def test_cli_history_file_for_follow_ups(cli_index: Path, tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    history.write_text(json.dumps([{"role": "user", "content": "What did South Korea deploy?"}]), encoding="utf-8")
    result = _qa("ask", "Who condemned it besides Russia?", "--json", "--history", str(history), index_dir=cli_index)
    assert result.returncode == 0, result.stderr
    assert "Beijing" in json.loads(result.stdout)["answer"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", ""], "question is empty"),
        (["ask", "   "], "question is empty"),
        (["ask", "y" * 2001], "limit is 2000"),
        (["ask", "anything", "--history", "/nonexistent/history.json"], "cannot read the history file"),
        (["eval", "/nonexistent/questions.jsonl"], "cannot read"),
    ],
)
def test_cli_bad_input_is_one_clear_line(cli_index: Path, args: list[str], message: str) -> None:
    result = _qa(*args, index_dir=cli_index)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_bad_history_file(cli_index: Path, tmp_path: Path) -> None:
    history = tmp_path / "h.json"
    history.write_text('{"not": "a list"}', encoding="utf-8")
    result = _qa("ask", "anything", "--history", str(history), index_dir=cli_index)
    assert result.returncode == 2 and "is not a conversation" in result.stderr
