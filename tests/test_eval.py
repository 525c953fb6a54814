"""``qa eval`` end to end on real text: a slice of SQuAD 2.0 with its Wikipedia paragraphs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SHARED_DATA

SQUAD = SHARED_DATA / "squad2-500"
DOCS = 40


@pytest.fixture(scope="module")
def squad_slice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The first DOCS paragraphs of the SQuAD sample, their questions, and an index of them."""
    root = tmp_path_factory.mktemp("squad")
    corpus = root / "corpus"
    corpus.mkdir()
    docs = sorted(p.name for p in (SQUAD / "corpus").glob("*.txt"))[:DOCS]
    for name in docs:
        shutil.copy(SQUAD / "corpus" / name, corpus / name)
    lines = [line for line in (SQUAD / "questions.jsonl").read_text(encoding="utf-8").splitlines()
             if json.loads(line)["doc"] in docs]
    questions = root / "questions.jsonl"
    questions.write_text("\n".join(lines) + "\n", encoding="utf-8")
    index_dir = root / "index"
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir)}
    subprocess.run([sys.executable, "-m", "qa.cli", "ingest", str(corpus)], cwd=REPO, env=env,
                   check=True, capture_output=True, timeout=300)
    return corpus, questions, index_dir


def test_eval_writes_results_and_summary(squad_slice: tuple[Path, Path, Path], tmp_path: Path) -> None:
    corpus, questions, index_dir = squad_slice
    out = tmp_path / "out"
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir)}
    result = subprocess.run([sys.executable, "-m", "qa.cli", "eval", str(questions), "--out", str(out)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| hit@5 |" in result.stdout and "| abstention F1 |" in result.stdout

    question_count = len(questions.read_text(encoding="utf-8").splitlines())
    results = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(results) == question_count
    first = results[0]
    assert set(first) == {"id", "question", "response", "metrics"}
    assert set(first["response"]) >= {"answer", "abstained", "citations", "retrieved", "timings"}
    assert len(first["response"]["retrieved"]) == 10

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["questions"] == question_count and summary["errors"] == 0
    assert summary["answerable"] + summary["unanswerable"] == question_count
    assert (out / "summary.md").read_text(encoding="utf-8").startswith("| metric | value |")
    # Real retrieval over real text: a broken ranker or a wrong hit definition falls far below these.
    assert summary["hit@5"] >= 0.9
    assert summary["mrr@10"] >= 0.8
    assert summary["citation_precision"] >= 0.8


def test_eval_rejects_a_malformed_question_file(squad_slice: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, index_dir = squad_slice
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "question": "q?", "answers": []}\n{"id": "2"}\n', encoding="utf-8")
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir)}
    result = subprocess.run([sys.executable, "-m", "qa.cli", "eval", str(bad), "--out", str(tmp_path / "o")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "bad.jsonl:2" in result.stderr and "Traceback" not in result.stderr
