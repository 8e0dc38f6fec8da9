"""SFT stage: teach the judge to write the rationale and then the verdict.

Cross-entropy on the answer's tokens only (the conversation's are labelled -100), in batches
of right-padded sequences, under the run's accelerator. A hand-written loop rather than TRL's
``SFTTrainer``: the examples are the judge's own conversations, whose media parts (decoded
images, frames, audio) must reach the model through omnirm's collation, which ``SFTTrainer``'s
dataset preparation does not take; and the loop shares model loading, LoRA and output handling
with ``train bt``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from omnirm import console
from omnirm.errors import RecordError
from omnirm.jsonl import display_name
from omnirm.train.r1.config import R1Config
from omnirm.train.r1.data import JudgeExample
from omnirm.train.r1.policy import Policy, answer_ids, check_length

#: Progress lines when stderr is not a terminal: one per step.
_EVERY_STEP = 1e-9


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    example: JudgeExample | None = None  # a media judge's: its processor encodes the batch


def encode_examples(
    examples: list[JudgeExample], policy: Policy, config: R1Config, report: bool = True
) -> list[Encoded]:
    """Every example's tokens and labels; those over ``max_length`` are left out (warned)."""
    encoded: list[Encoded] = []
    too_long = 0
    for example in examples:
        assert example.answer is not None
        ids, labels = answer_ids(
            policy.tokenizer, example.conversation, example.answer, policy.eos_ids, policy.processor
        )
        try:
            check_length(len(ids), config.max_length, f"the {example.order} answer")
        except RecordError as error:
            too_long += 1
            if report and too_long <= 3:
                error.located(
                    source=display_name(config.data), line=example.line, record_id=example.record.id
                )
                console.warn(f"{error} (left out)")
            continue
        encoded.append(Encoded(ids, labels, example if policy.processor is not None else None))
    if too_long and report:
        console.warn(f"{too_long} SFT examples left out: over --max-length {config.max_length}")
    return encoded


def collate(batch: list[Encoded], pad_id: int, policy: Policy | None = None) -> dict[str, Any]:
    """Right-padded ids, attention mask and labels (-100 on padding); for a media judge the
    processor's inputs for the batch (pixel values, audio features …) too."""
    if policy is not None and policy.processor is not None:
        return _collate_media(batch, policy)
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item.input_ids)
        ids[row, :n] = torch.tensor(item.input_ids)
        labels[row, :n] = torch.tensor(item.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _collate_media(batch: list[Encoded], policy: Policy) -> dict[str, Any]:
    from omnirm.models.backends.hf import encode_chat

    examples = [item.example for item in batch]
    assert all(e is not None and e.answer is not None for e in examples)
    inputs = encode_chat(
        policy.tokenizer,
        policy.processor,
        [e.conversation for e in examples],  # type: ignore[union-attr]
        answers=[e.answer for e in examples],  # type: ignore[union-attr,misc]
        padding_side="right",
    )
    labels = torch.full_like(inputs["input_ids"], -100)
    for row, item in enumerate(batch):
        n = len(item.labels)
        if inputs["input_ids"][row, :n].tolist() != item.input_ids:
            raise RuntimeError(
                "the processor encodes an answered conversation differently in a batch"
            )
        labels[row, :n] = torch.tensor(item.labels)
    return {**inputs, "labels": labels}


def train_sft(
    config: R1Config,
    policy: Policy,
    examples: list[JudgeExample],
    accelerator: Any,
    log: Callable[[dict[str, Any]], None],
    *,
    label: str = "sft",
    checkpoints: Any = None,
    start_step: int = 0,
) -> int:
    """Run the SFT stage ``label`` on ``policy`` (its adapter attached); returns the optimizer
    steps. Each step's loss, learning rate, tokens per second and time go to ``log``;
    ``checkpoints`` (a :class:`~omnirm.train.r1.StageCheckpoints`) restores the state of
    ``start_step`` and saves new ones."""
    from torch.utils.data import DataLoader
    from transformers import get_scheduler

    main = accelerator.is_main_process
    encoded = encode_examples(examples, policy, config, report=main)
    if not encoded:
        raise RecordError(f"{config.data}: no SFT example fits --max-length {config.max_length}")
    pad = int(policy.tokenizer.pad_token_id)
    loader: Any = DataLoader(
        encoded,  # type: ignore[arg-type]
        batch_size=config.batch_size,
        shuffle=True,
        collate_fn=lambda batch: collate(batch, pad, policy),
    )
    loader = accelerator.prepare(loader)
    steps_per_epoch = math.ceil(len(loader) / config.grad_accum)
    total = max(1, math.ceil(steps_per_epoch * config.epochs))
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    trainable = [p for p in policy.net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=config.resolved_lr("sft"), weight_decay=config.weight_decay
    )
    scheduler = get_scheduler(
        "cosine",
        optimizer,
        num_warmup_steps=int(config.warmup_ratio * total) * accelerator.num_processes,
        num_training_steps=total * accelerator.num_processes,
    )
    model, optimizer, scheduler = accelerator.prepare(policy.net, optimizer, scheduler)
    model.train()
    start_epoch, skip = divmod(start_step, steps_per_epoch)
    resumed: Any = None
    if skip:  # resuming inside an epoch: skip the batches trained on already
        loader.set_epoch(start_epoch)
        resumed = iter(accelerator.skip_first_batches(loader, skip * config.grad_accum))
        # an epoch's first batch draws from the random state (torch seeds its workers): draw
        # it before the saved state is restored, as the uninterrupted run drew it before
        resumed = itertools.chain([next(resumed)], resumed)
    if checkpoints is not None:
        checkpoints.restore(start_step)
    if main:
        console.info(f"{label}: {len(encoded)} sequences, {total} steps")
    step, began = start_step, time.perf_counter()
    losses: list[float] = []
    tokens = 0
    last = began
    with console.step_progress(total, label, enabled=main, interval=_EVERY_STEP) as progress:
        if step:
            progress.update(step)
        for epoch in range(start_epoch, math.ceil(config.epochs)):
            if step >= total:
                break
            batches = resumed if epoch == start_epoch and resumed is not None else loader
            if batches is loader:
                loader.set_epoch(epoch)
            for batch in batches:
                with accelerator.accumulate(model):
                    loss = model(**batch).loss
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.max_grad_norm:
                        accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                losses.append(float(accelerator.reduce(loss.detach(), reduction="mean")))
                tokens += int(accelerator.reduce(batch["attention_mask"].sum(), reduction="sum"))
                if not accelerator.sync_gradients:
                    continue
                step += 1
                now = time.perf_counter()
                entry = {
                    "stage": label,
                    "step": step,
                    "loss": sum(losses) / len(losses),
                    "lr": scheduler.get_last_lr()[0],
                    "tokens_per_second": round(tokens / max(now - last, 1e-9), 1),
                    "seconds": round(now - last, 3),
                    "elapsed": round(now - began, 3),
                }
                losses.clear()
                tokens, last = 0, now
                log(entry)
                progress.update(step, loss=entry["loss"], tok_s=entry["tokens_per_second"])
                if checkpoints is not None:
                    checkpoints.after_step(step)
                if step >= total:
                    break
    policy.net = accelerator.unwrap_model(model)
    return step
