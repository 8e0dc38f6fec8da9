"""Criteria whose answer can be checked from the responses themselves.

Free-form criteria are what omnirm's reward models condition on, but labelled criteria data is
scarce. Some criteria can be decided by reading the responses: which one is shorter, which one is
a list, which one gives numbers. :func:`checkable_pairs` turns any set of text pairs (for example
real human-preference data) into criteria-labelled records, each pair once under a criterion and
once under its opposite, so that a model which ignores the criterion scores exactly 0.5 on them.
The embedded default reward model (``omnirm.default_model``) is trained on such records.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

_LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+\S", re.MULTILINE)
_NUMBER = re.compile(r"(?<![A-Za-z])\d[\d,.]*")
_WORD = re.compile(r"\S+")
_CODE = re.compile(r"```|^(?: {4}|\t)\S", re.MULTILINE)


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def list_items(text: str) -> int:
    """Lines that start with a bullet or an item number."""
    return len(_LIST_LINE.findall(text))


def numbers(text: str) -> int:
    """Numerals in the text (list item numbers excluded)."""
    body = _LIST_LINE.sub(lambda m: m.group(0)[-1], text)
    return len(_NUMBER.findall(body))


def has_code(text: str) -> bool:
    return bool(_CODE.search(text))


@dataclass(frozen=True)
class CriterionFamily:
    """A criterion, its opposite, and a rule that decides a pair under the first (0 or 1 is the
    better response, None when the pair is not clear-cut enough to label)."""

    name: str
    criterion: str
    opposite: str
    decide: Callable[[str, str], int | None]


def _longer_is_better(a: str, b: str, ratio: float = 1.6, min_gap: int = 25) -> int | None:
    na, nb = word_count(a), word_count(b)
    if max(na, nb) < ratio * min(na, nb) or abs(na - nb) < min_gap:
        return None
    return 0 if na > nb else 1


def _shorter_is_better(a: str, b: str) -> int | None:
    longer = _longer_is_better(a, b)
    return None if longer is None else 1 - longer


def _list_is_better(a: str, b: str) -> int | None:
    la, lb = list_items(a), list_items(b)
    if la >= 3 and lb == 0:
        return 0
    if lb >= 3 and la == 0:
        return 1
    return None


def _numbers_are_better(a: str, b: str) -> int | None:
    na, nb = numbers(a), numbers(b)
    if na >= 2 and nb == 0:
        return 0
    if nb >= 2 and na == 0:
        return 1
    return None


def _code_is_better(a: str, b: str) -> int | None:
    ca, cb = has_code(a), has_code(b)
    if ca == cb:
        return None
    return 0 if ca else 1


FAMILIES: tuple[CriterionFamily, ...] = (
    CriterionFamily(
        "length",
        "Prefer the shorter, more concise answer.",
        "Prefer the longer, more detailed answer.",
        _shorter_is_better,
    ),
    CriterionFamily(
        "list",
        "Prefer the answer formatted as a list (bullet points or numbered items).",
        "Prefer the answer written as plain prose, without any list.",
        _list_is_better,
    ),
    CriterionFamily(
        "numbers",
        "Prefer the answer that gives specific numbers, figures or dates.",
        "Prefer the answer that uses no numbers at all.",
        _numbers_are_better,
    ),
    CriterionFamily(
        "code",
        "Prefer the answer that includes code.",
        "Prefer the answer that contains no code.",
        _code_is_better,
    ),
)


def checkable_pairs(
    records: Iterable[dict[str, Any]],
    families: Iterable[CriterionFamily] = FAMILIES,
) -> Iterator[dict[str, Any]]:
    """Criteria-labelled records from text records with two responses: for every family that
    decides a pair, one record under its criterion and one under the opposite (preference
    flipped). Each pair of responses is used once however often it occurs in ``records``.
    Output ids are ``{input id}-{family}`` and ``{input id}-{family}-opposite``; ``source_id``
    names the input record and ``criteria_family`` the family."""
    chosen = tuple(families)
    seen: set[tuple[str, ...]] = set()
    for record in records:
        responses = record.get("responses")
        prompt = record.get("prompt")
        if not isinstance(prompt, str) or not isinstance(responses, list) or len(responses) != 2:
            continue
        a, b = responses
        if not isinstance(a, str) or not isinstance(b, str):
            continue
        key = (prompt, *sorted((a, b)))
        if key in seen:
            continue
        seen.add(key)
        for family in chosen:
            better = family.decide(a, b)
            if better is None:
                continue
            base = {
                "task": "text_to_text",
                "prompt": prompt,
                "responses": [a, b],
                "source_id": record.get("id"),
                "criteria_family": family.name,
            }
            yield {
                "id": f"{record.get('id')}-{family.name}",
                **base,
                "criteria": family.criterion,
                "preference": better,
            }
            yield {
                "id": f"{record.get('id')}-{family.name}-opposite",
                **base,
                "criteria": family.opposite,
                "preference": 1 - better,
            }
