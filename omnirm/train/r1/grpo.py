"""GRPO stage: the judge samples ``generations`` answers per prompt and learns from how they
score against each other.

Per step, on each process: ``prompts_per_step`` prompts (both orders of the records, records
shuffled per pass with the seed, a record's two orders kept next to each other) are answered ``generations`` times each with transformers ``generate``
(KV cache, sampling at ``temperature`` / ``top_p``). Each answer is rewarded
(:mod:`omnirm.train.r1.rewards`); advantages are the rewards normalised within their prompt's
group, (r − mean) / (std + 1e-4). The loss is PPO's clipped surrogate per answer token,
min(ρA, clip(ρ, 1 − ε, 1 + ε)A) with ρ the probability ratio to the policy that sampled, plus
``beta`` times the k3 estimate of the KL to the reference, exp(q − p) − (q − p) − 1 (p, q: the
policy's and the reference's token log-probabilities), averaged over all answer tokens of the
batch (``loss_norm="token"``, as DAPO and TRL's default) or per answer, then over answers
(``"sequence"``, as the GRPO paper: long answers do not outweigh short ones). The reference is the model as the stage starts: with LoRA the same network with its
adapter disabled (no second copy), with ``--full`` a frozen copy. ``updates_per_batch`` > 1
takes several optimizer steps on one batch of rollouts (the ratio then leaves 1 and clipping
acts).

Every step's rewards by component, accuracy, format rate, answer length, KL, clip fraction,
loss and time go to the log (``metrics.jsonl``) and a progress line to stderr.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from omnirm import console
from omnirm.errors import RecordError
from omnirm.models.backends.hf import as_text_message
from omnirm.train.r1.config import R1Config
from omnirm.train.r1.data import JudgeExample
from omnirm.train.r1.policy import Policy, completion_logprobs, prompt_ids
from omnirm.train.r1.rewards import RewardFn, RewardWeights, score_completions
from omnirm.train.r1.sft import _EVERY_STEP


@dataclass
class Chunk:
    """Rows of a step's rollouts that go through the model together: left-padded prompts
    (width ``start``) followed by the answers; ``mask`` marks answer tokens (up to and including
    the first end token); ``media`` the processor's inputs for these rows (media judges)."""

    rows: slice
    sequences: torch.Tensor
    attention: torch.Tensor
    mask: torch.Tensor
    start: int
    media: dict[str, torch.Tensor] | None = None

    def logprobs(self, net: Any) -> torch.Tensor:
        return completion_logprobs(net, self.sequences, self.attention, self.start, self.media)


@dataclass
class Rollouts:
    """A step's sampled answers, grouped by prompt, in ``chunks`` of rows."""

    chunks: list[Chunk]
    texts: list[str]
    completion_ids: list[list[int]]
    truncated: list[bool]


def sample(
    net: Any,
    policy: Policy,
    prompts: list[list[int]],
    config: R1Config,
    device: torch.device,
    conversations: list[Any] | None = None,
) -> Rollouts:
    """``config.generations`` sampled answers to each prompt, grouped by prompt: text prompts
    generated together (left-padded) and cut into chunks of ``batch_size`` rows; a media
    judge's ``conversations`` one at a time (the processor's inputs repeat per answer)."""
    if policy.processor is not None:
        assert conversations is not None
        parts = [_sample_one(net, policy, c, config, device) for c in conversations]
        chunks, texts, kept, truncated = [], [], [], []
        for n, (chunk, rollout) in enumerate(parts):
            group = config.generations
            chunk.rows = slice(n * group, (n + 1) * group)
            chunks.append(chunk)
            texts += rollout.texts
            kept += rollout.completion_ids
            truncated += rollout.truncated
        return Rollouts(chunks, texts, kept, truncated)
    pad = int(policy.tokenizer.pad_token_id)
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        attention[row, width - len(prompt) :] = 1
    inputs = {"input_ids": ids.to(device), "attention_mask": attention.to(device)}
    whole, rollout = _generate(net, policy, inputs, config)
    size = config.batch_size
    chunks = [
        Chunk(
            slice(first, first + size),
            whole.sequences[first : first + size],
            whole.attention[first : first + size],
            whole.mask[first : first + size],
            whole.start,
        )
        for first in range(0, whole.sequences.shape[0], size)
    ]
    return Rollouts(chunks, rollout.texts, rollout.completion_ids, rollout.truncated)


