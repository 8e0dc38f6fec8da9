"""train r1's SFT with the two orders' common conversation start run once (a packed row per
record) gives the loss and gradients of the whole sequences; its length-grouped batches are
seeded, padded to their own longest row only, and a resumed epoch sees the same batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from omnirm.train.r1.config import R1Config
from omnirm.train.r1.sft import SftRecord
from tests.conftest import write_jsonl
from tests.integration.test_train_r1 import records as base_records


def records(n: int) -> list[dict[str, Any]]:
    """test_train_r1's records, of varied lengths, some with a history."""
    rows = base_records(n)
    for i, row in enumerate(rows):
        row["prompt"] += " Think it over." * (i % 4)
        row["responses"][1] *= 1 + i % 2
        if i % 3 == 0:
            row["messages"] = [
                {"role": "user", "content": "Hello."},
                {"role": "assistant", "content": "Hi."},
            ]
    return rows


def load(folder: Path, data: Path, **options: Any) -> tuple[Any, Any, R1Config]:
    from omnirm.judging.conversations import ConversationBuilder
    from omnirm.media import MediaResolver
    from omnirm.models.checkpoint import lora_settings
    from omnirm.prompts.templates import default_template
    from omnirm.train.r1.data import load_examples
    from omnirm.train.r1.policy import load_policy

    config = R1Config(model=str(folder), data=str(data), output="-", stage="sft", **options)
    policy, resolved = load_policy(config)
    policy.attach_lora(config, lora_settings(config, "text", resolved.folder, None))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-zero adapters, so that LoRA takes part in the comparison
        for name, parameter in policy.net.named_parameters():
            if "lora_B" in name:
                parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
    policy.net.train()  # checkpointing recomputes only in training mode
    builder = ConversationBuilder(
        default_template("pairwise"), MediaResolver(data.parent), policy.modalities
    )
    examples = load_examples(str(data), builder, sft=True, report=False).examples
    return policy, examples, config


