"""GRPO stage: the judge samples ``generations`` answers per prompt and learns from how they
score against each other.

Per step, on each process: ``prompts_per_step`` prompts (both orders of the records, records
shuffled per pass with the seed, a record's two orders kept next to each other) are answered ``generations`` times each (sampling at ``temperature`` / ``top_p``) by the
rollout engine (:mod:`.rollouts`): transformers ``generate`` with the KV cache, or vLLM
synced to the policy every step. Each answer is rewarded
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
from typing import Any

import torch

from omnirm import console
from omnirm.errors import RecordError
from omnirm.models.backends.hf import as_text_message
from omnirm.train.r1.config import R1Config
from omnirm.train.r1.data import JudgeExample
from omnirm.train.r1.policy import Policy, prompt_ids
from omnirm.train.r1.rewards import RewardFn, RewardWeights, score_completions
from omnirm.train.r1.rollouts import GenerateRollouts, RolloutEngine
from omnirm.train.r1.sft import _EVERY_STEP


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
    sampler: RolloutEngine | None = None,
) -> int:
    """Run the GRPO stage ``label`` on ``policy`` (its adapter attached); returns the optimizer
    steps. ``checkpoints`` (a :class:`~omnirm.train.r1.StageCheckpoints`) restores the state of
    ``start_step`` and saves new ones. ``sampler`` samples the answers (default: the policy
    with transformers ``generate``)."""
    from transformers import get_scheduler

    main = accelerator.is_main_process
    engine = sampler if sampler is not None else GenerateRollouts(config)
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
            rollouts = engine.sample(
                net,
                policy,
                [ids for _, ids in mine],
                [example.conversation for example, _ in mine],
                accelerator.device,
                step,
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
