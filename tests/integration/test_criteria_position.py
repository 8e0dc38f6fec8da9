"""``--criteria-position end``: the criterion is repeated after the response, saved with the
model, and scoring with a shared prefix gives what scoring each sequence whole gives."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import write_jsonl
from tests.integration.test_bt_text import synthetic_pairs


def test_criterion_after_the_response(
    cli: Callable[..., Any], tiny_qwen2: Path, tmp_path: Path
) -> None:
    from omnirm.models.checkpoint import load_reward_model
    from omnirm.records import parse_record

    train = write_jsonl(tmp_path / "train.jsonl", synthetic_pairs(8, 0, "t"))
    out = tmp_path / "rm"
    trained = cli(
        "-q", "train", "bt", "--model", str(tiny_qwen2), "--data", str(train), "-o", str(out),
        "--epochs", "1", "--batch-size", "4", "--max-length", "128", "--lora-r", "4",
        "--criteria-position", "end",
    )  # fmt: skip
    assert trained.code == 0, trained.stderr
    config = json.loads((out / "omnirm_config.json").read_text())
    assert config["inputs"]["criteria_position"] == "end"

    _, builder, _ = load_reward_model(out)
    record = parse_record(synthetic_pairs(1, 3, "x")[0])
    text = builder.tokenizer.decode(builder.encode(record, 0).input_ids)
    assert text.rstrip().endswith("Prefer the helpful answer.<|im_end|>")
    assert text.count("Prefer the helpful answer.") == 2  # system message and after the response

    shared = cli("score", "--model", str(out), str(train)).jsonl()
    whole = cli("score", "--model", str(out), str(train), "--no-share-prefix").jsonl()
    for a, b in zip(shared, whole, strict=True):
        assert all(abs(x - y) < 1e-5 for x, y in zip(a["rewards"], b["rewards"], strict=True))
    overridden = cli("score", "--model", str(out), str(train), "--criteria", "Be rude.").jsonl()
    assert [r["rewards"] for r in overridden] != [r["rewards"] for r in shared]

    bad = cli("train", "bt", "--model", str(tiny_qwen2), "--data", str(train), "-o",
              str(tmp_path / "x"), "--criteria-position", "middle")  # fmt: skip
    assert bad.code == 2 and "--criteria-position must be system or end" in bad.stderr