def loss_and_grads(policy: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
    from omnirm.train.r1.sft import sft_loss

    policy.net.zero_grad()
    loss = sft_loss(policy.net, batch)
    loss.backward()
    grads = {
        name: p.grad.detach().clone()
        for name, p in policy.net.named_parameters()
        if p.requires_grad and p.grad is not None
    }
    return loss.detach(), grads


@pytest.mark.parametrize("checkpointing", [True, False], ids=["checkpointed", "plain"])
def test_shared_start_gives_the_loss_and_gradients_of_whole_sequences(
    tiny_qwen2: Path, tmp_path: Path, checkpointing: bool
) -> None:
    from omnirm.train.r1.sft import collate_records, encode_examples, sharing_backbone

    data = write_jsonl(tmp_path / "d.jsonl", records(6))
    policy, examples, config = load(tiny_qwen2, data, gradient_checkpointing=checkpointing)
    backbone = sharing_backbone(policy, config, report=False)
    assert backbone is not None
    packed = encode_examples(examples, policy, config, report=False, share=True)
    whole = encode_examples(examples, policy, config, report=False, share=False)
    assert [len(r.sequences) for r in packed] == [2] * 6
    for record in packed:  # the start is shared, the first answer token is not
        first, second = (s.input_ids for s in record.sequences)
        assert record.shared > 20 and first[: record.shared] == second[: record.shared]
        assert first[record.shared] != second[record.shared]
        assert all(t == -100 for s in record.sequences for t in s.labels[: record.shared + 1])
    pad = int(policy.tokenizer.pad_token_id)
    shared_batch = collate_records(packed, pad, policy, backbone)
    whole_batch = collate_records(whole, pad, policy)
    assert shared_batch["input_ids"].shape[0] == 6 and whole_batch["input_ids"].shape[0] == 12
    assert int(shared_batch["tokens"]) < 0.75 * int(whole_batch["tokens"])
    assert int((shared_batch["labels"] != -100).sum()) == int((whole_batch["labels"] != -100).sum())
    loss_whole, grads_whole = loss_and_grads(policy, whole_batch)
    loss_shared, grads_shared = loss_and_grads(policy, shared_batch)
    torch.testing.assert_close(loss_shared, loss_whole, rtol=1e-5, atol=1e-6)
    assert grads_whole.keys() == grads_shared.keys() and any("lora_" in n for n in grads_whole)
    for name, grad in grads_whole.items():
        torch.testing.assert_close(grads_shared[name], grad, rtol=1e-3, atol=1e-6, msg=name)
    # the loss is transformers' own causal-LM loss on the whole sequences
    inputs = {k: v for k, v in whole_batch.items() if k != "tokens"}
    with torch.no_grad():
        torch.testing.assert_close(policy.net(**inputs).loss, loss_whole, rtol=1e-5, atol=1e-6)


def test_a_record_with_one_order_packs_alone(tiny_qwen2: Path, tmp_path: Path) -> None:
    from omnirm.train.r1.sft import Encoded, collate_records, shared_start, sharing_backbone

    data = write_jsonl(tmp_path / "d.jsonl", records(2))
    policy, examples, config = load(tiny_qwen2, data)
    backbone = sharing_backbone(policy, config, report=False)
    from omnirm.train.r1.policy import answer_ids

    sequences = []
    for example in examples[:3]:  # both orders of r0, one of r1
        ids, labels = answer_ids(
            policy.tokenizer, example.conversation, example.answer, policy.eos_ids
        )
        sequences.append(Encoded(ids, labels))
    assert shared_start(sequences[2:]) == 0
    one = SftRecord(sequences[2:], packed=True)
    both = SftRecord(sequences[:2], packed=True, shared=shared_start(sequences[:2]))
    pad = int(policy.tokenizer.pad_token_id)
    shared_batch = collate_records([both, one], pad, policy, backbone)
    whole_batch = collate_records([SftRecord(sequences[:2]), SftRecord(sequences[2:])], pad, policy)
    assert shared_batch["input_ids"].shape[1] == max(both.length, one.length)
    loss_whole, _ = loss_and_grads(policy, whole_batch)
    loss_shared, _ = loss_and_grads(policy, shared_batch)
    torch.testing.assert_close(loss_shared, loss_whole, rtol=1e-5, atol=1e-6)


def test_length_grouped_batches_are_seeded_and_padded_to_their_own_longest(
    tiny_qwen2: Path, tmp_path: Path
) -> None:
    from omnirm.train.r1.sft import encode_examples, sft_loader, sharing_backbone

    data = write_jsonl(tmp_path / "d.jsonl", records(24))
    policy, examples, config = load(tiny_qwen2, data, batch_size=4)
    backbone = sharing_backbone(policy, config, report=False)
    encoded = encode_examples(examples, policy, config, report=False, share=True)

    def batches(seed: int, epoch: int) -> list[list[int]]:
        loader = sft_loader(encoded, policy, config, seed, backbone)
        loader.sampler.set_epoch(epoch)
        return [[int(i) for i in b] for b in loader.sampler.batches()]

    first = batches(3, 0)
    assert first == batches(3, 0) and first != batches(4, 0) and first != batches(3, 1)
    assert sorted(i for b in first for i in b) == list(range(24)) and {len(b) for b in first} == {2}
    whole = encode_examples(examples, policy, config, report=False, share=False)
    unshared = sft_loader(whole, policy, config, 3)
    assert [[int(i) for i in b] for b in unshared.sampler.batches()] == first  # the same batches
    loader = sft_loader(encoded, policy, config, 3, backbone)
    loader.sampler.set_epoch(0)
    for indices, batch in zip(first, loader, strict=True):
        assert batch["input_ids"].shape[1] == max(encoded[i].length for i in indices)
    lengths = [encoded[i].length for i in range(24)]
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first)
    shuffled = sum(
        max(lengths[2 * k : 2 * k + 2]) - min(lengths[2 * k : 2 * k + 2]) for k in range(12)
    )
    assert spread < shuffled  # similar lengths together


def test_memory_estimate_is_printed_and_checkpointing_is_on_by_default(
    cli, tiny_qwen2: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "d.jsonl", records(4))
    assert R1Config(model="m", data="d", output="o").gradient_checkpointing
    out = tmp_path / "judge"
    result = cli("train", "r1", "--model", str(tiny_qwen2), "--data", str(data), "-o", str(out),
                 "--stage", "sft", "--max-steps", "1")  # fmt: skip
    assert result.code == 0, result.stderr
    assert "memory needed ≈" in result.stderr and "checkpointed" in result.stderr
    off = cli("train", "r1", "--model", str(tiny_qwen2), "--data", str(data), "-o",
              str(tmp_path / "plain"), "--stage", "sft", "--max-steps", "1",
              "--no-gradient-checkpointing", "--no-share-prefix")  # fmt: skip
    assert off.code == 0, off.stderr
    assert "no checkpointing" in off.stderr
