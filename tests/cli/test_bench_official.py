"""``omnirm bench --suite rewardbench|rewardbench2 FILE``: the leaderboards' own rules applied to
records scored already, with the official sections shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_jsonl


def rb1(record_id: str, subset: str, section: str, rewards: list[float], gold: int = 0) -> Any:
    return {
        "id": record_id,
        "task": section,
        "subset": subset,
        "prompt": f"Question {record_id}?",
        "responses": [f"Answer {record_id}.", f"Reply {record_id}."],
        "preference": gold,
        "rewards": rewards,
    }


def scored_rb1() -> list[Any]:
    return [
        rb1("a1", "alpacaeval-easy", "chat", [1.0, 0.0]),  # right
        rb1("a2", "alpacaeval-easy", "chat", [0.0, 1.0]),  # wrong
        rb1("l1", "alpacaeval-length", "chat", [0.0, 2.0], gold=1),
        rb1("l2", "alpacaeval-length", "chat", [3.0, 2.0]),
        rb1("h1", "mt-bench-hard", "chat-hard", [1.0, 0.5]),
        rb1("m1", "math-prm", "reasoning", [0.5, 0.5]),  # equal rewards score 0 in RewardBench
        rb1("m2", "math-prm", "reasoning", [0.0, 1.0]),
        rb1("g1", "hep-go", "reasoning", [2.0, 1.0]),
    ]


def test_rewardbench_rule_on_a_scored_file(cli: Callable[..., Any], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rb-scored.jsonl", scored_rb1())
    result = cli("bench", "--suite", "rewardbench", str(path), "--json", "--bootstrap", "0")
    assert result.code == 0, result.stderr
    (report,) = result.jsonl()
    official = report["official"]
    assert official["rule"].startswith("RewardBench 1")
    # sections: subsets weighted by EXAMPLE_COUNTS (alpacaeval-easy 100, -length 95; math-prm 984,
    # hep-go 164), not the plain pair accuracy (chat 3/4, reasoning 1/3) of the task rows
    chat, reasoning = (0.5 * 100 + 1.0 * 95) / 195, 164 / (984 + 164)
    assert official["sections"] == pytest.approx(
        {"chat": chat, "chat-hard": 1.0, "reasoning": reasoning}, abs=1e-6
    )
    assert official["score"] == pytest.approx((chat + 1.0 + reasoning) / 3, abs=1e-6)
    assert official["missing_sections"] == ["safety"]
    plain = {t["task"]: t["accuracy_without_ties"] for t in report["tasks"]}
    assert plain["chat"] == 0.75 and plain["reasoning"] == pytest.approx(1 / 3, abs=1e-6)
    # the terminal report shows the official sections, their subsets and the score
    lines = result.stderr.splitlines()
    assert any("Official: RewardBench 1" in line for line in lines)
    assert any(
        "chat " in line and "2 of 5" in line and f"{100 * chat:.2f}" in line for line in lines
    )
    assert any("reasoning" in line and "2 of 7" in line and "14.29" in line for line in lines)
    assert any("safety" in line and "not run" in line for line in lines)  # no subset of it
    score = f"{100 * official['score']:.2f}"
    assert any("Score (mean of 3 sections)" in line and score in line for line in lines)
    assert f"score {score} (without safety" in result.stderr
    assert "records scored" not in result.stderr  # read as scored, no model loaded


def test_rewardbench2_rule_on_a_scored_file(cli: Callable[..., Any], tmp_path: Path) -> None:
    def bon(record_id: str, subset: str, rewards: list[float]) -> Any:
        return {
            "id": record_id,
            "task": subset.lower(),
            "subset": subset,
            "prompt": "Q?",
            "responses": ["right", "w1", "w2", "w3"],
            "preference": 0,
            "num_correct": 1,
            "rewards": rewards,
        }

    rows = [
        bon("math-1", "Math", [3.0, 1.0, 2.0, 0.0]),  # correct on top: 1
        bon("math-2", "Math", [3.0, 3.0, 1.0, 0.0]),  # two share the top: 1/2
        bon("focus-1", "Focus", [0.0, 1.0, 0.5, 0.2]),  # 0
    ]
    path = write_jsonl(tmp_path / "rb2-scored.jsonl", rows)
    result = cli("bench", "--suite", "rewardbench2", str(path), "--json", "--bootstrap", "0")
    assert result.code == 0, result.stderr
    (report,) = result.jsonl()
    assert report["official"]["subsets"] == {
        "Math": {"score": 0.75, "n": 2},
        "Focus": {"score": 0.0, "n": 1},
    }
    assert report["official"]["score"] == 0.375
    assert "Official: RewardBench 2" in result.stderr
    assert any("Math" in line and "75.00" in line for line in result.stderr.splitlines())


def test_records_the_rule_cannot_score_are_named(cli: Callable[..., Any], tmp_path: Path) -> None:
    tie = {**rb1("t1", "donotanswer", "safety", [1.0, 1.0]), "preference": "tie"}
    path = write_jsonl(tmp_path / "with-tie.jsonl", [*scored_rb1(), tie])
    result = cli("bench", "--suite", "rewardbench", str(path), "--bootstrap", "0")
    assert result.code == 2
    assert "record t1: RewardBench pairs need gold 0 or 1" in result.stderr
    plain = [{**r, "task": "t2t"} for r in scored_rb1()]
    for row in plain:
        row.pop("subset")
    other = write_jsonl(tmp_path / "other.jsonl", plain)
    refused = cli("bench", "--suite", "rewardbench", str(other), "--bootstrap", "0")
    assert refused.code == 2 and "no record is in a RewardBench subset" in refused.stderr
    both = cli("bench", "--suite", "rewardbench", str(path), "--data", str(tmp_path))
    assert both.code == 2 and "not both" in both.stderr
    unknown = cli("bench", "--suite", "rewardbench3", str(path))
    assert unknown.code == 2 and "unknown suite" in unknown.stderr


def test_unscored_records_go_to_the_default_model(
    cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnirm.models import default

    monkeypatch.setattr(default, "DEFAULT_MODEL_DIR", tmp_path / "no-default-model")
    rows = scored_rb1()
    for row in rows:
        row.pop("rewards")
    path = write_jsonl(tmp_path / "rb.jsonl", rows)
    result = cli("bench", "--suite", "rewardbench", str(path))
    # the records are scored by the embedded model (missing here, so a clear usage error), not
    # reported one by one as "not scored"
    assert result.code == 2 and "embedded default reward model is missing" in result.stderr
    half = write_jsonl(tmp_path / "half.jsonl", [*scored_rb1()[:1], *rows[1:]])
    mixed = cli("bench", "--suite", "rewardbench", str(half))
    assert mixed.code == 1 and "not scored" in mixed.stderr  # a file scored in part: errors