def _sample_one(
    net: Any, policy: Policy, conversation: Any, config: R1Config, device: torch.device
) -> tuple[Chunk, Rollouts]:
    from omnirm.models.backends.hf import encode_chat

    encoded = encode_chat(policy.tokenizer, policy.processor, [conversation])
    inputs = {k: v.to(device) for k, v in encoded.items()}
    chunk, rollout = _generate(net, policy, inputs, config)
    group = config.generations
    media = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    answer_width = chunk.sequences.shape[1] - chunk.start
    for key, value in media.items():
        if key.endswith("token_type_ids"):  # per token (text 0, image 1 …): answers are text
            value = torch.nn.functional.pad(value, (0, answer_width))
        media[key] = torch.cat([value] * group)
    chunk.media = media
    return chunk, rollout


def _generate(
    net: Any, policy: Policy, inputs: dict[str, torch.Tensor], config: R1Config
) -> tuple[Chunk, Rollouts]:
    """Sample the answers to the (left-padded) ``inputs``: all rows as one chunk."""
    pad = int(policy.tokenizer.pad_token_id)
    ids, attention = inputs["input_ids"], inputs["attention_mask"]
    width = ids.shape[1]
    options: dict[str, Any] = {}
    if policy.processor is not None:
        # a media placeholder sampled into an answer would ask the model for media it lacks
        special = set(policy.tokenizer.all_special_ids) | {
            i for i, token in policy.tokenizer.added_tokens_decoder.items() if token.special
        }
        options["suppress_tokens"] = sorted(special - policy.eos_ids)
    was_training = net.training
    net.eval()
    with torch.no_grad():
        out = net.generate(
            **inputs,
            **options,
            do_sample=True,
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=0,
            max_new_tokens=config.max_completion_length,
            num_return_sequences=config.generations,
            pad_token_id=pad,
            eos_token_id=sorted(policy.eos_ids),
            use_cache=True,
        )
    net.train(was_training)
    completions = out[:, width:]
    mask = torch.zeros_like(completions)
    texts, kept, truncated = [], [], []
    for row, tokens in enumerate(completions.tolist()):
        end = next((i for i, t in enumerate(tokens) if t in policy.eos_ids), None)
        length = len(tokens) if end is None else end + 1
        mask[row, :length] = 1
        completions[row, length:] = pad
        kept.append(tokens[:length])
        truncated.append(end is None)
        texts.append(policy.tokenizer.decode(tokens[:length], skip_special_tokens=True).strip())
    sequences = torch.cat([ids.repeat_interleave(config.generations, 0), completions], dim=1)
    full_attention = torch.cat([attention.repeat_interleave(config.generations, 0), mask], dim=1)
    chunk = Chunk(slice(0, len(texts)), sequences, full_attention, mask, width)
    return chunk, Rollouts([chunk], texts, kept, truncated)


def group_advantages(rewards: torch.Tensor, group: int) -> torch.Tensor:
    """Rewards normalised within each consecutive group of ``group`` answers."""
    grouped = rewards.view(-1, group)
    mean = grouped.mean(dim=1, keepdim=True)
    std = grouped.std(dim=1, keepdim=True) if group > 1 else torch.zeros_like(mean)
    return ((grouped - mean) / (std + 1e-4)).view(-1)


