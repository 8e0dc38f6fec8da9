"""The records of scripts/r1_learnability.py: a task a judge can only solve by reading the
criterion, with rationales that state the checked relation and the right verdict."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "scripts"))

from r1_learnability import RESPONSE_WORDS, build_data, rationale  # noqa: E402

from omnirm.data.checkable import word_count  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    paths = build_data(tmp_path_factory.mktemp("r1l"))
    return {k: [json.loads(x) for x in p.read_text().splitlines()] for k, p in paths.items()}


def test_each_pair_comes_under_both_criteria_with_opposite_labels(files) -> None:  # type: ignore[no-untyped-def]
    for rows in files.values():
        assert rows and len(rows) % 2 == 0
        for first, second in zip(rows[::2], rows[1::2], strict=True):
            assert second["id"] == first["id"] + "-opposite"
            assert first["responses"] == second["responses"]
            assert first["preference"] == 1 - second["preference"]
            assert "shorter" in first["criteria"] and "longer" in second["criteria"]
            shorter = min((0, 1), key=lambda i: word_count(first["responses"][i]))
            assert first["preference"] == shorter
            assert max(map(word_count, first["responses"])) <= RESPONSE_WORDS


def test_train_and_held_out_share_no_prompt(files) -> None:  # type: ignore[no-untyped-def]
    assert not {r["prompt"] for r in files["train"]} & {r["prompt"] for r in files["heldout"]}
    assert all("rationale" in r for r in files["train"])
    assert not any("rationale" in r for r in files["heldout"])


def test_rationale_names_which_is_longer_then_the_verdict() -> None:
    text = rationale(["one two", "one two three four"], 1, "Prefer the longer answer.")
    assert text == (
        "Response B is longer than response A. The criterion asks for the longer answer, so "
        "response B is better."
    )
    text = rationale(["one two three four", "one two"], 1, "Prefer the shorter answer.")
    assert text == (
        "Response A is longer than response B. The criterion asks for the shorter answer, so "
        "response B is better."
    )
