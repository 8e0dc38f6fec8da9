"""``omnirm train r1 --rollouts vllm`` on a CUDA GPU: GRPO samples with an in-process vLLM
engine that follows the policy every step (LoRA adapters, or all weights with ``--full``).

Needs a CUDA GPU and vLLM (``pip install 'omnirm[vllm]'``); skipped elsewhere. Nothing fakes
vLLM.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import write_jsonl
from tests.tiny_models import make_tiny_vllm_qwen2

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available() or importlib.util.find_spec("vllm") is None,
        reason="needs a CUDA GPU and vLLM (pip install 'omnirm[vllm]')",
    ),
]


@pytest.mark.parametrize("full", [False, True], ids=["lora", "full"])
def test_grpo_on_vllm_samples_from_the_synced_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, full: bool
) -> None:
    from vllm import SamplingParams

    from omnirm.train.r1 import R1Config, train_r1
    from omnirm.train.r1.policy import prompt_ids
    from omnirm.train.r1.rollouts import VllmRollouts

    model = make_tiny_vllm_qwen2(tmp_path / "base")
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [{"id": f"q{i}", "prompt": f"Q{i}", "responses": ["yes", "no"], "preference": i % 2}
         for i in range(4)],
    )  # fmt: skip
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    probe = [{"role": "user", "content": "Which answer is better, A or B?"}]
    seen: list[tuple[int, list[int], list[int]]] = []  # step, engine's greedy, policy's greedy
    original_sync = VllmRollouts.sync

    def checked_sync(self: VllmRollouts, net: Any, step: int) -> None:
        original_sync(self, net, step)
        prompt = prompt_ids(tokenizer, probe)
        greedy = SamplingParams(temperature=0.0, max_tokens=8)
        out = self.llm.generate(
            [{"prompt_token_ids": prompt}], greedy, lora_request=self.lora_request, use_tqdm=False
        )
        engine = list(out[0].outputs[0].token_ids)
        was_training = net.training
        net.eval()
        with torch.no_grad():
            ids = torch.tensor([prompt], device=next(net.parameters()).device)
            policy = net.generate(
                ids, do_sample=False, max_new_tokens=8, pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
            )[0, len(prompt) :].tolist()  # fmt: skip
        net.train(was_training)
        seen.append((step, engine, policy[: len(engine)]))

    monkeypatch.setattr(VllmRollouts, "sync", checked_sync)
    out = tmp_path / "out"
    result = train_r1(
        R1Config(
            model=str(model), data=str(data), output=str(out), stage="grpo", max_steps=2,
            generations=2, prompts_per_step=2, max_completion_length=8, batch_size=4,
            lr=5e-2 if not full else 1e-3, warmup_ratio=0.0, full=full, bf16=False,
            rollouts="vllm",
        )
    )  # fmt: skip
    assert result.steps == {"grpo": 2}
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2]
    assert all(s["completion_length"] > 0 for s in steps)
    assert [s for s, _, _ in seen] == [1, 2]
    for step, engine, policy in seen:
        assert engine == policy, (step, engine, policy)
