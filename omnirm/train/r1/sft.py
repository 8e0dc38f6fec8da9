"""SFT stage: teach the judge to write the rationale and then the verdict.

Cross-entropy on the answer's tokens only (the conversation's are labelled -100), under the
run's accelerator. A hand-written loop rather than TRL's ``SFTTrainer``: the examples are the
judge's own conversations, whose media parts (decoded images, frames, audio) must reach the
model through omnirm's collation, which ``SFTTrainer``'s dataset preparation does not take; and
the loop shares model loading, LoRA and output handling with ``train bt``.

A batch holds whole records — both presentation orders of each (:class:`SftRecord`), about
``batch_size`` sequences — so the orders of one record are always trained in the same step,
and as ``train bt`` does:

- **length-grouped batches** (``group_by_length``): records of similar length together, by
  :class:`~omnirm.train.batching.LengthGroupedSampler` (seeded, shuffled by batch, the same
  order when a run resumes), each batch padded to its own longest row only;
- **a shared prefix** (``share_prefix``): the two orders are the same conversation up to the
  first response (system prompt, criterion, history, question). A record is one packed row
  (:mod:`omnirm.train.packing`) — that common start once, then each order's rest, each seeing
  the start and itself — so the start runs once forward and once backward, with both orders'
  gradients flowing into it: the loss and gradients of the two whole sequences, up to float
  summation order. The common start is the two token sequences' longest common prefix (exact
  for any tokenizer), cut before the first answer token. Text judges only: a media judge's
  processor expands each image, video or audio into placeholder tokens whose ids do not tell
  one medium from another of the same size and places them with 3D positions over the whole
  conversation, so a token prefix is not a media prefix there — media judges and attention
  kernels without custom masks (flash-attention) train the whole sequences.

Only the positions that predict an answer token go through the LM head (``logits_to_keep``):
logits over the whole conversation would be rows × tokens × vocabulary floats, and their
gradient as many, for nothing.
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


@dataclass
class SftRecord:
    """The sequences of one record that fit ``max_length`` (both orders, or the one that fits),
    trained in the same batch. ``packed``: one row, its sequences after their first ``shared``
    tokens (their common start, run once); else each sequence a row of its own."""

    sequences: list[Encoded]
    packed: bool = False
    shared: int = 0

    @property
    def length(self) -> int:
        """Tokens of the row it makes: packed, the common start once and each order's rest;
        whole, its longest sequence (each sequence a row)."""
        if self.packed:
            return self.shared + sum(len(s.input_ids) - self.shared for s in self.sequences)
        return max(len(s.input_ids) for s in self.sequences)

    @property
    def size(self) -> int:
        """Tokens of its sequences, whole: what length-grouped batching sorts by, so that
        ``share_prefix`` changes no batch (the orders of a record are about as long)."""
        return sum(len(s.input_ids) for s in self.sequences)


def encode_examples(
    examples: list[JudgeExample],
    policy: Policy,
    config: R1Config,
    report: bool = True,
    share: bool = False,
) -> list[SftRecord]:
    """Every record's examples as tokens and labels, the orders of a record together; examples
    over ``max_length`` are left out (warned). With ``share`` each record's sequences have
    their common start marked for a packed row (see the module docs)."""
    records: dict[tuple[int, str], list[Encoded]] = {}
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
        key = (example.line, example.record.id)
        item = Encoded(ids, labels, example if policy.processor is not None else None)
        records.setdefault(key, []).append(item)
    if too_long and report:
        console.warn(f"{too_long} SFT examples left out: over --max-length {config.max_length}")
    return [
        SftRecord(sequences, packed=share, shared=shared_start(sequences) if share else 0)
        for sequences in records.values()
    ]


def shared_start(sequences: list[Encoded]) -> int:
    """How many leading tokens ``sequences`` can run once: their common prefix, ending before
    any of them has a labelled token at the next position (the last shared position predicts
    one token for all of them, so that token must be unlabelled in each). 0 for one sequence."""
    if len(sequences) < 2:
        return 0
    first = sequences[0].input_ids
    common = min(len(s.input_ids) for s in sequences)
    for sequence in sequences[1:]:
        pairs = zip(first, sequence.input_ids, strict=False)
        common = min(common, next((i for i, (a, b) in enumerate(pairs) if a != b), common))
    for sequence in sequences:
        labels = sequence.labels
        labelled = next((i for i, t in enumerate(labels) if t != -100), len(labels))
        common = min(common, labelled - 1)
    return max(common, 0)


def collate_records(
    batch: list[SftRecord], pad_id: int, policy: Policy, backbone: Any = None
) -> dict[str, Any]:
    """A batch of records: packed rows (``backbone`` given; a record without a common start
    packs its sequences one after the other) or their sequences whole; ``tokens`` counts the
    tokens the model runs."""
    if backbone is not None:
        return _collate_packed(batch, pad_id, backbone)
    sequences = [s for record in batch for s in record.sequences]
    inputs = collate(sequences, pad_id, policy)
    return {**inputs, "tokens": inputs["attention_mask"].sum()}


def _collate_packed(batch: list[SftRecord], pad_id: int, backbone: Any) -> dict[str, Any]:
    from omnirm.models.inputs import Encoded as Tokens
    from omnirm.train.packing import PackedRecord, packed_layout

    rows: list[PackedRecord] = []
    row_targets: list[list[int]] = []
    for record in batch:
        cut = record.shared
        segments = [Tokens(s.input_ids[cut:]) for s in record.sequences]
        rows.append(PackedRecord(Tokens(record.sequences[0].input_ids[:cut]), segments,
                                 [None] * len(segments)))  # fmt: skip
        # a segment's first token follows the previous segment in the row: never a target
        targets = [-100] * cut
        for sequence in record.sequences:
            targets += [-100, *sequence.labels[cut + 1 :]]
        row_targets.append(targets)
    width = max(row.length for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for index, (row, targets) in enumerate(zip(rows, row_targets, strict=True)):
        row_ids = [t for part in (row.prefix, *row.segments) for t in part.input_ids]
        ids[index, : len(row_ids)] = torch.tensor(row_ids)
        labels[index, : len(targets)] = torch.tensor(targets)
    tokens = torch.tensor(sum(row.length for row in rows))
    return {"input_ids": ids, **packed_layout(backbone, rows, width), "labels": labels,
            "tokens": tokens}  # fmt: skip


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


def sft_loss(model: Any, batch: dict[str, Any], keep_logits: bool = True) -> torch.Tensor:
    """Mean cross-entropy over the batch's answer tokens (as transformers' causal-LM loss), the
    LM head run only where the next token is one (``keep_logits``; the model must take a tensor
    ``logits_to_keep``, else all logits are computed and the positions picked after)."""
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "tokens")}
    targets = batch["labels"][:, 1:]
    learnt = targets != -100
    keep = learnt.any(dim=0).nonzero().squeeze(-1)  # positions that predict an answer token
    if keep_logits:
        logits = model(**inputs, logits_to_keep=keep).logits
    else:
        logits = model(**inputs).logits[:, keep]
    total = torch.nn.functional.cross_entropy(
        logits.float().flatten(0, 1), targets[:, keep].flatten(), ignore_index=-100,
        reduction="sum",
    )  # fmt: skip
    return total / learnt.sum().clamp(min=1)


def sft_loader(
    records: list[SftRecord], policy: Policy, config: R1Config, seed: int, backbone: Any = None
) -> Any:
    """The DataLoader of SFT batches: ``records_per_batch(config)`` records each, grouped by
    length (``config.group_by_length``; the same batches with and without ``backbone``) or
    shuffled record by record; packed rows when ``backbone`` is given."""
    from torch.utils.data import DataLoader

    from omnirm.train.batching import LengthGroupedSampler

    per_batch = records_per_batch(config)
    sampler = (
        LengthGroupedSampler([r.size for r in records], per_batch, seed)
        if config.group_by_length
        else None
    )
    pad = int(policy.tokenizer.pad_token_id)
    return DataLoader(
        records,  # type: ignore[arg-type]
        batch_size=per_batch,
        shuffle=sampler is None,
        sampler=sampler,
        collate_fn=lambda batch: collate_records(batch, pad, policy, backbone),
    )


def records_per_batch(config: R1Config) -> int:
    """Records per SFT batch: each brings both orders, so half of ``batch_size`` (sequences),
    at least one."""
    return max(1, config.batch_size // 2)


def sharing_backbone(policy: Policy, config: R1Config, *, report: bool = True) -> Any:
    """The model packed SFT rows are laid out for, or None when each order is trained as a
    whole sequence (``share_prefix`` off, a media judge, or an attention kernel that takes no
    custom mask)."""
    from omnirm.train.packing import supports_packing

    if not config.share_prefix:
        return None
    if policy.processor is not None or not supports_packing(policy.net):
        if report:
            console.info(
                "sft: each order is trained as a whole sequence (no shared conversation start: "
                + ("a media judge)" if policy.processor is not None else "this attention "
                   "kernel takes no custom mask)")
            )  # fmt: skip
        return None
    return policy.net


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
    seed: int | None = None,
) -> int:
    """Run the SFT stage ``label`` on ``policy`` (its adapter attached); returns the optimizer
    steps. Each step's loss, learning rate, tokens per second and time go to ``log``;
    ``checkpoints`` (a :class:`~omnirm.train.r1.StageCheckpoints`) restores the state of
    ``start_step`` and saves new ones; ``seed`` orders the length-grouped batches (default
    ``config.seed``)."""
    from transformers import get_scheduler

    from omnirm.train.memory import memory_estimate

    seed = config.seed if seed is None else seed

    main = accelerator.is_main_process
    backbone = sharing_backbone(policy, config, report=main)
    encoded = encode_examples(examples, policy, config, report=main, share=backbone is not None)
    if not encoded:
        raise RecordError(f"{config.data}: no SFT example fits --max-length {config.max_length}")
    loader: Any = sft_loader(encoded, policy, config, seed, backbone)
    if main:
        console.info(
            memory_estimate(
                policy.net,
                loader,
                [r.length for r in encoded],
                config,
                rows_per_record=1.0 if backbone is not None else 2.0,
                records_per_batch=records_per_batch(config),
                bf16=accelerator.mixed_precision == "bf16",
            ).summary()
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
        sequences = sum(len(r.sequences) for r in encoded)
        console.info(f"{label}: {sequences} sequences of {len(encoded)} records, {total} steps")
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
                    loss = sft_loss(model, batch, keep_logits=policy.processor is None)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.max_grad_norm:
                        accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                losses.append(float(accelerator.reduce(loss.detach(), reduction="mean")))
                tokens += int(accelerator.reduce(batch["tokens"], reduction="sum"))
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
