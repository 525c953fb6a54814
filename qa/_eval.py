"""``qa eval``: run a question file through the service and score it.

Input lines: ``{"id", "question", "answers": [...], "doc"?, "also_docs"?, "history"?}``;
an empty ``answers`` list means the corpus does not answer the question. ``also_docs``
lists other files with a paragraph that answers it too (news corpora repeat stories):
a paragraph from any of them that contains a gold answer is a hit.

``gold_paragraphs`` (``[{"doc", "paragraph"}]``) names the paragraphs that answer it: then a hit is
one of those paragraphs. ``qa feedback --export`` writes such lines from the chat's thumbs-up
ratings. A thumbs-down line has no ``answers`` (nobody knows the right one yet) but a
``rejected_answer`` and its ``rejected_paragraphs``: it is not scored, only reported (is the
rejected answer still given?) as a question to look at.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from pydantic import BaseModel, ValidationError, model_validator

from qa._errors import InvalidInput, QAError
from qa._metrics import (
    contains_answer, exact_match, f1_score, first_hit_rank, hit_at, mean, normalize_answer, percentile,
    precision_recall_f1, reciprocal_rank,
)
from qa._models import AskResponse, ChatTurn
from qa._service import QAService

_MARKER = re.compile(r"\s*\[\d+\]")


class GoldParagraph(BaseModel):
    doc: str
    paragraph: int


class EvalQuestion(BaseModel):
    id: str
    question: str
    answers: list[str] | None = None
    doc: str | None = None
    also_docs: list[str] = []
    history: list[ChatTurn] | None = None
    gold_paragraphs: list[GoldParagraph] = []
    rejected_answer: str | None = None
    rejected_paragraphs: list[GoldParagraph] = []

    @model_validator(mode="after")
    def _answers_or_rejected(self) -> "EvalQuestion":
        if self.answers is None and self.rejected_answer is None:
            raise ValueError('"answers" is missing: list the right answers, [] when the articles do not answer it')
        return self

    @property
    def to_review(self) -> bool:
        """A rated-down question: no gold answer to score against, only the answer rejected."""
        return self.answers is None


def read_questions(path: Path) -> Iterator[EvalQuestion]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield EvalQuestion.model_validate_json(line)
        except ValidationError as exc:
            raise InvalidInput(f"{path}:{number} is not an evaluation question: {exc.errors()[0]['msg']}") from None


def answer_text(response: AskResponse) -> str:
    return _MARKER.sub("", response.answer).replace("…", " ").strip()


def review_metrics(question: EvalQuestion, response: AskResponse) -> dict:
    """For a rated-down question: whether the answer rejected is still the answer given."""
    rejected = _MARKER.sub("", question.rejected_answer or "").replace("…", " ")
    paragraphs = {(p.doc, p.paragraph) for p in question.rejected_paragraphs}
    return {
        "to_review": True,
        "abstained": response.abstained,
        "same_answer": normalize_answer(answer_text(response)) == normalize_answer(rejected),
        "same_paragraphs": {(c.doc, c.paragraph) for c in response.citations} == paragraphs,
        "latency_ms": response.timings.get("total", 0.0),
    }


def question_metrics(question: EvalQuestion, response: AskResponse, k: int) -> dict:
    if question.to_review:
        return review_metrics(question, response)
    answers = question.answers or []
    answerable = bool(answers)
    gold_docs = {question.doc, *question.also_docs} if question.doc else None
    gold_paragraphs = {(p.doc, p.paragraph) for p in question.gold_paragraphs}
    if not answerable:
        rank = None
    elif gold_paragraphs:
        rank = next((rank for rank, p in enumerate(response.retrieved[:k], 1)
                     if (p.doc, p.paragraph) in gold_paragraphs), None)
    else:
        rank = first_hit_rank([(p.doc, p.text) for p in response.retrieved[:k]], gold_docs, answers)
    predicted = "" if response.abstained else answer_text(response)
    cited_ok = [contains_answer(c.text, answers) or (c.doc, c.paragraph) in gold_paragraphs
                for c in response.citations] if answerable else []
    return {
        "answerable": answerable,
        "abstained": response.abstained,
        "hit_rank": rank,
        "hit@1": hit_at(rank, 1),
        "hit@5": hit_at(rank, 5),
        "hit@10": hit_at(rank, 10),
        "rr@10": reciprocal_rank(rank, 10),
        "contains": float(answerable and not response.abstained and contains_answer(predicted, answers)),
        "em": exact_match(predicted, answers) if answerable else float(response.abstained),
        "f1": f1_score(predicted, answers) if answerable else float(response.abstained),
        "citations": len(response.citations),
        "citations_correct": sum(cited_ok),
        "latency_ms": response.timings.get("total", 0.0),
        **llm_metrics(response),
    }


def llm_metrics(response: AskResponse) -> dict:
    """What the citation check found, for answers the LLM path generated (kept or replaced)."""
    check = response.citation_check
    if check is None:
        return {}
    return {"llm_sentences": check.sentences, "llm_supported": check.supported,
            "citations_removed": check.removed_citations, "llm_fallback": check.fallback is not None}


@dataclass
class EvalRun:
    results: list[dict]
    summary: dict


def summarize(results: list[dict], k: int) -> dict:
    scored = [r["metrics"] for r in results if "metrics" in r]
    metrics = [m for m in scored if not m.get("to_review")]
    review = [m for m in scored if m.get("to_review")]
    answerable = [m for m in metrics if m["answerable"]]
    unanswerable = [m for m in metrics if not m["answerable"]]
    answered = [m for m in answerable if not m["abstained"]]
    abstained_right = sum(1 for m in unanswerable if m["abstained"])
    abstained_all = sum(1 for m in metrics if m["abstained"])
    precision, recall, f1 = precision_recall_f1(abstained_right, abstained_all, len(unanswerable))
    citations = sum(m["citations"] for m in answered)
    latencies = [m["latency_ms"] for m in scored]
    return {
        "questions": len(results),
        "errors": sum(1 for r in results if "error" in r),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "hit@1": mean([m["hit@1"] for m in answerable]),
        "hit@5": mean([m["hit@5"] for m in answerable]),
        "hit@10": mean([m["hit@10"] for m in answerable]),
        "mrr@10": mean([m["rr@10"] for m in answerable]),
        "answer_containment": mean([m["contains"] for m in answerable]),
        "exact_match": mean([m["em"] for m in answerable]),
        "f1": mean([m["f1"] for m in answerable]),
        "citation_precision": (sum(m["citations_correct"] for m in answered) / citations) if citations else 0.0,
        "abstention_precision": precision,
        "abstention_recall": recall,
        "abstention_f1": f1,
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        **summarize_llm(metrics),
        **summarize_review(review),
    }


def summarize_review(review: list[dict]) -> dict:
    """How many rated-down questions still get the answer that was rejected; nothing without any."""
    if not review:
        return {}
    return {
        "rated_down": len(review),
        "rated_down_same_answer": sum(1 for m in review if m["same_answer"]),
        "rated_down_same_paragraphs": sum(1 for m in review if m["same_paragraphs"]),
    }


def summarize_llm(metrics: list[dict]) -> dict:
    """The LLM path's share of answer sentences with a valid supporting citation (over every
    generated sentence, including those of answers the check replaced) and the number of
    citations the check removed; nothing when no answer was generated."""
    generated = [m for m in metrics if "llm_sentences" in m]
    if not generated:
        return {}
    sentences = sum(m["llm_sentences"] for m in generated)
    return {
        "llm_answers": len(generated),
        "llm_fallbacks": sum(1 for m in generated if m["llm_fallback"]),
        "supported_sentence_share": sum(m["llm_supported"] for m in generated) / sentences if sentences else 0.0,
        "citations_removed": sum(m["citations_removed"] for m in generated),
    }


_LABELS = [
    ("questions", "questions", "d"), ("answerable", "answerable", "d"), ("unanswerable", "unanswerable", "d"),
    ("errors", "errors", "d"), ("hit@1", "hit@1", ".3f"), ("hit@5", "hit@5", ".3f"), ("hit@10", "hit@10", ".3f"),
    ("mrr@10", "MRR@10", ".3f"), ("answer_containment", "answer containment", ".3f"),
    ("exact_match", "exact match (cited sentence)", ".3f"), ("f1", "F1 (cited sentence)", ".3f"),
    ("citation_precision", "citation precision", ".3f"), ("abstention_precision", "abstention precision", ".3f"),
    ("abstention_recall", "abstention recall", ".3f"), ("abstention_f1", "abstention F1", ".3f"),
    ("latency_p50_ms", "latency p50 (ms)", ".1f"), ("latency_p95_ms", "latency p95 (ms)", ".1f"),
    ("llm_answers", "LLM answers generated", "d"), ("llm_fallbacks", "LLM answers replaced by extractive", "d"),
    ("supported_sentence_share", "supported sentence share (LLM)", ".3f"),
    ("citations_removed", "citations removed by the check (LLM)", "d"),
    ("rated_down", "rated down (to look at)", "d"),
    ("rated_down_same_answer", "rated down, still the same answer", "d"),
    ("rated_down_same_paragraphs", "rated down, still citing the same paragraphs", "d"),
]


def summary_markdown(summary: dict) -> str:
    rows = ["| metric | value |", "|---|---|"]
    for key, label, fmt in _LABELS:
        if summary.get(key) is not None:
            rows.append(f"| {label} | {format(summary[key], fmt)} |")
    return "\n".join(rows) + "\n"


def run_eval(service: QAService, questions_file: Path, out_dir: Path, k: int = 10,
             progress: Callable[[int, int], None] | None = None) -> EvalRun:
    questions = list(read_questions(questions_file))
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    with (out_dir / "results.jsonl").open("w", encoding="utf-8") as handle:
        for done, question in enumerate(questions, 1):
            began = time.perf_counter()
            try:
                response = service.ask(question.question, question.history, retrieve=k)
            except QAError as exc:
                line = {"id": question.id, "question": question.question, "error": exc.message}
            else:
                response.timings.setdefault("total", round((time.perf_counter() - began) * 1000, 2))
                line = {
                    "id": question.id,
                    "question": question.question,
                    "response": response.model_dump(),
                    "metrics": question_metrics(question, response, k),
                }
            results.append(line)
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            if progress:
                progress(done, len(questions))
    summary = summarize(results, k)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out_dir / "summary.md").write_text(summary_markdown(summary), encoding="utf-8")
    return EvalRun(results, summary)
