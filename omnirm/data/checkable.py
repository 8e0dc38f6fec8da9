"""Criteria whose answer can be checked from the responses themselves.

Free-form criteria are what omnirm's reward models condition on, but labelled criteria data is
scarce. Some criteria can be decided by reading the responses: which one is shorter, which one is
a list, which one gives numbers. :func:`checkable_pairs` turns any set of text pairs (for example
real human-preference data) into criteria-labelled records, each pair once under a criterion and
once under its opposite, so that a model which ignores the criterion scores exactly 0.5 on them.
The embedded default reward model (``omnirm.default_model``) is trained on such records.
"""

from __future__ import annotations

import hashlib
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


def _labelled(
    base_id: str, prompt: str, a: str, b: str, family: CriterionFamily, extra: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """The pair (a, b) under the family's criterion and under its opposite (none when the
    family's rule does not decide it)."""
    better = family.decide(a, b)
    if better is None:
        return
    base = {
        "task": "text_to_text",
        "prompt": prompt,
        "responses": [a, b],
        **extra,
        "criteria_family": family.name,
    }
    yield {
        "id": f"{base_id}-{family.name}",
        **base,
        "criteria": family.criterion,
        "preference": better,
    }
    yield {
        "id": f"{base_id}-{family.name}-opposite",
        **base,
        "criteria": family.opposite,
        "preference": 1 - better,
    }


def _text_pair(record: dict[str, Any]) -> tuple[str, str, str] | None:
    responses = record.get("responses")
    prompt = record.get("prompt")
    if not isinstance(prompt, str) or not isinstance(responses, list) or len(responses) != 2:
        return None
    a, b = responses
    if not isinstance(a, str) or not isinstance(b, str):
        return None
    return prompt, a, b


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
        pair = _text_pair(record)
        if pair is None:
            continue
        prompt, a, b = pair
        key = (prompt, *sorted((a, b)))
        if key in seen:
            continue
        seen.add(key)
        for family in chosen:
            yield from _labelled(
                str(record.get("id")), prompt, a, b, family, {"source_id": record.get("id")}
            )


# --- Edited pairs: one real response against a copy edited in a single checkable respect. ----

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_MARKER = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")


def _sentences(line: str) -> list[str]:
    """The sentences of one line; a list item's marker stays on its first sentence."""
    marker = _MARKER.match(line)
    head = marker.group(0).strip() + " " if marker else ""
    parts = [s for s in _SENTENCE_BREAK.split(line[marker.end() if marker else 0 :].strip()) if s]
    if parts and head:
        parts[0] = head + parts[0]
    return parts


def as_prose(text: str) -> str | None:
    """``text`` with its list items (at least 3) run together into paragraphs; None if it has
    fewer items."""
    if list_items(text) < 3:
        return None
    paragraphs: list[str] = []
    items: list[str] = []
    for line in text.splitlines():
        if _LIST_LINE.match(line):
            item = _MARKER.sub("", line).strip()
            items.append(item if item[-1:] in ".!?:;" else item + ".")
        elif line.strip():
            if items:
                paragraphs.append(" ".join(items))
                items = []
            paragraphs.append(line.strip())
    if items:
        paragraphs.append(" ".join(items))
    return "\n\n".join(paragraphs)


def as_list(text: str) -> str | None:
    """Prose ``text`` (no list) with its sentences as bullet points after the first one; None
    when fewer than 3 sentences would be listed."""
    if list_items(text) or has_code(text):
        return None
    sentences = [s for line in text.splitlines() for s in _sentences(line)]
    if len(sentences) < 4:
        return None
    return sentences[0] + "\n\n" + "\n".join(f"- {s}" for s in sentences[1:])


def without_numbers(text: str) -> str | None:
    """``text`` without the sentences that hold numerals (None if it had fewer than 2, or too
    little would remain)."""
    if numbers(text) < 2:
        return None
    lines = []
    for line in text.splitlines():
        kept = [s for s in _sentences(line) if not _NUMBER.search(_MARKER.sub("", s))]
        if kept or not line.strip():
            lines.append(" ".join(kept))
    edited = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if numbers(edited) or word_count(edited) < max(15, 0.4 * word_count(text)):
        return None
    return edited


def shortened(text: str) -> str | None:
    """The first lines of ``text`` (or first sentences of its first line) holding at most half
    of its words; None if nothing that short remains."""
    limit = word_count(text) // 2
    kept: list[str] = []
    used = 0
    for line in text.splitlines():
        if used + word_count(line) <= limit:
            kept.append(line)
            used += word_count(line)
            continue
        if not any(k.strip() for k in kept):
            for sentence in _sentences(line):
                if used + word_count(sentence) > limit:
                    break
                kept.append(sentence)
                used += word_count(sentence)
            kept = [" ".join(kept)] if kept else []
        break
    edited = "\n".join(kept).strip()
    return edited or None


def without_code(text: str) -> str | None:
    """``text`` without its fenced or indented code (None if it has none or little remains)."""
    if not has_code(text):
        return None
    edited = re.sub(r"```.*?(```|$)", "", text, flags=re.DOTALL)
    edited = "\n".join(
        line for line in edited.splitlines() if not re.match(r"^(?: {4}|\t)\S", line)
    )
    edited = re.sub(r"\n{3,}", "\n\n", edited).strip()
    return edited if word_count(edited) >= 10 and not has_code(edited) else None


#: Edits per family: each turns a response into one that the family's rule tells apart from it.
EDITS: dict[str, tuple[Callable[[str], str | None], ...]] = {
    "length": (shortened,),
    "list": (as_prose, as_list),
    "numbers": (without_numbers,),
    "code": (without_code,),
}


def edited_pairs(
    records: Iterable[dict[str, Any]],
    families: Iterable[CriterionFamily] = FAMILIES,
) -> Iterator[dict[str, Any]]:
    """Criteria-labelled minimal pairs: each response of each text record against a copy of it
    edited in one checkable respect (lists run into prose or prose split into a list, sentences
    with numerals dropped, cut to its first half, code removed), under the family's criterion
    and its opposite. Which side holds the edit is fixed by a hash of the id, so position says
    nothing. Ids are ``{input id}-r{k}-{edit}-{family}[-opposite]``; ``edit`` names the edit."""
    chosen = tuple(families)
    seen: set[tuple[str, str]] = set()
    for record in records:
        pair = _text_pair(record)
        if pair is None:
            continue
        prompt, *responses = pair
        for k, response in enumerate(responses):
            if (prompt, response) in seen:
                continue
            seen.add((prompt, response))
            for family in chosen:
                for edit in EDITS.get(family.name, ()):
                    edited = edit(response)
                    if edited is None or edited == response:
                        continue
                    base_id = f"{record.get('id')}-r{k}-{edit.__name__}"
                    first = hashlib.blake2b(base_id.encode(), digest_size=1).digest()[0] % 2
                    a, b = (response, edited) if first == 0 else (edited, response)
                    extra = {"source_id": record.get("id"), "edit": edit.__name__}
                    yield from _labelled(base_id, prompt, a, b, family, extra)
