"""``--verdict probs`` / ``rationale-probs`` in ``score``, ``bench`` and ``bon`` on tiny judges
with a fixed opinion (``tests.tiny_models.make_tiny_fixed_answer``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_jsonl
from tests.tiny_models import make_tiny_fixed_answer


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def judges(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("judges")
    return {
        "always_a": make_tiny_fixed_answer(root / "a", "Yes[[A]] Indeed"),
        "tie": make_tiny_fixed_answer(root / "c", "Even[[C]] so"),
    }


def pairs(n: int = 3, preference: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": f"p{i}",
            "prompt": f"What is {i} + {i}?",
            "criteria": "Correctness.",
            "responses": [str(2 * i), str(2 * i + 1)],
            "preference": preference,
        }
        for i in range(n)
    ]


def probs(cli: Callable[..., Any], model: Path, path: Path, *extra: str) -> Any:
    return cli("score", "--judge", f"hf:{model}", str(path), "--verdict", "probs", *extra)


def test_one_order_gives_a_graded_margin(
    cli: Callable[..., Any], judges: dict[str, Path], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs())
    result = probs(cli, judges["always_a"], path, "--orders", "ab")
    assert result.code == 0, result.stderr
    records = result.jsonl()
    assert [r["id"] for r in records] == ["p0", "p1", "p2"]
    for record in records:
        assert record["predicted"] == 0 and record["consistent"] is None
        better, worse = record["rewards"]
        assert better > 0.99 and worse < 0.01 and better + worse == pytest.approx(1.0)
        assert record["margin"] == pytest.approx(better - worse)
        (judgement,) = record["judgements"]
        assert judgement["order"] == "ab" and judgement["verdict"] == "A"
        assert judgement["probabilities"]["A"] > 0.99 and set(judgement["probabilities"]) == {
            "A",
            "B",
        }  # no tie letter unless --ties
        assert 0 < judgement["mass"] <= 1
        assert record["rationale"] is None  # read at the start of the answer: nothing written
        assert record["scored_by"]["verdict"] == "probs"
        assert "tie_probability" not in record


def test_both_orders_average_away_a_position_bias(
    cli: Callable[..., Any], judges: dict[str, Path], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs(2))
    result = probs(cli, judges["always_a"], path)
    assert result.code == 0, result.stderr
    for record in result.jsonl():
        ab, ba = record["judgements"]
        assert (ab["verdict"], ab["predicted"]) == ("A", 0)
        assert (ba["verdict"], ba["predicted"]) == ("A", 1)
        assert record["consistent"] is False
        assert abs(record["margin"]) < 0.01  # P_ab(A) and P_ba(B) average to one half
        assert record["rewards"][0] == pytest.approx(0.5, abs=0.01)
    assert "order consistency 0.0% (2 pairs)" in result.stderr
    assert "4 answers (0 from the cache, 4 probability readings asked)" in result.stderr


def test_rationale_first_then_the_letter(
    cli: Callable[..., Any], judges: dict[str, Path], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs(1))
    result = cli("score", "--judge", f"hf:{judges['always_a']}", str(path), "--verdict",
                 "rationale-probs", "--orders", "ab", "--max-new-tokens", "16")  # fmt: skip
    assert result.code == 0, result.stderr
    (record,) = result.jsonl()
    assert record["rationale"] == "Yes"
    assert record["judgements"][0]["completion_tokens"] > 0
    assert record["judgements"][0]["mass"] > 0.99  # the letter is what it writes after "[["
    assert record["predicted"] == 0 and record["scored_by"]["verdict"] == "rationale-probs"


def test_ties_offered_read_the_tie_letter(
    cli: Callable[..., Any], judges: dict[str, Path], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs(1))
    result = probs(cli, judges["tie"], path, "--ties")
    assert result.code == 0, result.stderr
    (record,) = result.jsonl()
    assert record["predicted"] == "tie" and record["tie_probability"] > 0.99
    assert record["consistent"] is True
    assert set(record["judgements"][0]["probabilities"]) == {"A", "B", "C"}


def test_readings_are_cached_per_setting(
    cli: Callable[..., Any], judges: dict[str, Path], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs(2))
    first = probs(cli, judges["always_a"], path, "--orders", "ab")
    again = probs(cli, judges["always_a"], path, "--orders", "ab")
    assert first.code == again.code == 0
    assert [r["rewards"] for r in again.jsonl()] == [r["rewards"] for r in first.jsonl()]
    assert all(r["judgements"][0]["cached"] for r in again.jsonl())
    assert not any(r["judgements"][0]["cached"] for r in first.jsonl())
    # another setting (a tie letter offered) is never answered from those readings
    tied = probs(cli, judges["always_a"], path, "--orders", "ab", "--ties")
    assert not any(r["judgements"][0]["cached"] for r in tied.jsonl())


def test_bench_and_bon_use_the_probabilities(
    cli: Callable[..., Any], judges: dict[str, Path], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs(4))
    bench = cli("bench", str(path), "--judge", f"hf:{judges['always_a']}", "--verdict", "probs",
                "--orders", "ab", "--json")  # fmt: skip
    assert bench.code == 0, bench.stderr
    (task,) = json.loads(bench.stdout)["tasks"]
    assert task["n"] == 4 and task["accuracy_without_ties"] == 1.0
    candidates = [{"id": "c0", "prompt": "Name a colour.", "responses": ["red", "blue", "green"]}]
    bon = cli("bon", str(write_jsonl(tmp_path / "c.jsonl", candidates)), "--judge",
              f"hf:{judges['always_a']}", "--verdict", "probs", "--orders", "ab",
              "--tournament", "round-robin")  # fmt: skip
    assert bon.code == 0, bon.stderr
    (record,) = bon.jsonl()
    assert record["ranking"] == [0, 1, 2]  # "A" wins every match: the first shown goes through


def test_usage_errors_are_clear(
    cli: Callable[..., Any], judges: dict[str, Path], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs(1))
    pointwise = probs(cli, judges["always_a"], path, "--mode", "pointwise")
    assert pointwise.code == 2
    assert "--verdict probs reads a pairwise verdict" in pointwise.stderr
    assert pointwise.stdout == ""
    # a server judge exposes no next-token probabilities: refused before any record is read
    server = cli("score", "--judge", "openai:some-model", "--base-url", "http://127.0.0.1:9/v1",
                 str(path), "--verdict", "probs")  # fmt: skip
    assert server.code == 2 and server.stdout == ""
    assert "openai: judges do not expose them (use an hf: judge)" in server.stderr
