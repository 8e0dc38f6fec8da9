"""The judge-answer parser on arbitrary text: a verdict, a score in range, or None, quickly."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from omnirm.prompts.verdicts import parse_score, parse_verdict
from tests.property.strategies import FRAGMENTS

_answers = st.lists(
    st.sampled_from([*FRAGMENTS, "[[", "]]", "A", "B", "C", "D", "-", "1", "0.5", "\\textbf{"])
    | st.text(max_size=4),
    max_size=40,
).map("".join)


@given(_answers)
def test_verdict_is_one_mark_or_none(answer: str) -> None:
    verdict = parse_verdict(answer)
    assert verdict in (None, "A", "B", "C")
    if verdict is not None:
        assert verdict in answer.upper()


@given(_answers, st.floats(-10, 10), st.floats(0, 20))
def test_score_is_in_range_or_none(answer: str, low: float, width: float) -> None:
    score = parse_score(answer, low, low + width)
    assert score is None or low <= score <= low + width


def test_long_adversarial_answers_parse_quickly() -> None:
    for answer in (
        "\\boxed{" * 20_000 + " " * 20_000,
        "[[" + " " * 100_000 + "A" + " " * 100_000,
        "\\boxed{\\text{" + " " * 100_000,
        "[[1" + "0" * 100_000 + ".",
    ):
        started = time.monotonic()
        assert parse_verdict(answer) is None
        assert parse_score(answer, 1, 10) is None
        assert time.monotonic() - started < 2.0
