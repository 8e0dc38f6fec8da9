"""Combining both orders' verdict-letter probabilities."""

from __future__ import annotations

import pytest

from omnirm.judging.likelihood import combine_probabilities
from omnirm.models.backends.base import VerdictProbabilities


def probs(a: float, b: float, c: float = 0.0) -> VerdictProbabilities:
    return VerdictProbabilities({"A": a, "B": b, "C": c}, mass=1.0)


def test_a_position_bias_cancels_across_orders() -> None:
    verdict = combine_probabilities(probs(0.9, 0.1), probs(0.9, 0.1))  # always "A"
    assert verdict.margin == pytest.approx(0.0)
    assert verdict.predicted == "tie"


def test_agreeing_orders_give_the_side_and_a_graded_margin() -> None:
    verdict = combine_probabilities(probs(0.8, 0.2), probs(0.3, 0.7))
    assert (verdict.better, verdict.worse) == pytest.approx((0.75, 0.25))
    assert verdict.margin == pytest.approx(0.5)
    assert verdict.predicted == 0
    assert combine_probabilities(probs(0.2, 0.8), probs(0.6, 0.4)).predicted == 1


def test_one_order_and_tie_thresholds() -> None:
    assert combine_probabilities(probs(0.55, 0.45), None).predicted == 0
    assert combine_probabilities(probs(0.55, 0.45), None, tie_threshold=0.2).predicted == "tie"
    assert combine_probabilities(probs(0.2, 0.1, 0.7), None).predicted == "tie"
