"""train r1's GRPO rollouts for media judges come in batches of prompts (the processor encodes
several conversations at once, left-padded, and one ``generate`` call answers them all): with
greedy decoding they are the answers and log-probabilities of prompts sampled one at a time,
and each chunk carries exactly its rows' media."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.integration.test_train_r1_media import media_records


def load(model: Path, data: Path) -> tuple[Any, list[Any], Any]:
    from omnirm.judging.conversations import ConversationBuilder
    from omnirm.media import MediaResolver
    from omnirm.prompts.templates import default_template
    from omnirm.train.r1.config import R1Config
    from omnirm.train.r1.data import load_examples
    from omnirm.train.r1.policy import load_policy

    config = R1Config(
        model=str(model), data=str(data), output="-", stage="grpo", generations=2,
        max_completion_length=6,
    )  # fmt: skip
    policy, _ = load_policy(config)
    # a tiny random model answers every prompt alike ("\n\n…": its last token's own embedding
    # outweighs the rest): stronger attention and MLP outputs make its greedy answers depend on
    # the prompt and its media, so that they compare
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in policy.net.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")) and "layers." in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
    builder = ConversationBuilder(
        default_template("pairwise"), MediaResolver(data.parent), policy.modalities
    )
    examples = load_examples(str(data), builder, sft=False, report=False).examples
    return policy, [e.conversation for e in examples], config


def greedy(policy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy's ``generate`` decoding greedily (GRPO samples; greedy answers compare)."""
    original = policy.net.generate

    def generate(**options: Any) -> Any:
        options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return original(**options)

    monkeypatch.setattr(policy.net, "generate", generate)


def row_logprobs(policy: Any, rollouts: Any) -> list[torch.Tensor]:
    """Each answer's token log-probabilities, by row, from the chunks' own inputs."""
    rows: dict[int, torch.Tensor] = {}
    policy.net.eval()
    with torch.no_grad():
        for chunk in rollouts.chunks:
            values = chunk.logprobs(policy.net)
            for n, row in enumerate(range(chunk.rows.start, chunk.rows.stop)):
                rows[row] = values[n, : int(chunk.mask[n].sum())]
    assert sorted(rows) == list(range(len(rollouts.texts)))
    return [rows[row] for row in sorted(rows)]


@pytest.mark.parametrize("fixture", ["tiny_qwen2_5_vl", "tiny_omni_thinker"])
def test_batched_media_rollouts_match_one_prompt_at_a_time(  # type: ignore[no-untyped-def]
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from omnirm.train.r1.rollouts import media_batches, sample, suppressed_tokens

    omni = fixture == "tiny_omni_thinker"
    policy, conversations, config = load(
        request.getfixturevalue(fixture), media_records(tmp_path, omni)
    )
    kinds = {p["type"] for c in conversations for m in c for p in m["content"]
             if isinstance(m["content"], list)}  # fmt: skip
    assert kinds >= {"image", "audio" if omni else "video"}
    greedy(policy, monkeypatch)
    cpu = torch.device("cpu")
    # 3 prompts (6 rows) per generate call, chunks of 3 rows: a chunk ends inside a group
    batched_config = dataclasses.replace(config, batch_size=3)
    batches = media_batches(policy, conversations, batched_config, cpu)
    assert [(b.first, len(b.shares)) for b in batches] == [(0, 3), (3, 3)]  # no fallback
    lengths = {int(n) for b in batches for n in b.inputs["attention_mask"].sum(1)}
    assert len(lengths) > 1  # prompts of different lengths: left padding matters
    batched = sample(policy.net, policy, [], batched_config, cpu, conversations)
    single = sample(
        policy.net, policy, [], dataclasses.replace(config, batch_size=1), cpu, conversations
    )
    assert len(single.chunks) == len(conversations) * 2 and len(batched.chunks) == 4
    assert [c.rows for c in batched.chunks] == [slice(i, i + 3) for i in range(0, 12, 3)]
    assert batched.completion_ids == single.completion_ids
    assert batched.texts == single.texts and batched.truncated == single.truncated
    # the answers differ between prompts (their media and lengths)
    assert len({tuple(ids) for ids in batched.completion_ids}) > 1
    for mine, theirs in zip(
        row_logprobs(policy, batched), row_logprobs(policy, single), strict=True
    ):
        assert mine.shape == theirs.shape and mine.numel() > 0
        torch.testing.assert_close(mine, theirs, atol=1e-4, rtol=1e-4)
    # each chunk's media are its rows' prompts' media, in row order
    for chunk in batched.chunks:
        rows = [single.chunks[row] for row in range(chunk.rows.start, chunk.rows.stop)]
        assert chunk.media is not None
        keys = {k for c in rows for k in (c.media or {})}
        assert set(chunk.media) == keys
        for key in keys - {"mm_token_type_ids"}:
            parts = [c.media[key] for c in rows if c.media and key in c.media]
            torch.testing.assert_close(chunk.media[key], torch.cat(parts), atol=0, rtol=0)
        if "mm_token_type_ids" in chunk.media:  # per token: as wide as the sequences
            assert chunk.media["mm_token_type_ids"].shape == chunk.sequences.shape
    # greedy: every answer token is the top token (bar suppressed ones) of the chunk's inputs,
    # so the media generate saw are the media the chunk carries
    banned = suppressed_tokens(policy)
    with torch.no_grad():
        for chunk in batched.chunks:
            assert chunk.media is not None
            logits = policy.net(
                input_ids=chunk.sequences, attention_mask=chunk.attention, **chunk.media
            ).logits[:, chunk.start - 1 : -1]
            answers = chunk.sequences[:, chunk.start :]
            # the policy's log-probabilities are these logits' (the thinker ignores
            # logits_to_keep: its logits are cut to the answer's positions all the same)
            expected = torch.log_softmax(logits, -1).gather(-1, answers.unsqueeze(-1))[..., 0]
            torch.testing.assert_close(chunk.logprobs(policy.net), expected)
            logits[..., banned] = float("-inf")
            top = logits.argmax(-1)
            assert bool((top == answers)[chunk.mask.bool()].all())


@pytest.mark.parametrize("fixture", ["tiny_qwen2_5_vl", "tiny_omni_thinker"])
def test_grpo_trains_on_batched_media_rollouts(  # type: ignore[no-untyped-def]
    cli, fixture: str, request: pytest.FixtureRequest, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import json

    from omnirm.train.r1 import rollouts

    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))
    seen: list[list[int]] = []
    original = rollouts.media_batches

    def spy(*args: Any, **options: Any) -> Any:
        batches = original(*args, **options)
        seen.append([len(b.shares) for b in batches])
        return batches

    monkeypatch.setattr(rollouts, "media_batches", spy)
    data = media_records(tmp_path, fixture == "tiny_omni_thinker")
    out = tmp_path / "judge"
    result = cli(
        "train", "r1", "--model", str(request.getfixturevalue(fixture)), "--data", str(data),
        "-o", str(out), "--stage", "grpo", "--max-steps", "2", "--batch-size", "3",
        "--generations", "2", "--prompts-per-step", "4", "--max-completion-length", "4",
        "--lr", "1e-3",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    # 4 prompts a step: a batch of 3 and one of 1, chunks of 3 rows crossing prompts
    assert seen == [[3, 1], [3, 1]]
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2]
    assert all(math.isfinite(s["loss"]) and s["kl"] >= 0 for s in steps)
    assert steps[0]["kl"] == 0.0
