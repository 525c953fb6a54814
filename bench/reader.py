"""The reader, per question kind: answer containment, citation precision and abstention for
variants of the ``[answer]`` settings, each beside the first variant, run in one process.

    .venv/bin/python -m bench.reader --index-dir /tmp/idx-kw-new
    .venv/bin/python -m bench.reader --index-dir /tmp/idx-kw-new --split tune \\
        --variant "untyped:answer_types=false" --variant "typed:" --variant "bonus .15:type_bonus=0.15"
    .venv/bin/python -m bench.reader --index-dir /tmp/idx-kw-new --show bbc-dev:test   # every answer

Retrieval runs once per question, as ``QAService.ask`` runs it (``condense``, the hybrid
retriever, ``k`` = ``[retrieval] top_k`` paragraphs read); then each variant's reader
(``answer_extractively`` with the variant's settings and the service's spaCy tagger) answers
from the same candidates, and ``qa eval``'s own metrics score it (``qa._eval.question_metrics``).
The index must hold the BBC corpus, the seed and the squad2-500 corpus (docs/benchmarks.md).

Question sets: ``tests/data/bbc_dev.jsonl`` (kinds and halves in tests/data/README.md) and
``../shared/data/squad2-500/questions.jsonl`` (answerable / unanswerable; its halves are the
even and odd lines, as bench/llm_modes.py splits it). Tune on ``--split tune``; report
``--split test``. Per kind: how many, answer containment (answerable kinds), citation
precision, and how often the reader abstained (the recall of the unanswerable kinds, the false
abstentions of the others); overall: abstention precision and recall. The reader's time is the
median and 95th percentile of ``answer_extractively`` alone.

``--before SET=DIR`` puts first, as the baseline, the answers a ``qa eval --out DIR`` of SET's
question file gave (for example an older checkout's, run with ``PYTHONPATH`` pointing at it), so
that a release's per-kind table has its "before" column; its reader time is ``qa eval``'s whole
answer time.

``--tagging-cost FOLDER`` answers the other question of issue 12, whether entities should be
computed at ingest: it tags every paragraph of the first 300 articles of FOLDER (the BBC
corpus) with the reader's tagger, as an ingest would, and prints the time per paragraph and
what that comes to for the folder's whole paragraph count.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa import QAService, load_settings
from qa._condense import Condensed, condense
from qa._articles import parse_file
from qa._eval import EvalQuestion, question_metrics
from qa._ingest import scan
from qa._metrics import mean, percentile, precision_recall_f1
from qa._models import AskResponse
from qa._retrieval import Candidate, HybridRetriever
from qa.reader import SpacyTagger, answer_extractively

REPO = Path(__file__).resolve().parent.parent
SETS = {
    "bbc-dev": REPO / "tests/data/bbc_dev.jsonl",
    "squad2-500": REPO.parent / "shared/data/squad2-500/questions.jsonl",
}
UNANSWERABLE_KINDS = ("wrong_date", "out_of_corpus", "false_premise", "missing_detail", "unanswerable")


@dataclass
class Case:
    question: EvalQuestion
    kind: str
    split: str
    condensed: Condensed
    candidates: list[Candidate]
    vector: np.ndarray  # the standalone question's, as retrieval searched with it


def load_cases(name: str, path: Path, service: QAService, split: str) -> list[Case]:
    settings = service.settings
    snapshot = service.snapshot()
    retriever = HybridRetriever(service.index, service.embedder, snapshot, settings.retrieval)
    cases = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        raw = json.loads(line)
        question = EvalQuestion.model_validate(raw)
        half = raw.get("split") or ("tune" if line_number % 2 == 0 else "test")
        if split != "all" and half != split:
            continue
        kind = raw.get("kind") or ("answerable" if question.answers else "unanswerable")
        condensed = condense(question.question, question.history)
        vector = service.embedder.embed([condensed.standalone])[0]
        candidates = retriever.candidates(condensed.standalone, max(settings.retrieval.top_k, 10), vector,
                                          condensed.context_terms)
        cases.append(Case(question, kind, half, condensed, candidates, vector))
    return cases


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, assignments = text.partition(":")
    overrides = {}
    for assignment in filter(None, (a.strip() for a in assignments.split(","))):
        key, _, value = assignment.partition("=")
        overrides[key.strip()] = json.loads(value)
    return name or "default", overrides


def run_variant(cases: list[Case], service: QAService, overrides: dict, show: bool) -> list[dict]:
    settings = service.settings.answer.model_copy(update=overrides)
    k = service.settings.retrieval.top_k
    keyword = service.snapshot().keyword
    # A tagger of its own, so that no variant reads sentences another one tagged into the cache;
    # the model is loaded before the clock starts.
    tagger = SpacyTagger()
    tagger.tag_question("Who asked?")
    rows = []
    for case in cases:
        began = time.perf_counter()
        extracted = answer_extractively(case.condensed, case.candidates[:k], keyword, settings, tagger,
                                         service.embedder, case.vector)
        elapsed = (time.perf_counter() - began) * 1000
        response = AskResponse(
            question=case.question.question, standalone_question=case.condensed.standalone,
            answer=extracted.answer, abstained=extracted.abstained, citations=extracted.citations,
            retrieved=[c.public() for c in case.candidates], answer_type=extracted.answer_type)
        metrics = question_metrics(case.question, response, 10)
        rows.append({"kind": case.kind, "ms": elapsed, "question": case.question.question,
                     "golds": case.question.answers, "answer": extracted.answer,
                     "answer_type": extracted.answer_type, **metrics})
        if show:
            mark = ("ok " if metrics["contains"] else "MISS") if metrics["answerable"] else \
                ("ok " if extracted.abstained else "ANSW")
            print(f"  {mark} [{case.kind}] {case.question.question}\n       type={extracted.answer_type} "
                  f"gold={case.question.answers[:2]} -> {extracted.answer[:160]!r}")
    return rows


def rows_from_eval(cases: list[Case], out_dir: Path) -> list[dict]:
    """The rows of an earlier ``qa eval --out out_dir`` run, for the same cases."""
    results = {}
    for line in (out_dir / "results.jsonl").read_text(encoding="utf-8").splitlines():
        result = json.loads(line)
        results[result["id"]] = result
    rows = []
    for case in cases:
        result = results[case.question.id]
        rows.append({"kind": case.kind, "ms": result["metrics"]["latency_ms"], "question": case.question.question,
                     "golds": case.question.answers, "answer": result["response"]["answer"],
                     "answer_type": result["response"].get("answer_type"), **result["metrics"]})
    return rows


def kind_table(rows: list[dict]) -> dict[str, dict]:
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_kind[row["kind"]].append(row)
    table = {}
    for kind, members in sorted(by_kind.items()):
        answered = [m for m in members if not m["abstained"]]
        cited = sum(m["citations"] for m in answered if m["answerable"])
        table[kind] = {
            "n": len(members),
            "contains": mean([m["contains"] for m in members]) if members[0]["answerable"] else None,
            "citation_precision": (sum(m["citations_correct"] for m in answered) / cited) if cited else None,
            "abstained": mean([float(m["abstained"]) for m in members]),
        }
    return table


def overall(rows: list[dict]) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    answered = [r for r in answerable if not r["abstained"]]
    cited = sum(r["citations"] for r in answered)
    abstained = sum(r["abstained"] for r in rows)
    right = sum(r["abstained"] for r in unanswerable)
    precision, recall, _ = precision_recall_f1(right, abstained, len(unanswerable))
    times = [r["ms"] for r in rows]
    # Issue 12's abstention target counts the kinds a reader can check (a changed year or detail,
    # a topic no article covers) against the false abstentions on answerable questions.
    checkable = [r for r in unanswerable if r["kind"] in ("wrong_date", "out_of_corpus")]
    false_abstentions = sum(r["abstained"] for r in answerable)
    checkable_right = sum(r["abstained"] for r in checkable)
    checkable_precision, checkable_recall, _ = precision_recall_f1(
        checkable_right, checkable_right + false_abstentions, len(checkable))
    return {
        "checkable_precision": checkable_precision if checkable else None,
        "checkable_recall": checkable_recall if checkable else None,
        "n": len(rows),
        "contains": mean([r["contains"] for r in answerable]),
        "citation_precision": sum(r["citations_correct"] for r in answered) / cited if cited else 0.0,
        "abstention_precision": precision, "abstention_recall": recall,
        "reader_p50_ms": percentile(times, 50), "reader_p95_ms": percentile(times, 95),
    }


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def print_report(set_name: str, split: str, results: dict[str, list[dict]]) -> None:
    names = list(results)
    print(f"\n### {set_name}, {split} half\n")
    print("| variant | questions | answer contains the fact | citation precision | abstention precision "
          "| abstention recall | wrong_date + out_of_corpus: abstention precision / recall | reader p50 / p95 (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        o = overall(results[name])
        print(f"| {name} | {o['n']} | {o['contains']:.3f} | {o['citation_precision']:.3f} | "
              f"{o['abstention_precision']:.3f} | {o['abstention_recall']:.3f} | "
              f"{_cell(o['checkable_precision'])} / {_cell(o['checkable_recall'])} | "
              f"{o['reader_p50_ms']:.1f} / {o['reader_p95_ms']:.1f} |")
    tables = {name: kind_table(results[name]) for name in names}
    print("\n| kind | questions | " + " | ".join(f"{n}: contains / cit. prec. / abstained" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for kind, first in tables[names[0]].items():
        cells = [f"{_cell(t[kind]['contains'])} / {_cell(t[kind]['citation_precision'])} / {t[kind]['abstained']:.3f}"
                 for t in tables.values()]
        print(f"| {kind} | {first['n']} | " + " | ".join(cells) + " |")


def _outcome(row: dict) -> bool:
    return bool(row["contains"]) if row["answerable"] else bool(row["abstained"])


def print_changes(results: dict[str, list[dict]]) -> None:
    baseline_name, *others = results
    for name in others:
        print(f"\nChanged from {baseline_name} to {name}:")
        for before, after in zip(results[baseline_name], results[name]):
            if _outcome(before) != _outcome(after) or before["answer"] != after["answer"]:
                sign = "=" if _outcome(before) == _outcome(after) else ("+" if _outcome(after) else "-")
                print(f"{sign} [{after['kind']}] ({after['answer_type']}) {after['question']}  gold={after['golds'][:2]}\n"
                      f"    was: {before['answer'][:150]!r}\n    now: {after['answer'][:150]!r}")


def tagging_cost(folder: Path) -> None:
    files, _, _ = scan([folder])
    paragraphs = [p.text for source in files for p in parse_file(source.path, source.root).paragraphs]
    sample = [p.text for source in files[:300] for p in parse_file(source.path, source.root).paragraphs]
    tagger = SpacyTagger()
    tagger.tag_question("Who asked?")
    began = time.perf_counter()
    tagger.entities(sample)
    seconds = time.perf_counter() - began
    per_paragraph = seconds / len(sample)
    print(f"| paragraphs tagged | ms per paragraph | all {len(paragraphs):,} paragraphs of {folder.name} |")
    print("|---|---|---|")
    print(f"| {len(sample):,} | {per_paragraph * 1000:.1f} | {per_paragraph * len(paragraphs):.0f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--split", choices=("tune", "test", "all"), default="test")
    parser.add_argument("--variant", action="append", default=[],
                        help='"name:key=json,key=json" of [answer] settings; the first is the baseline')
    parser.add_argument("--show", action="append", default=[], help="SET:VARIANT whose every answer to print")
    parser.add_argument("--before", action="append", default=[], metavar="SET=DIR",
                        help="a qa eval --out DIR of SET's questions, shown first as the baseline")
    parser.add_argument("--changes", action="store_true",
                        help="print the questions each variant answers differently from the first")
    parser.add_argument("--tagging-cost", type=Path, metavar="FOLDER",
                        help="time tagging FOLDER's paragraphs at ingest instead, and stop")
    args = parser.parse_args()
    if args.tagging_cost:
        tagging_cost(args.tagging_cost)
        return
    variants = [parse_variant(v) for v in args.variant] or [("untyped", {"answer_types": False}), ("typed", {})]
    if args.index_dir is None:
        parser.error("--index-dir is required")
    service = QAService(load_settings(index={"dir": str(args.index_dir)}))
    for set_name in args.sets:
        cases = load_cases(set_name, SETS[set_name], service, args.split)
        results = {}
        for before in args.before:
            before_set, _, out_dir = before.partition("=")
            if before_set == set_name:
                results["before"] = rows_from_eval(cases, Path(out_dir))
        for name, overrides in variants:
            show = f"{set_name}:{name}" in args.show
            if show:
                print(f"\n{set_name} / {name}:")
            results[name] = run_variant(cases, service, overrides, show)
        print_report(set_name, args.split, results)
        if args.changes:
            print_changes(results)


if __name__ == "__main__":
    main()
