"""Reading a judge's answer: a pairwise verdict (A, B or C = tie) or a pointwise score.

Pairwise answers end in ``[[A]]``, ``[[B]]`` or ``[[C]]``; ``\\boxed{A}`` (also
``\\boxed{\\text{A}}``) is accepted too. Every verdict mark in the answer is collected: an answer
whose marks name more than one verdict (A and B, or a side and C) is unparseable — never a
guess. A JSON answer (Omni-RRM's ``{"reasoning": …, "score_A": …, "score_B": …, "better": "A"}``)
counts as a mark once its ``"better"`` field and the object's closing brace are written.
Pointwise answers end in ``[[7]]`` or ``\\boxed{7}`` (a number in the template's range);
several different numbers, or one outside the range, are unparseable.
"""

from __future__ import annotations

import json
import re
from typing import Any

_VERDICT = re.compile(
    r"\[\[\s*([ABC])\s*\]\]|\\boxed\{\s*(?:\\text(?:bf)?\{\s*)?([ABC])\s*\}?\s*\}"
    r'|"better"\s*:\s*"\s*([ABC])\s*"\s*\}',
    re.IGNORECASE,
)
_JSON_KEYS = ("reasoning", "score_A", "score_B", "better")
_SCORE = re.compile(
    r"\[\[\s*(-?\d+(?:\.\d+)?)\s*\]\]|\\boxed\{\s*(-?\d+(?:\.\d+)?)\s*\}", re.IGNORECASE
)


def parse_verdict(answer: str) -> str | None:
    """ "A", "B" or "C" when the answer's verdict marks name exactly one of them, else None."""
    found = {(a or b or c).upper() for a, b, c in _VERDICT.findall(answer)}
    return found.pop() if len(found) == 1 else None


def verdict_marks(answer: str) -> list[str]:
    """Every verdict mark in the answer, in order, as its letter ("A", "B" or "C")."""
    return [(a or b or c).upper() for a, b, c in _VERDICT.findall(answer)]


def json_verdict(answer: str) -> dict[str, Any] | None:
    """The answer's Omni-RRM JSON object when it holds exactly one and it is well formed: a
    string ``reasoning``, numbers ``score_A`` and ``score_B``, ``better`` one of A, B, C;
    else None."""
    found: list[dict[str, Any]] = []
    decoder = json.JSONDecoder()
    at = answer.find("{")
    while at != -1:
        try:
            value, end = decoder.raw_decode(answer, at)
        except ValueError:
            at = answer.find("{", at + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        at = answer.find("{", end)
    if len(found) != 1:
        return None
    value = found[0]
    if set(value) != set(_JSON_KEYS) or not isinstance(value["reasoning"], str):
        return None
    scores_ok = all(
        isinstance(value[k], int | float) and not isinstance(value[k], bool)
        for k in ("score_A", "score_B")
    )
    if not scores_ok or str(value["better"]).upper() not in ("A", "B", "C"):
        return None
    return value


def json_answer(reasoning: str, verdict: str, *, scores: tuple[float, float] | None = None) -> str:
    """An Omni-RRM JSON answer with ``verdict`` (scores 8/4, 4/8 or 6/6 unless given)."""
    default = {"A": (8, 4), "B": (4, 8)}.get(verdict, (6, 6))
    score_a, score_b = scores or default
    return json.dumps(
        {"reasoning": reasoning, "score_A": score_a, "score_B": score_b, "better": verdict},
        ensure_ascii=False,
    )


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
