"""Criteria whose answer can be read off the responses: the rules and the records they make."""

from __future__ import annotations

from omnirm.data.checkable import (
    FAMILIES,
    as_list,
    as_prose,
    checkable_pairs,
    edited_pairs,
    has_code,
    list_items,
    numbers,
    shortened,
    without_code,
    without_numbers,
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


ARTICLE = (
    "The tower was built for the 1889 World's Fair. It is 330 metres tall. "
    "Many people disliked it at first. Today it is loved by visitors. "
    "It was the tallest structure for decades. Engineers still study its design."
)
ITEMS = "Tips:\n\n1. Sleep well\n\n2. Eat greens.\n\n3. Walk daily\nThat is all."


def test_edits_change_one_checkable_respect() -> None:
    prose = as_prose(ITEMS)
    assert prose == "Tips:\n\nSleep well. Eat greens. Walk daily.\n\nThat is all."
    assert list_items(prose) == 0 and as_prose(PROSE) is None
    listed = as_list(ARTICLE)
    assert listed is not None and list_items(listed) == 5
    assert listed.startswith("The tower was built for the 1889 World's Fair.\n\n- It is 330")
    assert as_list(LISTED) is None  # a list already
    plain = without_numbers(ARTICLE)
    assert plain is not None and numbers(plain) == 0
    assert plain.startswith("Many people disliked it at first.")
    assert without_numbers(PROSE) is None
    short = shortened(ARTICLE)
    assert short is not None and 0 < word_count(short) <= word_count(ARTICLE) // 2
    assert ARTICLE.startswith(short)
    assert without_code(CODE + "\nThat prints a greeting on the screen for you.") == (
        "Use this:\n\nThat prints a greeting on the screen for you."
    )


def test_edited_pairs_label_the_edit_under_both_criteria() -> None:
    records = [{**_record(ARTICLE, ITEMS, f"r{i}"), "prompt": f"Q{i}?"} for i in range(8)]
    rows = list(edited_pairs(records[:1]))
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    for row in rows:
        family = next(f for f in FAMILIES if f.name == row["criteria_family"])
        better = family.decide(*row["responses"])
        opposite = row["id"].endswith("-opposite")
        assert row["preference"] == (1 - better if opposite else better)
        assert row["criteria"] == (family.opposite if opposite else family.criterion)
        assert row["source_id"] == "r0" and row["edit"] in row["id"]
    assert {r["edit"] for r in rows} == {"as_list", "as_prose", "without_numbers"}
    # too short to halve by the length rule's margin (25 words): no length pair from ARTICLE
    assert {r["edit"] for r in edited_pairs([_record(LONG, SHORT)])} == {"shortened", "as_list"}
    # which side holds the edited copy varies, so position says nothing
    sides = {r["responses"][0] == ARTICLE for r in edited_pairs(records) if r["edit"] == "as_list"}
    assert sides == {True, False}
