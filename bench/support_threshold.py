"""Tune the citation check: how well the support score separates supported from unsupported
answer sentences, for a range of lexical weights and thresholds.

    .venv/bin/python bench/support_threshold.py ../shared/data/squad2-500 --index /tmp/idx-squad

Labelled pairs (sentence, cited paragraph) are built from the answerable SQuAD questions,
in the forms a generated answer takes:

- supported: the question turned into a statement with its answer ("<question>: <answer>."),
  cited against its own paragraph; and the paragraph's answer sentence with a third of its
  words dropped (a compressed paraphrase), cited against its own paragraph;
- unsupported: the same statement cited against the best-ranked *other* paragraph (the
  wrong source), and the statement with another question's answer (an invented fact) cited
  against its own paragraph.

The number rule of the check (a number in the sentence must be in the cited text) is
applied too, as in :func:`qa._generate.check_citations`. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np

from qa import QAService, load_settings
from qa._eval import read_questions
from qa._generate import _numbers, lexical_support
from qa._metrics import contains_answer
from qa._retrieval import HybridRetriever
from qa._text import sentence_spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder with questions.jsonl and corpus/")
    parser.add_argument("--index", type=Path, required=True, help="index folder (built when empty)")
    args = parser.parse_args()

    settings = load_settings(environ={}, index={"dir": str(args.index)})
    service = QAService(settings)
    if not service.snapshot().records:
        service.ingest([args.data / "corpus"])
    snapshot = service.snapshot()
    by_doc = {r.doc: r for r in snapshot.records.values()}
    retriever = HybridRetriever(service.index, service.embedder, snapshot, settings.retrieval)
    rng = random.Random(5)
    questions = [q for q in read_questions(args.data / "questions.jsonl") if q.answers and q.doc in by_doc]
    answers = [q.answers[0] for q in questions]

    pairs: list[tuple[str, str, str, bool]] = []  # (sentence, cited paragraph, title, supported)
    for question in questions:
        record = by_doc[question.doc]
        gold = next((p for p in record.paragraphs if contains_answer(p.text, question.answers)), None)
        if gold is None:
            continue
        statement = f"{question.question.strip().rstrip('?')}: {question.answers[0]}."
        pairs.append((statement, gold.text, record.title, True))
        sentence = next((gold.text[a:b] for a, b in sentence_spans(gold.text)
                         if contains_answer(gold.text[a:b], question.answers)), None)
        if sentence:
            words = sentence.split()
            kept = [w for w in words if rng.random() > 0.33 or contains_answer(w, question.answers)]
            pairs.append((" ".join(kept), gold.text, record.title, True))
        wrong = next((c for c in retriever.candidates(statement, 5)
                      if c.paragraph.text != gold.text and not contains_answer(c.paragraph.text, question.answers)),
                     None)
        if wrong is not None:
            pairs.append((statement, wrong.paragraph.text, wrong.record.title, False))
        other = rng.choice([a for a in answers if not contains_answer(gold.text, [a])])
        pairs.append((f"{question.question.strip().rstrip('?')}: {other}.", gold.text, record.title, False))

    sentences = service.embedder.embed([p[0] for p in pairs])
    paragraphs = service.embedder.embed([p[1] for p in pairs])
    dense = np.einsum("ij,ij->i", sentences, paragraphs)
    lexical = np.array([lexical_support(s, f"{t} {p}", snapshot.keyword) for s, p, t, _ in pairs])
    invented = np.array([bool(_numbers(s) - _numbers(f"{t} {p}")) for s, p, t, _ in pairs])
    labels = np.array([p[3] for p in pairs])
    print(f"{len(pairs)} pairs: {labels.sum()} supported, {(~labels).sum()} unsupported\n")
    print("| lexical weight | threshold | accuracy | precision (supported) | recall (supported) | F1 |")
    print("|---|---|---|---|---|---|")
    for weight in (0.3, 0.4, 0.5, 0.6, 0.7):
        score = weight * lexical + (1 - weight) * np.clip(dense, 0, None)
        for threshold in np.arange(0.40, 0.76, 0.05):
            predicted = (score >= threshold) & ~invented
            true_positive = (predicted & labels).sum()
            precision = true_positive / max(predicted.sum(), 1)
            recall = true_positive / max(labels.sum(), 1)
            f1 = 2 * precision * recall / max(precision + recall, 1e-9)
            accuracy = (predicted == labels).mean()
            print(f"| {weight:.1f} | {threshold:.2f} | {accuracy:.3f} | {precision:.3f} | {recall:.3f} | {f1:.3f} |")


if __name__ == "__main__":
    main()
