"""The chat's 👍 / 👎 store (``qa._feedback``) and reading it back: ``qa feedback`` and ``qa eval``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SEED_FILE, SEEDS, make_settings
from qa import ChatTurn, IndexWriteError, InvalidInput, QAService
from qa._eval import EvalQuestion
from qa._feedback import (
    MAX_CITATIONS, MAX_EARLIER_QUESTIONS, MAX_LINE_BYTES, MAX_TEXT_CHARS, FeedbackCitation, FeedbackStore,
    evaluation_questions, latest_ratings, now,
)

SEED_QUESTION = "How many anti-ballistic missiles will encompass Russia?"
SEED_ANSWER_PHRASE = "four hundred anti-ballistic missiles will encompass Russia"
UNANSWERABLE = "What is the capital of France?"


def record(answer_id: str = "a1", rating: str = "up", **fields) -> dict:
    citation = {"n": 1, "article_id": "dcea2e0874f8fe18", "doc": "000.txt", "title": "Aegis", "paragraph": 6,
                "quote": "Around four hundred anti-ballistic missiles will encompass Russia."}
    return {"time": now(), "answer_id": answer_id, "rating": rating, "question": "How many missiles?",
            "earlier_questions": [], "answer": "Around four hundred. [1]", "abstained": False,
            "mode": "extractive", "citations": [citation], **fields}


def test_a_record_is_one_json_line_read_back_as_written(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "index")

    store.append(record("a1", "up"))
    store.append(record("a2", "down", earlier_questions=["Who deployed THAAD?"]))

    lines = store.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and all(json.loads(line)["answer_id"] for line in lines)
    read = store.read()
    assert read.skipped_lines == []
    assert [(r.answer_id, r.rating) for r in read.records] == [("a1", "up"), ("a2", "down")]
    assert read.records[1].earlier_questions == ["Who deployed THAAD?"]
    assert read.records[0].citations[0].paragraph == 6


APPENDER = """
import sys
from qa._feedback import FeedbackStore, now
store, worker, count, size = FeedbackStore(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
print("ready", flush=True)
sys.stdin.readline()  # both processes start appending on the same signal
for number in range(count):
    store.append({"time": now(), "answer_id": f"{worker}-{number}", "rating": "up", "question": f"q {number}?",
                  "answer": worker * size + str(number), "earlier_questions": [worker * size] * 15})
"""


def test_two_processes_appending_at_once_leave_only_whole_lines(tmp_path: Path) -> None:
    count, size = 150, 9_000  # lines of 150 kB, far over any size the kernel writes in one piece
    folder = tmp_path / "index"
    workers = [subprocess.Popen([sys.executable, "-c", APPENDER, str(folder), worker, str(count), str(size)],
                                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for worker in "xy"]
    for worker in workers:
        assert worker.stdout.readline().strip() == "ready"
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    for worker in workers:
        assert worker.wait(timeout=300) == 0

    read = FeedbackStore(folder).read()
    assert read.skipped_lines == []
    assert len(read.records) == 2 * count
    for item in read.records:
        worker, number = item.answer_id.split("-")
        assert item.answer == worker * size + number  # nothing of the other process inside it
        assert item.earlier_questions == [worker * size] * 15
    assert {r.answer_id for r in read.records} == {f"{w}-{n}" for w in "xy" for n in range(count)}


@pytest.mark.parametrize("bad", [
    {"rating": "sideways"},
    {"rating": ""},
    {"question": ""},
    {"question": "q" * (MAX_TEXT_CHARS + 1)},
    {"question": "\ud800 a lone surrogate?"},  # JSON can carry one; no UTF-8 file can
    {"answer": "a" * (MAX_TEXT_CHARS + 1)},
    {"earlier_questions": ["q?"] * (MAX_EARLIER_QUESTIONS + 1)},
    {"citations": [record()["citations"][0]] * (MAX_CITATIONS + 1)},
    {"citations": [{**record()["citations"][0], "quote": "x" * 2_001}]},
    {"citations": [{**record()["citations"][0], "paragraph": 0}]},
    {"answer_id": "../../etc"},
    {"answer_id": ""},
    {"time": "yesterday"},
    {"mode": "m" * 33},
    {"forged": "an extra field"},
])
def test_records_out_of_bounds_or_malformed_are_refused_and_nothing_is_written(tmp_path: Path, bad: dict) -> None:
    store = FeedbackStore(tmp_path)
    with pytest.raises(InvalidInput, match="not a feedback record"):
        store.append(record(**bad))
    assert not store.path.exists()


def test_a_record_within_every_field_bound_but_over_the_line_limit_is_refused(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    citation = {**record()["citations"][0], "quote": "q" * 2_000, "title": "t" * 1_000, "doc": "d" * 1_000}
    huge = record(earlier_questions=["e" * MAX_TEXT_CHARS] * MAX_EARLIER_QUESTIONS, answer="a" * MAX_TEXT_CHARS,
                  citations=[citation] * MAX_CITATIONS)
    with pytest.raises(InvalidInput, match=f"over the limit of {MAX_LINE_BYTES:,}"):
        store.append(huge)
    assert not store.path.exists()


def test_a_line_torn_by_a_crash_is_skipped_and_the_next_record_starts_a_line_of_its_own(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    store.append(record("a1"))
    with store.path.open("ab") as handle:
        handle.write(b'{"time": "2026-01-01T00:00:00Z", "answer_id": "torn", "rat')  # no end of line
    store.append(record("a2"))
    store.path.open("ab").write(b"\xff\xfe not json\n")

    read = store.read()
    assert [r.answer_id for r in read.records] == ["a1", "a2"]
    assert read.skipped_lines == [2, 4]


def test_a_folder_that_cannot_be_written_is_an_index_write_error(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    with pytest.raises(IndexWriteError, match="cannot write to the index folder"):
        FeedbackStore(blocked / "index").append(record())


def test_ratings_become_evaluation_questions_and_the_latest_rating_of_an_answer_counts() -> None:
    from qa._feedback import FeedbackRecord

    up = FeedbackRecord.model_validate(record("a1", "up", earlier_questions=["Who deployed THAAD?"]))
    changed = FeedbackRecord.model_validate(record("a2", "up"))
    changed_back = FeedbackRecord.model_validate(record("a2", "down"))
    abstained = FeedbackRecord.model_validate(record("a3", "up", abstained=True, citations=[],
                                                     answer="The indexed articles don't answer this question."))

    assert [r.answer_id for r in latest_ratings([up, changed, abstained, changed_back])] == ["a1", "a2", "a3"]
    lines = evaluation_questions([up, changed, abstained, changed_back])

    first, second, third = lines
    assert first["answers"] == ["Around four hundred anti-ballistic missiles will encompass Russia."]
    assert first["doc"] == "000.txt" and first["gold_paragraphs"] == [{"doc": "000.txt", "paragraph": 6}]
    assert first["history"] == [{"role": "user", "content": "Who deployed THAAD?"}]
    assert second["rating"] == "down" and "answers" not in second
    assert second["rejected_answer"] == "Around four hundred. [1]"
    assert second["rejected_paragraphs"] == [{"doc": "000.txt", "paragraph": 6}]
    assert third["answers"] == [] and "doc" not in third  # rated right to abstain: not answered by the articles
    # Every line is a question `qa eval` reads.
    for line in lines:
        EvalQuestion.model_validate(line)
    assert EvalQuestion.model_validate(second).to_review


def test_a_question_line_without_answers_or_a_rejected_answer_is_still_refused() -> None:
    with pytest.raises(ValueError, match='"answers" is missing'):
        EvalQuestion.model_validate({"id": "1", "question": "Who?"})


def test_a_citation_record_keeps_the_quoted_sentence_and_clips_a_long_one_at_a_word(seeded_service: QAService) -> None:
    citation = seeded_service.ask(SEED_QUESTION).citations[0]
    kept = FeedbackCitation.of(citation)
    assert SEED_ANSWER_PHRASE in kept.quote and kept.quote in citation.text
    assert (kept.doc, kept.paragraph, kept.article_id) == (SEED_FILE.name, 6, citation.article_id)

    long = citation.model_copy(update={"text": "word " * 1_000, "quote_start": None, "quote_end": None})
    clipped = FeedbackCitation.of(long).quote
    assert len(clipped) <= 2_000 and clipped.endswith("word") and clipped in long.text


# -- the command line ------------------------------------------------------------------------


def qa(*args: str, index_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir)}
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def rated_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed indexed in a temporary folder, with three ratings of real answers: the seed question
    👍, an unanswerable question's abstention 👍, and a follow-up 👎."""
    settings = make_settings(tmp_path_factory.mktemp("rated"))
    service = QAService(settings)
    service.ingest([SEEDS])
    store = FeedbackStore(settings.index.dir)
    for answer_id, question, rating, earlier in (("seed", SEED_QUESTION, "up", []),
                                                ("france", UNANSWERABLE, "up", []),
                                                ("followup", "Where have they already been placed?", "down",
                                                 [SEED_QUESTION])):
        history = [ChatTurn(role="user", content=q) for q in earlier]
        response = service.ask(question, history)
        store.append({"time": now(), "answer_id": answer_id, "rating": rating, "question": question,
                      "earlier_questions": earlier, "answer": response.answer, "abstained": response.abstained,
                      "mode": response.mode, "citations": [FeedbackCitation.of(c) for c in response.citations]})
    return settings.index.dir


def test_qa_feedback_lists_exports_and_qa_eval_reads_the_ratings(rated_index: Path, tmp_path: Path) -> None:
    listed = qa("feedback", index_dir=rated_index)
    assert listed.returncode == 0, listed.stderr
    assert f"👍  {SEED_QUESTION}  [{SEED_FILE.name} ¶6]" in listed.stdout
    assert f"👍  {UNANSWERABLE}  [abstained]" in listed.stdout
    assert "👎  Where have they already been placed?" in listed.stdout
    assert "3 rated answers: 2 👍, 1 👎" in listed.stdout

    exported = tmp_path / "rated.jsonl"
    result = qa("feedback", "--export", str(exported), index_dir=rated_index)
    assert result.returncode == 0, result.stderr
    assert "Wrote 3 questions" in result.stdout
    lines = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == ["feedback-seed", "feedback-france", "feedback-followup"]
    assert lines[0]["doc"] == SEED_FILE.name and lines[0]["gold_paragraphs"] == [{"doc": SEED_FILE.name, "paragraph": 6}]

    for args in (["eval", str(exported), "--out", str(tmp_path / "from-file")],
                 ["eval", "--feedback", "--out", str(tmp_path / "from-feedback")]):
        evaluated = qa(*args, index_dir=rated_index)
        assert evaluated.returncode == 0, evaluated.stderr
        assert "| rated down (to look at) | 1 |" in evaluated.stdout
        summary = json.loads((Path(args[-1]) / "summary.json").read_text(encoding="utf-8"))
        assert (summary["questions"], summary["answerable"], summary["unanswerable"]) == (3, 1, 1)
        # The same index answers the same way: the 👍 answer is found and quoted again, the
        # abstention repeated, and the 👎 answer is still the one given (so still to look at).
        assert summary["hit@1"] == 1.0 and summary["answer_containment"] == 1.0
        assert summary["citation_precision"] == 1.0 and summary["abstention_recall"] == 1.0
        assert summary["rated_down"] == 1 and summary["rated_down_same_answer"] == 1
    assert (tmp_path / "from-feedback" / "feedback-questions.jsonl").read_text(encoding="utf-8") == \
        exported.read_text(encoding="utf-8")

    as_json = qa("feedback", "--json", index_dir=rated_index)
    assert [json.loads(line)["answer_id"] for line in as_json.stdout.splitlines()] == ["seed", "france", "followup"]


def test_qa_feedback_and_eval_without_ratings_or_with_wrong_arguments_say_so(tmp_path: Path) -> None:
    empty = tmp_path / "index"
    listed = qa("feedback", index_dir=empty)
    assert listed.returncode == 0 and "0 rated answers" in listed.stdout

    for args, message in ((["feedback", "--export", str(tmp_path / "x.jsonl")], "no answers have been rated yet"),
                          (["eval", "--feedback", "--out", str(tmp_path / "o")], "no answers have been rated yet"),
                          (["eval", "--out", str(tmp_path / "o")], "give either a QUESTIONS file or --feedback"),
                          (["eval", str(tmp_path / "q.jsonl"), "--feedback"], "not both or neither")):
        result = qa(*args, index_dir=empty)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.jsonl").exists()
