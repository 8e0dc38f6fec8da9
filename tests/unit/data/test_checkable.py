"""Criteria whose answer can be read off the responses: the rules and the records they make."""

from __future__ import annotations

from omnirm.data.checkable import (
    FAMILIES,
    checkable_pairs,
    has_code,
    list_items,
    numbers,
    word_count,
)

SHORT = "Paris is the capital of France."
LONG = " ".join(["Paris, on the Seine, has been the capital of France for centuries."] * 6)
LISTED = "Steps:\n- boil water\n- add pasta\n- drain it\n"
PROSE = "Boil water, add the pasta and drain it when it is soft."
NUMBERED = "It opened in 1889 and is 330 metres tall."
CODE = "Use this:\n```python\nprint('hi')\n```"


def _record(a: str, b: str, record_id: str = "r") -> dict[str, object]:
    return {"id": record_id, "prompt": "Q?", "responses": [a, b], "preference": 0}


def test_counters() -> None:
    assert word_count("a b  c\nd") == 4
    assert list_items(LISTED) == 3
    assert list_items("1. one\n2) two\nthree") == 2
    assert numbers(NUMBERED) == 2
    assert numbers("1. first item\n2. second item") == 0  # item numbers are not figures
    assert has_code(CODE) and not has_code(PROSE)


def test_each_family_labels_under_the_criterion_and_its_opposite() -> None:
    cases = {"length": (SHORT, LONG), "list": (LISTED, PROSE), "numbers": (NUMBERED, PROSE)}
    for family, (better, worse) in cases.items():
        rows = [
            r for r in checkable_pairs([_record(worse, better)]) if r["criteria_family"] == family
        ]
        by_id = {r["id"]: r for r in rows}
        criterion, opposite = by_id[f"r-{family}"], by_id[f"r-{family}-opposite"]
        assert criterion["preference"] == 1 and opposite["preference"] == 0
        spec = next(f for f in FAMILIES if f.name == family)
        assert (criterion["criteria"], opposite["criteria"]) == (spec.criterion, spec.opposite)
        assert criterion["source_id"] == "r" and criterion["responses"] == [worse, better]


def test_unclear_pairs_are_left_out_and_duplicates_used_once() -> None:
    similar = _record("one two three four", "one two three four five")  # no clear winner
    assert list(checkable_pairs([similar])) == []
    twice = [_record(SHORT, LONG, "a"), _record(LONG, SHORT, "b")]  # the same pair, swapped
    assert {r["source_id"] for r in checkable_pairs(twice)} == {"a"}
    assert list(checkable_pairs([{"id": "x", "prompt": "Q", "responses": ["a", "b", "c"]}])) == []


def test_code_family() -> None:
    rows = list(checkable_pairs([_record(PROSE, CODE)]))
    code = {r["id"]: r["preference"] for r in rows if r["criteria_family"] == "code"}
    assert code == {"r-code": 1, "r-code-opposite": 0}