def train_grpo(
    config: R1Config,
    policy: Policy,
    examples: list[JudgeExample],
    accelerator: Any,
    log: Callable[[dict[str, Any]], None],
    functions: list[tuple[str, RewardFn]],
    *,
    label: str = "grpo",
    checkpoints: Any = None,
    start_step: int = 0,
) -> int:
    """Run the GRPO stage ``label`` on ``policy`` (its adapter attached); returns the optimizer
    steps. ``checkpoints`` (a :class:`~omnirm.train.r1.StageCheckpoints`) restores the state of
    ``start_step`` and saves new ones."""
    from transformers import get_scheduler

    main = accelerator.is_main_process
    prompts: list[tuple[JudgeExample, list[int]]] = []
    for example in examples:
        ids = prompt_ids(policy.tokenizer, example.conversation, policy.processor)
        if len(ids) <= config.max_length:
            prompts.append((example, ids))
    if len(prompts) < len(examples) and main:
        console.warn(
            f"grpo: {len(examples) - len(prompts)} prompts left out: over --max-length "
            f"{config.max_length}"
        )
    if not prompts:
        raise RecordError(f"{config.data}: no GRPO prompt fits --max-length {config.max_length}")
    per_step = config.prompts_per_step * accelerator.num_processes
    total = max(1, math.ceil(len(prompts) * config.grpo_epochs / per_step))
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    trainable = [p for p in policy.net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=config.resolved_lr("grpo"), weight_decay=config.weight_decay
    )
    scheduler = get_scheduler(
        "constant_with_warmup",
        optimizer,
        num_warmup_steps=int(config.warmup_ratio * total) * accelerator.num_processes,
    )
    reference = None
    if config.beta and policy.lora is None:
        reference = copy.deepcopy(policy.net).eval().requires_grad_(False)
    model, optimizer, scheduler = accelerator.prepare(policy.net, optimizer, scheduler)
    if checkpoints is not None:
        checkpoints.restore(start_step)
    net = accelerator.unwrap_model(model)
    weights = RewardWeights(
        correct=config.correct_weight,
        format=config.format_weight,
        length=config.length_weight,
        custom=config.reward_fn_weight,
        consistency=config.consistency_weight,
        rubric=config.rubric_weight,
    )
    if main:
        console.info(
            f"{label}: {len(prompts)} prompts, {config.generations} answers each, {total} steps"
        )
    # both orders of a record stay together (the consistency reward compares them)
    units: dict[str, list[int]] = {}
    for index, (example, _) in enumerate(prompts):
        units.setdefault(example.record.id, []).append(index)
    order: list[int] = []
    epoch = 0
    model.train()
    stage_began = time.perf_counter()
    with console.step_progress(total, label, enabled=main, interval=_EVERY_STEP) as progress:
        if start_step:
            progress.update(start_step)
        for step in range(1, total + 1):
            began = time.perf_counter()
            while len(order) < per_step:
                shuffled = list(units.values())
                random.Random(config.seed + epoch).shuffle(shuffled)
                order += [index for unit in shuffled for index in unit]
                epoch += 1
            taken, order = order[:per_step], order[per_step:]
            if step <= start_step:  # a resumed run: these prompts were trained on already
                continue
            rank, size = accelerator.process_index, config.prompts_per_step
            mine = [prompts[i] for i in taken[rank * size : (rank + 1) * size]]
            rollouts = sample(
                net,
                policy,
                [ids for _, ids in mine],
                config,
                accelerator.device,
                [example.conversation for example, _ in mine],
            )
            generation_seconds = time.perf_counter() - began
            group = config.generations
            columns = [example.columns() for example, _ in mine for _ in range(group)]
            conversations = [
                [_reward_message(m) for m in example.conversation]
                for example, _ in mine
                for _ in range(group)
            ]
            totals, parts = score_completions(
                texts=rollouts.texts,
                completion_ids=rollouts.completion_ids,
                prompts=conversations,
                columns=columns,
                functions=functions,
                weights=weights,
                max_completion_length=config.max_completion_length,
                step=step,
                answer_format=config.answer_format,
            )
            rewards = torch.tensor(totals, dtype=torch.float32, device=accelerator.device)
            advantages = group_advantages(rewards, group)
            chunks = rollouts.chunks
            tokens = sum(float(c.mask.sum()) for c in chunks)
            tokens = max(tokens, 1.0)
            with torch.no_grad():
                old: list[torch.Tensor | None] = [None] * len(chunks)
                ref: list[torch.Tensor | None] = [None] * len(chunks)
                for n, chunk in enumerate(chunks):
                    if config.updates_per_batch > 1:
                        old[n] = chunk.logprobs(model)
                    if config.beta:
                        if reference is not None:
                            ref[n] = chunk.logprobs(reference)
                        else:
                            with net.disable_adapter():
                                ref[n] = chunk.logprobs(net)
            kl_sum = clipped_sum = loss_sum = 0.0
            for update in range(config.updates_per_batch):
                for n, chunk in enumerate(chunks):
                    logps = chunk.logprobs(model)
                    previous = old[n] if old[n] is not None else logps.detach()
                    assert previous is not None
                    ratio = torch.exp(logps - previous)
                    adv = advantages[chunk.rows].unsqueeze(1)
                    low, high = 1 - config.clip_epsilon, 1 + config.clip_epsilon
                    per_token = -torch.min(ratio * adv, ratio.clamp(low, high) * adv)
                    m = chunk.mask.float()
                    if config.beta:
                        reference_logps = ref[n]
                        assert reference_logps is not None
                        delta = reference_logps - logps
                        kl = torch.exp(delta) - delta - 1
                        per_token = per_token + config.beta * kl
                        if update == 0:
                            kl_sum += float((kl.detach() * m).sum())
                    clipped = ((ratio < low) & (adv < 0)) | ((ratio > high) & (adv > 0))
                    clipped_sum += float((clipped.float() * m).sum())
                    if config.loss_norm == "sequence":  # each answer counts once (GRPO's paper)
                        loss = ((per_token * m).sum(1) / m.sum(1).clamp(min=1.0)).sum() / len(
                            totals
                        )
                    else:  # each token counts once (DAPO; TRL's default)
                        loss = (per_token * m).sum() / tokens
                    loss_sum += float(loss.detach())
                    accelerator.backward(loss)
                if config.max_grad_norm:
                    accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            count = len(totals)
            entry: dict[str, Any] = {
                "stage": label,
                "step": step,
                "reward": sum(totals) / count,
                "reward_std": float(rewards.std()) if count > 1 else 0.0,
                **{f"reward/{name}": sum(v) / count for name, v in parts.items()},
                "accuracy": sum(parts["correct"]) / count,
                "format_rate": sum(parts["format"]) / count,
                "completion_length": sum(len(i) for i in rollouts.completion_ids) / count,
                "truncated": sum(rollouts.truncated) / count,
                "kl": kl_sum / float(tokens),
                "clip_fraction": clipped_sum / (float(tokens) * config.updates_per_batch),
                "loss": loss_sum / config.updates_per_batch,
                "lr": scheduler.get_last_lr()[0],
                "tokens_per_second": 0.0,
                "generation_seconds": round(generation_seconds, 3),
                "seconds": round(time.perf_counter() - began, 3),
            }
            sampled = sum(len(i) for i in rollouts.completion_ids)
            entry["tokens_per_second"] = round(sampled / max(entry["seconds"], 1e-9), 1)
            entry = _mean_over_processes(entry, accelerator)
            entry["elapsed"] = round(time.perf_counter() - stage_began, 3)
            log(entry)
            progress.update(
                step,
                reward=entry["reward"],
                accuracy=entry["accuracy"],
                format=entry["format_rate"],
                length=entry["completion_length"],
                kl=entry["kl"],
                clipped=entry["clip_fraction"],
            )
            if checkpoints is not None:
                checkpoints.after_step(step)
    policy.net = net
    return total


def _reward_message(message: dict[str, Any]) -> dict[str, Any]:
    """A prompt message as TRL's reward functions get it: text as a string; with media, a
    list of parts whose media are bare placeholders (``{"type": "image"}``), as in TRL's
    vision datasets."""
    content = message["content"]
    if isinstance(content, list) and any(p["type"] != "text" for p in content):
        parts = [p if p["type"] == "text" else {"type": p["type"]} for p in content]
        return {"role": message["role"], "content": parts}
    return as_text_message(message)


def _mean_over_processes(entry: dict[str, Any], accelerator: Any) -> dict[str, Any]:
    """The numeric metrics averaged over processes (each had its own prompts)."""
    if accelerator.num_processes == 1:
        return entry
    names = [k for k, v in entry.items() if isinstance(v, float) and k != "lr"]
    values = torch.tensor([entry[k] for k in names], device=accelerator.device)
    mean = accelerator.reduce(values, reduction="mean").tolist()
    return {**entry, **dict(zip(names, mean, strict=True))}
