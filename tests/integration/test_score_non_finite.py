"""A reward that comes out NaN or infinite is a record error: named, handled by ``--on-error``,
and the records after it are still scored."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_record, write_jsonl
from tests.integration.test_bench import saved_reward_model


@pytest.fixture(scope="module")
def rm(tiny_qwen2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_reward_model(tiny_qwen2, tmp_path_factory.mktemp("nan-rm") / "rm")


@pytest.fixture
def overflowing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model overflows on the second and fourth records of the file (NaN, then +inf)."""
    from omnirm import scoring

    real = scoring.shared_prefix_rewards

    def rewards(*args: Any) -> list[list[float]]:
        out = real(*args)
        out[1][0], out[3][1] = math.nan, math.inf
        return out

    monkeypatch.setattr(scoring, "shared_prefix_rewards", rewards)


@pytest.mark.parametrize("policy", ["fail", "skip", "record"])
def test_a_non_finite_reward_is_a_record_error(
    cli: Callable[..., Any], rm: Path, tmp_path: Path, overflowing: None, policy: str
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [make_record(f"r{i}") for i in range(6)])
    result = cli("score", "--model", str(rm), str(path), "--on-error", policy)
    assert result.code == (0 if policy == "skip" else 1)  # a skip is a warning, not a failure
    assert "Traceback" not in result.stderr
    assert "in.jsonl:2: record 'r1': responses[0]: the model's reward for response 0 is nan" in (
        result.stderr
    )
    out = result.jsonl()
    if policy == "fail":  # stops there, after what came before
        assert [r["id"] for r in out] == ["r0"]
        return
    if policy == "skip":  # one summary warning naming the first
        assert "2 records skipped" in result.stderr
        assert [r["id"] for r in out] == ["r0", "r2", "r4", "r5"]
    else:
        assert "record 'r3': responses[1]" in result.stderr and "is inf" in result.stderr
        assert [r["id"] for r in out] == [f"r{i}" for i in range(6)]
        assert out[1]["error"]["field"] == "responses[0]" and "rewards" not in out[1]
        assert out[3]["error"]["id"] == "r3"
    assert all(math.isfinite(x) for r in out if "rewards" in r for x in r["rewards"])
    assert "4 records scored" in result.stderr and "2 failed" in result.stderr
