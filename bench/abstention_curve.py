"""Precision/recall of abstention, and answer containment, for a range of thresholds.

    QA_INDEX_DIR=/tmp/idx-squad .venv/bin/python bench/abstention_curve.py \
        ../shared/data/squad2-500/questions.jsonl

Runs retrieval and sentence scoring once per question, then replays the abstention
decision for each threshold, printing a Markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from qa import QAService, load_settings
from qa.reader import score_sentences
from qa._condense import condense
from qa._eval import read_questions
from qa._metrics import contains_answer, precision_recall_f1
from qa._retrieval import HybridRetriever


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", type=Path)
    parser.add_argument("--low", type=float, default=0.30)
    parser.add_argument("--high", type=float, default=0.75)
    parser.add_argument("--step", type=float, default=0.05)
    args = parser.parse_args()

    settings = load_settings()
    service = QAService(settings)
    snapshot = service.snapshot()
    retriever = HybridRetriever(service.index, service.embedder, snapshot, settings.retrieval)
    rows = []
    for question in read_questions(args.questions):
        condensed = condense(question.question, question.history)
        candidates = retriever.candidates(condensed.standalone, settings.retrieval.top_k,
                                          context_terms=condensed.context_terms)
        best = score_sentences(condensed, candidates, snapshot.keyword)[0]
        correct = bool(question.answers) and contains_answer(best.text, question.answers)
        rows.append((bool(question.answers), best.support, correct))

    answerable = sum(1 for a, _, _ in rows if a)
    unanswerable = len(rows) - answerable
    print("| threshold | abstention precision | abstention recall | abstention F1 | containment (best sentence) |")
    print("|---|---|---|---|---|")
    threshold = args.low
    while threshold <= args.high + 1e-9:
        abstained = [(a, c) for a, s, c in rows if s < threshold]
        right = sum(1 for a, _ in abstained if not a)
        precision, recall, f1 = precision_recall_f1(right, len(abstained), unanswerable)
        contained = sum(1 for a, s, c in rows if a and c and s >= threshold) / max(answerable, 1)
        marker = " (set)" if abs(threshold - settings.answer.abstain_threshold) < 1e-9 else ""
        print(f"| {threshold:.2f}{marker} | {precision:.3f} | {recall:.3f} | {f1:.3f} | {contained:.3f} |")
        threshold += args.step


if __name__ == "__main__":
    main()
