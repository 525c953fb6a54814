"""The metric functions against hand-worked examples."""

from __future__ import annotations

import pytest

from qa._metrics import (
    contains_answer, exact_match, f1_score, first_hit_rank, hit_at, normalize_answer, percentile,
    precision_recall_f1, reciprocal_rank,
)


def test_normalize_answer_follows_squad() -> None:
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("an apple, a pear") == "apple pear"


def test_exact_match_after_normalisation() -> None:
    assert exact_match("the RNA interference", ["RNA interference"]) == 1.0
    assert exact_match("RNA", ["RNA interference"]) == 0.0


def test_f1_worked_example() -> None:
    # prediction tokens: [63, days, of, fighting]; gold: [63, days] -> P = 2/4, R = 2/2, F1 = 2/3
    assert f1_score("63 days of fighting", ["63 days"]) == pytest.approx(2 / 3)
    # best over several gold answers
    assert f1_score("63 days of fighting", ["nothing", "63 days"]) == pytest.approx(2 / 3)
    assert f1_score("", ["63"]) == 0.0


def test_contains_answer_respects_word_boundaries() -> None:
    assert contains_answer("The uprising lasted 63 days.", ["63 days"])
    assert not contains_answer("It cost 1630 pounds.", ["63"])
    assert not contains_answer("anything", [""])


def test_contains_answer_sees_answers_next_to_punctuation() -> None:
    assert contains_answer("in Switzerland and the Netherlands.[citation needed] A group", ["Switzerland and the Netherlands."])
    assert contains_answer("Osama bin Laden's terror attacks", ["Osama bin Laden"])
    assert contains_answer("Sandwich, Faversham and Maidstone—towns", ["Sandwich, Faversham and Maidstone"])
    assert contains_answer("won 2-1 at home", ["2-1"])
    assert not contains_answer("won 2-1 at home", ["1-2"])


def test_first_hit_rank_needs_the_gold_doc_and_an_answer() -> None:
    retrieved = [("p2.txt", "63 days"), ("p1.txt", "nothing here"), ("p1.txt", "lasted 63 days")]
    assert first_hit_rank(retrieved, "p1.txt", ["63 days"]) == 3
    assert first_hit_rank(retrieved, None, ["63 days"]) == 1
    assert first_hit_rank(retrieved, "p3.txt", ["63 days"]) is None


def test_hits_and_reciprocal_rank() -> None:
    assert hit_at(3, 1) == 0.0 and hit_at(3, 5) == 1.0 and hit_at(None, 10) == 0.0
    assert reciprocal_rank(4) == 0.25 and reciprocal_rank(11) == 0.0 and reciprocal_rank(None) == 0.0


def test_precision_recall_f1_worked_example() -> None:
    # 6 abstentions, 4 of them on the 10 unanswerable questions: P = 4/6, R = 4/10, F1 = 0.5
    precision, recall, f1 = precision_recall_f1(4, 6, 10)
    assert (precision, recall) == pytest.approx((2 / 3, 0.4))
    assert f1 == pytest.approx(0.5)
    assert precision_recall_f1(0, 0, 0) == (0.0, 0.0, 0.0)


def test_percentile_is_nearest_rank() -> None:
    values = [15, 20, 35, 40, 50]
    assert percentile(values, 50) == 35
    assert percentile(values, 95) == 50
    assert percentile(values, 0) == 15
    assert percentile([], 50) == 0.0


def test_a_hit_may_come_from_any_gold_doc() -> None:
    retrieved = [("a.txt", "no answer here"), ("copy.txt", "It cost 63 days."), ("gold.txt", "63 days")]
    assert first_hit_rank(retrieved, "gold.txt", ["63 days"]) == 3
    assert first_hit_rank(retrieved, {"gold.txt", "copy.txt"}, ["63 days"]) == 2
    assert first_hit_rank(retrieved, None, ["63 days"]) == 2
