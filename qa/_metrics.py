"""Evaluation metrics: small pure functions, one per number in the summary table."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Collection, Sequence


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation) | {"‘", "’", "“", "”"})
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    return float(any(normalize_answer(prediction) == normalize_answer(g) for g in golds))


def f1_score(prediction: str, golds: Sequence[str]) -> float:
    """Best token-overlap F1 of ``prediction`` against any gold answer (SQuAD definition)."""
    best = 0.0
    predicted = normalize_answer(prediction).split()
    for gold in golds:
        expected = normalize_answer(gold).split()
        common = Counter(predicted) & Counter(expected)
        overlap = sum(common.values())
        if not predicted or not expected:
            best = max(best, float(predicted == expected))
            continue
        if overlap == 0:
            continue
        precision, recall = overlap / len(predicted), overlap / len(expected)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


_PUNCTUATION = re.compile(r"[^\w\s]|_")


def _word_sequence(text: str) -> str:
    """Words only: punctuation becomes a space, so "Netherlands.[1]" and "Laden's" keep their words."""
    text = _PUNCTUATION.sub(" ", text.lower())
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def contains_answer(text: str, golds: Sequence[str]) -> bool:
    """Whether ``text`` contains any gold answer as a whole word sequence.

    Unlike :func:`normalize_answer` (SQuAD's, for exact match and F1), punctuation splits
    words here: deleting it would glue "Netherlands.[citation needed]" into one word and
    hide an answer that is plainly in the text.
    """
    haystack = f" {_word_sequence(text)} "
    return any(f" {_word_sequence(g)} " in haystack for g in golds if _word_sequence(g))


def first_hit_rank(retrieved: Sequence[tuple[str, str]], gold_docs: str | Collection[str] | None,
                   golds: Sequence[str]) -> int | None:
    """1-based rank of the first retrieved (doc, paragraph text) from a gold doc containing a gold answer."""
    if isinstance(gold_docs, str):
        gold_docs = {gold_docs}
    for rank, (doc, text) in enumerate(retrieved, 1):
        if (gold_docs is None or doc in gold_docs) and contains_answer(text, golds):
            return rank
    return None


def hit_at(rank: int | None, k: int) -> float:
    return float(rank is not None and rank <= k)


def reciprocal_rank(rank: int | None, k: int = 10) -> float:
    return 1.0 / rank if rank is not None and rank <= k else 0.0


def precision_recall_f1(true_positive: int, predicted: int, actual: int) -> tuple[float, float, float]:
    precision = true_positive / predicted if predicted else 0.0
    recall = true_positive / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = max(0, min(len(ordered), math.ceil(q / 100 * len(ordered))) - 1)
    return ordered[index]


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
