"""Answer modes side by side (issue 14's table): extractive, the LLM writing the answer, and the
extractive answer judged by the LLM.

    make install-local-llm
    .venv/bin/python -m bench.llm_modes --index-dir /tmp/idx-bbc --backend local

The index must hold the BBC articles, the seed and the squad2-500 corpus (``qa ingest seeds
../shared/data/bbc ../shared/data/squad2-500/corpus``). Question sets: ``tests/data/bbc_dev.jsonl``
(its own tune/test halves) and every ``--squad-every``-th question of
``../shared/data/squad2-500/questions.jsonl`` (alternately tune and test). Every question is
asked in each mode through ``QAService.ask_stream`` (the path the API and the chat take), so the
time to the first streamed text is measured as a client sees it.

The judge runs once per question with its threshold at 0 (nothing withdrawn) and its verdict
kept; the judged mode at a threshold t is then the extractive answer, withdrawn when the verdict
is below t. t is chosen on the tune halves (best abstention F1 with answer containment no more
than 0.05 below the extractive one) and every figure printed is of the test halves, with the
extractive and written modes beside it, run in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from qa import QAService, load_settings
from qa._eval import EvalQuestion, question_metrics, read_questions, summarize
from qa._metrics import percentile
from qa._service import AnswerDelta, AnswerDone

REPO = Path(__file__).resolve().parent.parent
SQUAD = REPO.parent / "shared/data/squad2-500/questions.jsonl"
BBC = REPO / "tests/data/bbc_dev.jsonl"
THRESHOLDS = [round(0.05 * i, 2) for i in range(1, 20)]


@dataclass
class Asked:
    id: str
    split: str
    metrics: dict
    first_text_ms: float
    total_ms: float
    valid_citation: bool
    judge: float | None = None
    extra: dict = field(default_factory=dict)


def question_sets(squad_every: int) -> dict[str, list[tuple[EvalQuestion, str]]]:
    bbc_splits = {json.loads(line)["id"]: json.loads(line).get("split", "test")
                  for line in BBC.read_text(encoding="utf-8").splitlines() if line.strip()}
    squad = list(read_questions(SQUAD))[::squad_every]
    return {
        "squad2-500 + BBC": [(q, "tune" if i % 2 == 0 else "test") for i, q in enumerate(squad)],
        "BBC dev": [(q, bbc_splits[q.id]) for q in read_questions(BBC)],
    }


def ask(service: QAService, question: EvalQuestion, split: str, mode: str) -> Asked:
    began = time.perf_counter()
    first = None
    response = None
    for event in service.ask_stream(question.question, question.history, retrieve=10, mode=mode):
        if isinstance(event, AnswerDelta) and first is None:
            first = time.perf_counter()
        elif isinstance(event, AnswerDone):
            response = event.response
    total = time.perf_counter() - began
    metrics = question_metrics(question, response, 10)
    return Asked(question.id, split, metrics, ((first or time.perf_counter()) - began) * 1000, total * 1000,
                 bool(response.citations), response.judge.probability if response.judge else None,
                 {"notice": response.notice, "answered_as": response.mode})


def withdrawn(asked: Asked, threshold: float) -> dict:
    """The judged mode's metrics of a question at ``threshold``, from the extractive answer's."""
    metrics = dict(asked.metrics)
    if asked.judge is not None and asked.judge < threshold:
        metrics.update(abstained=True, contains=0.0, citations=0, citations_correct=0,
                       em=0.0 if metrics["answerable"] else 1.0, f1=0.0 if metrics["answerable"] else 1.0)
    return metrics


def summary_of(metrics: list[dict]) -> dict:
    return summarize([{"metrics": m} for m in metrics], 10)


def row(name: str, summary: dict, asked: list[Asked], metrics: list[dict]) -> str:
    answered = [m for m in metrics if not m["abstained"]]
    valid = sum(1 for m in answered if m["citations"]) / len(answered) if answered else 0.0
    firsts = [a.first_text_ms / 1000 for a in asked]
    totals = [a.total_ms / 1000 for a in asked]
    unsupported = 1 - summary["supported_sentence_share"] if "supported_sentence_share" in summary else None
    fallbacks = summary.get("llm_fallbacks")
    replaced = "—" if fallbacks is None else f"{fallbacks} of {summary['llm_answers']}"
    return (f"| {name} | {summary['answer_containment']:.3f} | {summary['citation_precision']:.3f} | {valid:.3f} | "
            f"{'—' if unsupported is None else f'{unsupported:.3f}'} | "
            f"{replaced} | "
            f"{summary['abstention_precision']:.3f} | {summary['abstention_recall']:.3f} | "
            f"{percentile(firsts, 50):.2f} / {percentile(firsts, 95):.2f} | "
            f"{percentile(totals, 50):.2f} / {percentile(totals, 95):.2f} |")


def choose_threshold(tune: list[Asked], extractive_containment: float) -> float:
    best = (-1.0, 0.0)
    for threshold in THRESHOLDS:
        summary = summary_of([withdrawn(a, threshold) for a in tune])
        if summary["answer_containment"] >= extractive_containment - 0.05:
            best = max(best, (summary["abstention_f1"], -threshold))
    return -best[1]


def table(set_name: str, runs: dict[str, list[Asked]], backend: str, load: float) -> str:
    """The test half's figures of the three modes, the judge's threshold chosen on the tune half."""
    tune = [a for a in runs["judged"] if a.split == "tune"]
    tune_extractive = summary_of([a.metrics for a in runs["extractive"] if a.split == "tune"])
    threshold = choose_threshold(tune, tune_extractive["answer_containment"])
    test = {mode: [a for a in asked if a.split == "test"] for mode, asked in runs.items()}
    judged_metrics = [withdrawn(a, threshold) for a in test["judged"]]
    lines = [f"### {set_name}: test half, {len(test['extractive'])} questions "
             f"({sum(1 for a in test['extractive'] if not a.metrics['answerable'])} unanswerable); "
             f"judge threshold {threshold:.2f}, chosen on the tune half ({len(tune)} questions); "
             f"load average {load:.1f}",
             "",
             "| mode | answer contains the fact | citation precision | answered with a citation "
             "| sentences marked unsupported | replaced by the extractive answer | abstention precision "
             "| abstention recall | first text p50 / p95 (s) | total p50 / p95 (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for mode, name in (("extractive", "extractive"), ("llm", f"{backend} model writes"),
                       ("judged", f"extractive, {backend} model as judge")):
        metrics = judged_metrics if mode == "judged" else [a.metrics for a in test[mode]]
        lines.append(row(name, summary_of(metrics), test[mode], metrics))
    return "\n".join(lines)


def report(log: Path, backend: str) -> None:
    """The tables again, from the log of an earlier run."""
    sets: dict[str, dict[str, list[Asked]]] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        sets.setdefault(entry["set"], {}).setdefault(entry["mode"], []).append(
            Asked(entry["id"], entry["split"], entry["metrics"], entry["first_text_ms"], entry["total_ms"],
                  True, entry["judge"]))
    complete = {name: runs for name, runs in sets.items() if {"extractive", "judged", "llm"} <= runs.keys()}
    print("\n\n".join(table(name, runs, backend, float("nan")) for name, runs in complete.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path)
    parser.add_argument("--backend", default="local", help="[llm] backend for the written and judged modes")
    parser.add_argument("--squad-every", type=int, default=5, help="every n-th squad2-500 question")
    parser.add_argument("--limit", type=int, default=0, help="first n questions of each set (a smoke run)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/out/llm_modes.jsonl")
    parser.add_argument("--report", type=Path, help="print the tables of this earlier run's log; ask nothing")
    args = parser.parse_args()
    if args.report:
        report(args.report, args.backend)
        return
    if args.index_dir is None:
        parser.error("--index-dir is needed to run the questions")
    settings = load_settings(index={"dir": str(args.index_dir)},
                             llm={"backend": args.backend, "judge_threshold": 0.0, "timeout_s": 120})
    service = QAService(settings)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tables = []
    try:
        with args.out.open("w", encoding="utf-8") as log:
            for set_name, questions in question_sets(args.squad_every).items():
                questions = questions[:args.limit] if args.limit else questions
                runs: dict[str, list[Asked]] = {}
                for mode in ("extractive", "judged", "llm"):
                    # The written answer on the test half only: it is what is reported, and the slowest.
                    chosen = [(q, s) for q, s in questions if mode != "llm" or s == "test"]
                    runs[mode] = []
                    for number, (question, split) in enumerate(chosen, 1):
                        asked = ask(service, question, split, mode)
                        runs[mode].append(asked)
                        log.write(json.dumps({"set": set_name, "mode": mode, "id": question.id, "split": split,
                                              "metrics": asked.metrics, "judge": asked.judge,
                                              "first_text_ms": asked.first_text_ms, "total_ms": asked.total_ms,
                                              **asked.extra}) + "\n")
                        log.flush()
                        print(f"\r{set_name} {mode}: {number}/{len(chosen)}", end="", flush=True)
                    print()
                tables.append(table(set_name, runs, args.backend, os.getloadavg()[0]))
                print("\n" + tables[-1] + "\n", flush=True)
    finally:
        service.close()
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
