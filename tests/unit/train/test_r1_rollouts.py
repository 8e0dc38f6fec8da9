"""``train r1 --rollouts``: the refusal of vLLM where it cannot run, the adapter export that
syncs vLLM to the policy, and the engine/sampling options built from a config.

vLLM is not installed here (nor in CI): the test that runs GRPO on it is in
tests/integration/test_train_r1_vllm.py, marked ``gpu``. Nothing here fakes vLLM's engine.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from omnirm.errors import UsageError
from omnirm.train.config_file import resolve_config
from omnirm.train.r1.config import R1Config
from omnirm.train.r1.rollouts import (
    GenerateRollouts,
    export_adapter,
    lora_request_args,
    make_rollouts,
    vllm_engine_options,
    vllm_lora_rank,
    vllm_sampling_options,
)
from tests.conftest import write_jsonl
from tests.tiny_models import make_tiny_qwen2


def _config(**changes: object) -> R1Config:
    return R1Config(model="m", data="d.jsonl", output="o", **changes)  # type: ignore[arg-type]


def _grpo_args(tmp_path: Path, model: Path) -> list[str]:
    data = write_jsonl(
        tmp_path / "d.jsonl", [{"id": "a", "prompt": "Q", "responses": ["x", "y"], "preference": 0}]
    )
    return [
        "train", "r1", "--model", str(model), "--data", str(data), "-o", str(tmp_path / "out"),
        "--stage", "grpo", "--rollouts", "vllm",
    ]  # fmt: skip


def test_vllm_rollouts_without_vllm_are_refused_before_any_model_loads(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` fails even where installed
    # no model at --model: the refusal comes before anything would read it
    result = cli(*_grpo_args(tmp_path, tmp_path / "no-such-model"))
    assert result.code == 2, result.stderr
    assert "--rollouts vllm" in result.stderr
    assert "pip install 'omnirm[vllm]'" in result.stderr
    assert "--rollouts generate" in result.stderr
    assert "no-such-model" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_vllm_rollouts_without_a_gpu_are_refused(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))  # importable, no engine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = cli(*_grpo_args(tmp_path, tmp_path / "no-such-model"))
    assert result.code == 2, result.stderr
    assert "--rollouts vllm: vLLM needs a CUDA GPU" in result.stderr
    assert not (tmp_path / "out").exists()


def test_rollouts_setting_is_checked_and_reachable_from_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--rollouts must be one of generate, vllm"):
        _config(rollouts="sglang").validate()
    with pytest.raises(UsageError, match="--vllm-gpu-memory-utilization"):
        _config(vllm_gpu_memory_utilization=1.5).validate()
    path = tmp_path / "r1.toml"
    path.write_text(
        'model = "m"\ndata = "d"\noutput = "o"\nrollouts = "vllm"\n'
        "vllm_gpu_memory_utilization = 0.5\n"
    )
    config = resolve_config(R1Config, path, {})
    assert (config.rollouts, config.vllm_gpu_memory_utilization) == ("vllm", 0.5)
    assert isinstance(make_rollouts(_config()), GenerateRollouts)
    assert make_rollouts(_config(rollouts="vllm")) is None  # built once the policy is loaded


def test_engine_options_follow_the_config() -> None:
    lora = vllm_engine_options(_config(lora_r=12, max_length=300, max_completion_length=40))
    assert lora == {
        "gpu_memory_utilization": 0.3,
        "max_model_len": 340,
        "seed": 0,
        "dtype": "auto",
        "enable_lora": True,
        "max_loras": 1,
        "max_lora_rank": 16,
    }
    full = vllm_engine_options(_config(full=True, bf16=False, seed=7))
    assert "enable_lora" not in full and "max_lora_rank" not in full
    assert (full["dtype"], full["seed"]) == ("float32", 7)
    assert vllm_engine_options(_config(bf16=True))["dtype"] == "bfloat16"
    assert [vllm_lora_rank(r) for r in (1, 8, 9, 64, 65, 512)] == [8, 8, 16, 64, 128, 512]
    with pytest.raises(UsageError, match="--lora-r 600"):
        vllm_lora_rank(600)


def test_sampling_options_follow_the_config_and_the_step() -> None:
    config = _config(generations=5, temperature=0.7, top_p=0.9, max_completion_length=33, seed=4)
    assert vllm_sampling_options(config, {7, 3}, step=2) == {
        "n": 5,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 33,
        "seed": 6,
        "stop_token_ids": [3, 7],
    }
    assert vllm_sampling_options(config, {3}, step=3)["seed"] == 7


def test_exported_adapter_loads_with_the_live_weights_and_each_step_gets_a_new_id(
    tmp_path: Path,
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from omnirm.models.checkpoint import lora_settings
    from omnirm.train.r1.policy import load_policy

    model = make_tiny_qwen2(tmp_path / "base")
    config = R1Config(model=str(model), data="d", output="o", lora_r=4)
    policy, resolved = load_policy(config)
    policy.attach_lora(config, lora_settings(config, "text", resolved.folder, None))
    torch.manual_seed(0)
    with torch.no_grad():  # a trained adapter: B is no longer zero
        for name, parameter in policy.net.named_parameters():
            if "lora_" in name:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    requests = []
    for step in (1, 2):
        folder = export_adapter(policy.net, tmp_path / "sync" / f"step-{step}")
        assert (folder / "adapter_model.safetensors").is_file()
        assert not (folder / "adapter_model.bin").exists()
        requests.append(lora_request_args("grpo", step, folder))
    assert [r[1] for r in requests] == [2, 3] and requests[0][0] != requests[1][0]
    assert requests[1][2] == str(tmp_path / "sync" / "step-2")

    base = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32)
    loaded = PeftModel.from_pretrained(base, requests[1][2])
    live = {k: v for k, v in policy.net.state_dict().items() if "lora_" in k}
    read = {k: v for k, v in loaded.state_dict().items() if "lora_" in k}
    assert live and live.keys() == read.keys()
    for key, value in live.items():
        assert torch.equal(value, read[key]), key
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    policy.net.eval()
    with torch.no_grad():
        assert torch.allclose(policy.net(input_ids=ids).logits, loaded(input_ids=ids).logits)


def _image(n: int) -> dict[str, str]:
    return {"type": "image", "path": f"{n}.png"}


def test_media_shares_split_patches_by_grid_and_items_by_count() -> None:
    from omnirm.train.r1.rollouts import MediaBatch, media_shares, rows_media

    conversations = [
        [{"role": "user", "content": [_image(1), {"type": "text", "text": "a"}, _image(2)]}],
        [{"role": "user", "content": "text only"}],
        [{"role": "user", "content": [{"type": "audio", "path": "a.wav"}, _image(3)]}],
    ]
    grid = torch.tensor([[1, 2, 2], [1, 2, 4], [1, 4, 4]])  # 4, 8 and 16 patches
    inputs = {
        "input_ids": torch.zeros(3, 5, dtype=torch.long),
        "attention_mask": torch.ones(3, 5, dtype=torch.long),
        "mm_token_type_ids": torch.arange(15).view(3, 5),
        "pixel_values": torch.arange(28.0).view(28, 1),
        "image_grid_thw": grid,
        "input_features": torch.arange(2.0).view(1, 2),
    }
    shares = media_shares(inputs, conversations)
    assert shares is not None
    assert [s["pixel_values"].flatten().tolist() for s in shares] == [
        list(range(12)), [], list(range(12, 28))
    ]  # fmt: skip
    assert [s["image_grid_thw"].shape[0] for s in shares] == [2, 0, 1]
    assert [s["input_features"].shape[0] for s in shares] == [0, 0, 1]
    for n, share in enumerate(shares):  # per token: the prompt's own row
        assert torch.equal(share["mm_token_type_ids"], inputs["mm_token_type_ids"][n : n + 1])
    batch = MediaBatch(0, inputs, shares)
    # rows 1..4 of 2 answers per prompt: prompt 0, prompt 1, prompt 1, prompt 2
    media = rows_media(batch, range(1, 5), 2, answer_width=3)
    assert media["pixel_values"].flatten().tolist() == list(range(12)) + list(range(12, 28))
    assert media["image_grid_thw"].tolist() == [[1, 2, 2], [1, 2, 4], [1, 4, 4]]
    assert media["input_features"].shape[0] == 1
    assert media["mm_token_type_ids"].shape == (4, 8)  # the answers' text positions added
    assert media["mm_token_type_ids"][:, 5:].abs().sum() == 0
    # rows with no image at all carry no image tensors (the towers get none)
    assert set(rows_media(batch, range(2, 4), 2, 0)) == {"mm_token_type_ids"}


def test_media_shares_give_up_on_unknown_or_uncountable_outputs() -> None:
    from omnirm.train.r1.rollouts import media_shares

    conversations = [[{"role": "user", "content": [_image(1)]}]] * 2
    base = {"input_ids": torch.zeros(2, 3), "attention_mask": torch.ones(2, 3)}
    known = {
        **base,
        "pixel_values": torch.zeros(8, 1),
        "image_grid_thw": torch.tensor([[1, 2, 2]] * 2),
    }
    assert media_shares(known, conversations) is not None
    # another model's output: not known, so the batch goes one prompt at a time
    assert media_shares({**known, "image_sizes": torch.zeros(2, 2)}, conversations) is None
    # patches that do not add up to the grids
    assert media_shares({**known, "pixel_values": torch.zeros(9, 1)}, conversations) is None
