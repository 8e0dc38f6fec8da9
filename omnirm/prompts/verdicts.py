"""Reading a judge's answer: a pairwise verdict (A, B or C = tie) or a pointwise score.

Pairwise answers end in ``[[A]]``, ``[[B]]`` or ``[[C]]``; ``\\boxed{A}`` (also
``\\boxed{\\text{A}}``) is accepted too. Every verdict mark in the answer is collected: an answer
whose marks name more than one verdict (A and B, or a side and C) is unparseable — never a
guess. Pointwise answers end in ``[[7]]`` or ``\\boxed{7}`` (a number in the template's range);
several different numbers, or one outside the range, are unparseable.
"""

from __future__ import annotations

import re

_VERDICT = re.compile(
    r"\[\[\s*([ABC])\s*\]\]|\\boxed\{\s*(?:\\text(?:bf)?\{\s*)?([ABC])\s*\}?\s*\}", re.IGNORECASE
)
_SCORE = re.compile(
    r"\[\[\s*(-?\d+(?:\.\d+)?)\s*\]\]|\\boxed\{\s*(-?\d+(?:\.\d+)?)\s*\}", re.IGNORECASE
)


def parse_verdict(answer: str) -> str | None:
    """ "A", "B" or "C" when the answer's verdict marks name exactly one of them, else None."""
    found = {(a or b).upper() for a, b in _VERDICT.findall(answer)}
    return found.pop() if len(found) == 1 else None


def verdict_marks(answer: str) -> list[str]:
    """Every verdict mark in the answer, in order, as its letter ("A", "B" or "C")."""
    return [(a or b).upper() for a, b in _VERDICT.findall(answer)]


def without_marks(answer: str) -> str:
    """The answer with its verdict marks removed."""
    return _VERDICT.sub("", answer)


def parse_score(answer: str, low: float, high: float) -> float | None:
    """The score the answer's marks give, when they give one value within [low, high]."""
    found = {float(a or b) for a, b in _SCORE.findall(answer)}
    if len(found) != 1:
        return None
    value = found.pop()
    return value if low <= value <= high else None


def has_mark(answer: str) -> bool:
    """Whether the answer holds a complete verdict or score mark (generation can stop there)."""
    return bool(_VERDICT.search(answer) or _SCORE.search(answer))
