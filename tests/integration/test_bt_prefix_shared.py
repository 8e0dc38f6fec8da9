"""Training with a shared prefix (each record one packed row: its prompt once, every response
after it, each seeing only the prompt and itself) gives the rewards, loss and gradients of the
two-sequence path — for text (Qwen2, Llama), vision-language and omni backbones, with gradient
checkpointing, with media in prompts and responses, and with the criterion after the response."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from omnirm.media import MediaResolver
from omnirm.models.checkpoint import build_reward_model
from omnirm.records import parse_record
from omnirm.train import packing
from omnirm.train.bt import BTConfig, PairCollator, pair_loss
from omnirm.train.packing import PackedRecord, packed_mask, row_chunks, supports_packing
from tests.integration.test_score_shared_prefix import media_dir as media_dir
from tests.integration.test_score_shared_prefix import media_records, text_records

LABELS: dict[str, dict[str, Any]] = {
    "pair": {"preference": 1},
    "ranked": {"ranking": [3, 0, 4, 1, 2]},
    "history": {"preference": 0},
    "same-start": {"gold_scores": [0.5, 0.9]},
    "long": {"preference": 0},
    "eight": {"ranking": [1, 0, 2, 3, 4, 5, 6, 7]},
    "video-prompt": {"preference": 2},
    "audio-responses": {"preference": 0},
    "image-prompt-image-responses": {"preference": 1},
}


def labelled(records: list[dict[str, Any]]) -> list[Any]:
    return [parse_record({**r, **LABELS.get(r["id"], {"preference": 0})}) for r in records]


def build(folder: Path, media_root: Path, **options: Any) -> tuple[Any, Any, BTConfig]:
    config = BTConfig(model=str(folder), data="-", output="-", **options)
    model, builder, _ = build_reward_model(config, MediaResolver(media_root))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-zero adapters, so that LoRA takes part in the comparison
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
    model.train()  # checkpointing recomputes only in training mode
    return model, builder, config


def loss_and_grads(
    model: Any, collator: PairCollator, records: list[Any], config: BTConfig
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    batch = collator(records)
    rewards = batch.rewards(model)
    loss = pair_loss(rewards, batch, config)
    loss.backward()
    grads = {
        name: p.grad.detach().clone()
        for name, p in model.named_parameters()
        if p.requires_grad and p.grad is not None
    }
    return rewards.detach(), loss.detach(), grads


def assert_same_training(model: Any, builder: Any, config: BTConfig, records: list[Any]) -> None:
    whole = PairCollator(builder, config.ties, backbone=None)
    shared = PairCollator(builder, config.ties, backbone=model.backbone)
    packed = [shared.encoded(r) for r in records]
    assert all(isinstance(p, PackedRecord) for p in packed)
    tokens_whole = sum(sum(s.length for s in whole.encoded(r)) for r in records)  # type: ignore[union-attr]
    assert sum(p.length for p in packed) < tokens_whole  # type: ignore[union-attr]
    rewards_a, loss_a, grads_a = loss_and_grads(model, whole, records, config)
    rewards_b, loss_b, grads_b = loss_and_grads(model, shared, records, config)
    torch.testing.assert_close(rewards_b, rewards_a, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-6)
    assert grads_a.keys() == grads_b.keys()
    assert any("lora_" in n for n in grads_a) and any(n.startswith("head.") for n in grads_a)
    # the head's bias gets a zero gradient from pairs (±): tolerances scale with the largest
    scale = max(float(g.abs().max()) for g in grads_a.values())
    assert scale > 0
    for name in grads_a:
        torch.testing.assert_close(
            grads_b[name], grads_a[name], rtol=1e-4, atol=1e-5 * scale, msg=name
        )


@pytest.mark.parametrize("fixture", ["tiny_qwen2", "tiny_llama"])
@pytest.mark.parametrize("position", ["system", "end"])
def test_text_shared_prefix_trains_like_whole_sequences(
    fixture: str, position: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    model, builder, config = build(
        request.getfixturevalue(fixture), tmp_path, max_length=160, criteria_position=position
    )
    assert model.backbone.is_activation_checkpointing  # the default
    records = labelled(text_records())
    collator = PairCollator(builder, "skip", backbone=model.backbone)
    long = collator.encoded(records[-1])
    assert isinstance(long, PackedRecord) and not long.shared  # truncated: whole sequences
    assert all(collator.encoded(r).shared for r in records[:-1])  # type: ignore[union-attr]
    # ... each in a row of its own: the batch is no wider than the widest single sequence
    assert collator.length_of(records[-1]) == max(s.length for s in long.segments)
    batch = collator(records)
    assert batch.inputs["input_ids"].shape[0] == len(records) + len(long.segments) - 1
    assert batch.inputs["input_ids"].shape[1] == max(collator.length_of(r) for r in records)
    assert_same_training(model, builder, config, records)


def test_rows_are_cut_into_groups_that_save_padding() -> None:
    widths = [528, 472, 397, 341, 320, 311, 308, 302, 262]  # a real batch of SmolLM2 rows
    assert row_chunks(widths).tolist() == [[0, 3, 528], [3, 9, 341]]  # type: ignore[union-attr]
    assert row_chunks([257, 257, 256, 253, 250, 249]) is None  # nothing to save
    assert row_chunks([5, 5, 3, 3, 1], cost=0).tolist() == [[0, 2, 5], [2, 4, 3], [4, 5, 1]]  # type: ignore[union-attr]
    assert row_chunks([]) is None


def test_rows_run_in_groups_train_like_whole_sequences(
    tiny_qwen2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packing, "CHUNK_COST", 0)  # every distinct width its own group
    model, builder, config = build(tiny_qwen2, tmp_path, max_length=160)
    records = labelled(text_records())
    batch = PairCollator(builder, config.ties, backbone=model.backbone)(records)
    assert batch.chunks is not None and len(batch.chunks) > 2
    bounds = batch.chunks.tolist()
    assert [end for _, end, _ in bounds[:-1]] == [start for start, _, _ in bounds[1:]]
    assert [width for _, _, width in bounds] == sorted({w for _, _, w in bounds}, reverse=True)
    assert_same_training(model, builder, config, records)


def test_eager_attention_reads_the_packed_mask(tiny_qwen2: Path, tmp_path: Path) -> None:
    model, builder, config = build(tiny_qwen2, tmp_path, max_length=160)
    model.backbone.set_attn_implementation("eager")
    assert supports_packing(model.backbone)
    assert_same_training(model, builder, config, labelled(text_records()))


@pytest.mark.parametrize("fixture", ["tiny_qwen2_5_vl", "tiny_omni_thinker"])
def test_multimodal_shared_prefix_trains_like_whole_sequences(
    fixture: str,
    request: pytest.FixtureRequest,
    media_dir: Path,
) -> None:
    omni = fixture == "tiny_omni_thinker"
    model, builder, config = build(request.getfixturevalue(fixture), media_dir)
    records = labelled(media_records(omni))
    assert_same_training(model, builder, config, records[:4])
    assert_same_training(model, builder, config, records[4:])


def test_the_mask_lets_each_response_see_the_prompt_and_itself_only() -> None:
    from omnirm.models.inputs import Encoded

    row = PackedRecord(Encoded([1, 2]), [Encoded([3, 4]), Encoded([5])], [None, None])
    mask = packed_mask([row], width=6)[0, 0].int()
    assert mask.tolist() == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 1],  # padding sees itself only
    ]


def test_a_training_run_has_the_same_first_step_loss_with_and_without_sharing(
    cli: Any, tiny_qwen2: Path, tmp_path: Path
) -> None:
    data = tmp_path / "train.jsonl"
    records = [{**r, **LABELS.get(r["id"], {"preference": 0})} for r in text_records()[:4]]
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    losses = {}
    for flag in ("--share-prefix", "--no-share-prefix"):
        out = tmp_path / flag
        result = cli(
            "train", "bt", "-m", str(tiny_qwen2), "--data", str(data), "-o", str(out),
            "--batch-size", "8", "--max-length", "160", flag,
            "--no-bf16",  # fp32: the layouts agree to float summation order, not bf16 rounding
        )  # fmt: skip
        assert result.code == 0, result.stderr
        assert "memory needed ≈" in result.stderr
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert summary["steps"] == 1
        losses[flag] = summary["last_loss"]
    assert losses["--share-prefix"] == pytest.approx(losses["--no-share-prefix"], abs=1e-5)
