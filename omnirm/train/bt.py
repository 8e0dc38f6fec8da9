"""The Bradley-Terry reward-model recipe: ``omnirm train bt``.

One readable loop on accelerate, so the same file runs on one CPU, under ``accelerate launch``
with DDP on several GPUs (or several CPU processes with gloo), and with FSDP or DeepSpeed
through accelerate's config. Per step:

1. a batch of records is encoded: by default each record is one row — its criterion, history and
   prompt (with media) once, then every response that takes part in a pair, each seeing only the
   prompt and itself (:mod:`omnirm.train.packing`; the same rewards and gradients as one whole
   sequence per response, for a fraction of the tokens). Records of similar length are batched
   together (:class:`~omnirm.train.batching.LengthGroupedSampler`);
2. the reward model scores all responses at once (gradient checkpointing on by default);
3. the loss runs over the pairs the records imply (:func:`omnirm.train.pairs.implied_pairs`):
   Bradley-Terry with an optional margin and reward centering, in fp32; tie pairs are skipped,
   or trained with Davidson's tie model (``ties="davidson"``).

The trained model is saved with :func:`omnirm.models.checkpoint.save_reward_model`; the resolved
configuration goes next to it as ``training_config.json``.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from omnirm import console
from omnirm.errors import RecordError, UsageError
from omnirm.jsonl import MAX_RECORD_BYTES, display_name
from omnirm.media import MediaLimits, MediaResolver
from omnirm.models.inputs import Encoded, TooLongError
from omnirm.models.reward_model import RewardModel
from omnirm.records import InvalidRecord, Record, iter_records_at
from omnirm.train.batching import GroupedSampler, LengthGroupedSampler, contrast_key
from omnirm.train.losses import bradley_terry_loss, centering_loss, davidson_loss
from omnirm.train.memory import memory_estimate, release_freed_activations
from omnirm.train.packing import PackedRecord, collate_packed, pack_record, supports_packing
from omnirm.train.pairs import Pair, implied_pairs
from omnirm.train.records_file import RecordFile
from omnirm.train.resume import (
    check_same_run,
    clear_output,
    file_sha256,
    keep_trainable_only,
    load_state,
    prepare_output,
    read_saved_config,
    run_record,
    save_state,
)

TiePolicy = Literal["skip", "davidson"]


@dataclass
class BTConfig:
    """Everything ``omnirm train bt`` can be told; saved resolved as ``training_config.json``."""

    model: str
    data: str
    output: str
    eval: str | None = None
    epochs: float = 1.0
    lr: float | None = None  # default: 5e-4 with LoRA, 1e-5 for full fine-tuning
    batch_size: int = 8
    eval_batch_size: int = 16
    grad_accum: int = 1
    max_length: int = 1024  # per (prompt, response) sequence
    lora_r: int = 16
    lora_alpha: int | None = None  # default: 2 × r
    lora_dropout: float = 0.0  # as peft, LLaMA-Factory and TRL; dropout masks are costly on CPU
    lora_layers: int | None = None  # adapt only the last N transformer layers (None: all)
    full: bool = False
    seed: int = 0
    resume: bool = False  # continue the run saved in ``output``
    force: bool = False  # clear ``output`` (an earlier run's folder) first
    margin: float = 0.0
    center_rewards: float = 0.0
    ties: TiePolicy = "skip"
    freeze_media: bool = True
    gradient_checkpointing: bool = True  # as TRL and LLaMA-Factory: activations recomputed
    share_prefix: bool = True  # each record's prompt runs once for all its responses
    group_by_length: bool = True  # batches of records of similar length
    bf16: bool | None = None  # default: on for GPUs that support it
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    eval_every: int = 0  # optimizer steps; 0 = at the end of each epoch
    save_every: int = 0  # optimizer steps between resumable checkpoints; 0 = each epoch
    head_dropout: float = 0.0
    criteria: str | None = None
    criteria_position: str = "system"  # "end": the criterion is repeated after the response
    contrastive_batches: bool = (
        False  # one pair's records under different criteria batched together
    )
    media_root: str | None = None
    allow_outside_root: bool = False
    allow_urls: bool = False
    media_limits: MediaLimits = field(default_factory=MediaLimits)  # saved as a dict
    max_record_bytes: int = MAX_RECORD_BYTES
    video_frames: int = 4
    mesh_views: int = 4
    mesh_size: int = 256
    trust_remote_code: bool = False
    gguf_file: str | None = None
    revision: str | None = None  # hub revision of a model given as ORG/NAME

    def __post_init__(self) -> None:
        if isinstance(self.media_limits, dict):  # as read back from training_config.json
            self.media_limits = MediaLimits(**self.media_limits)

    def resolved_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return 1e-5 if self.full else 5e-4

    def validate(self) -> None:
        if self.epochs <= 0:
            raise UsageError("--epochs must be positive")
        if self.batch_size < 1 or self.grad_accum < 1 or self.eval_batch_size < 1:
            raise UsageError("--batch-size and --grad-accum must be at least 1")
        if self.ties not in ("skip", "davidson"):
            raise UsageError("--ties must be skip or davidson")
        if not self.full and self.lora_r < 1:
            raise UsageError("--lora-r must be at least 1 (or pass --full)")
        if self.criteria_position not in ("system", "end"):
            raise UsageError("--criteria-position must be system or end")
        if self.lora_layers is not None and (self.full or self.lora_layers < 1):
            raise UsageError("--lora-layers must be at least 1, and needs LoRA (not --full)")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise UsageError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")
        if self.mesh_views < 1:
            raise UsageError(f"--mesh-views must be at least 1, got {self.mesh_views}")
        if self.mesh_size < 1:
            raise UsageError(f"--mesh-size must be at least 1, got {self.mesh_size}")
        if self.save_every < 0 or self.eval_every < 0:
            raise UsageError("--save-every and --eval-every must be 0 or more")


@dataclass
class TrainResult:
    """What a training run reports: steps, last loss, and eval accuracy after each evaluation."""

    steps: int = 0
    train_pairs: int = 0
    skipped_records: int = 0
    last_loss: float = math.nan
    evals: list[dict[str, float]] = field(default_factory=list)


@dataclass
class PairBatch:
    """Encoded sequences of a batch and the pairs among them (indices into the sequences)."""

    inputs: dict[str, torch.Tensor]
    better: torch.Tensor
    worse: torch.Tensor
    tie: torch.Tensor
    record: torch.Tensor  # for each pair, the index of its record in the batch
    read_at: torch.Tensor | None = None  # packed rows: (row, position) of each response's end
    chunks: torch.Tensor | None = None  # packed text rows: groups run one after the other

    def to(self, device: torch.device | str) -> PairBatch:
        """The batch on ``device`` (accelerate calls this for prepared data loaders)."""
        return PairBatch(
            inputs={k: v.to(device) for k, v in self.inputs.items()},
            better=self.better.to(device),
            worse=self.worse.to(device),
            tie=self.tie.to(device),
            record=self.record.to(device),
            read_at=self.read_at.to(device) if self.read_at is not None else None,
            chunks=self.chunks,  # row bounds, read on the host
        )

    def rewards(self, model: Any) -> torch.Tensor:
        """The model's reward for every response of the batch, in the order pairs index."""
        if self.read_at is not None:
            return model(**self.inputs, read_at=self.read_at, chunks=self.chunks)
        return model(**self.inputs)


#: Records whose text encodings a collator keeps (least recently used out): bounded, so that a
#: run's memory does not grow with its data set.
ENCODING_CACHE = 1024


class PairCollator:
    """Turns a list of records into a :class:`PairBatch`. With ``backbone`` (prefix sharing)
    each record is one packed row (:mod:`omnirm.train.packing`); without, each response that
    takes part in a pair is one sequence. Either way the pairs point at the responses' rewards,
    in record order."""

    def __init__(
        self,
        builder: Any,
        ties: TiePolicy,
        criteria: str | None = None,
        *,
        backbone: Any = None,
        cache_size: int = ENCODING_CACHE,
    ) -> None:
        self.builder = builder
        self.ties = ties
        self.criteria = criteria
        self.backbone = backbone  # set: records are packed rows sharing their prefix
        self.cache_size = cache_size
        self._cache: OrderedDict[str, PackedRecord | list[Encoded]] = OrderedDict()

    def responses_of(self, record: Record) -> list[int]:
        """The responses that take part in the record's trainable pairs, in order."""
        return sorted({i for p in self.pairs_of(record) for i in (p.better, p.worse)})

    def encoded(self, record: Record) -> PackedRecord | list[Encoded]:
        """The record's encoding (one packed row, or one sequence per response), kept for text
        records in a bounded cache; records with media are encoded again when needed (the builder
        keeps recently decoded files)."""
        item = self._cache.get(record.id)
        if item is not None:
            self._cache.move_to_end(record.id)
            return item
        responses = self.responses_of(record)
        if self.backbone is not None:
            item = pack_record(self.builder, record, responses, self.criteria)
            has_media = any(part.media for part in (item.prefix, *item.segments))
        else:
            item = [self.builder.encode(record, i, criteria=self.criteria) for i in responses]
            has_media = any(sequence.media for sequence in item)
        if not has_media and self.cache_size:
            self._cache[record.id] = item
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return item

    def length_of(self, record: Record) -> int:
        """Tokens the record puts into a batch's widest row: its packed row (or its longest
        response where it does not share), or its longest sequence."""
        item = self.encoded(record)
        if isinstance(item, PackedRecord):
            return item.width
        return max(sequence.length for sequence in item)

    def pairs_of(self, record: Record) -> list[Pair]:
        pairs = implied_pairs(record)
        return pairs if self.ties == "davidson" else [p for p in pairs if not p.tie]

    def __call__(self, records: Sequence[Record]) -> PairBatch:
        encoded: list[Any] = []
        better: list[int] = []
        worse: list[int] = []
        tie: list[bool] = []
        owner: list[int] = []
        first = 0  # index of the record's first response among the batch's rewards
        for position, record in enumerate(records):
            responses = self.responses_of(record)
            slot = {response: first + k for k, response in enumerate(responses)}
            for pair in self.pairs_of(record):
                better.append(slot[pair.better])
                worse.append(slot[pair.worse])
                tie.append(pair.tie)
                owner.append(position)
            item = self.encoded(record)
            if isinstance(item, PackedRecord):
                encoded.append(item)
            else:
                encoded.extend(item)
            first += len(responses)
        read_at = chunks = None
        if self.backbone is not None:
            inputs, read_at, chunks = collate_packed(self.builder, self.backbone, encoded)
        else:
            inputs = self.builder.collate(encoded)
        return PairBatch(
            inputs=inputs,
            better=torch.tensor(better, dtype=torch.long),
            worse=torch.tensor(worse, dtype=torch.long),
            tie=torch.tensor(tie, dtype=torch.bool),
            record=torch.tensor(owner, dtype=torch.long),
            read_at=read_at,
            chunks=chunks,
        )


def pair_loss(rewards: torch.Tensor, batch: PairBatch, config: BTConfig) -> torch.Tensor:
    """The configured pairwise loss for the rewards of one batch."""
    better, worse = rewards[batch.better], rewards[batch.worse]
    if config.ties == "davidson":
        loss = davidson_loss(better, worse, batch.tie)
    else:
        loss = bradley_terry_loss(better, worse, config.margin or None)
    if config.center_rewards:
        loss = loss + config.center_rewards * centering_loss(rewards)
    return loss


def load_training_records(
    path: str, collator: PairCollator, *, report: bool = True, max_bytes: int = MAX_RECORD_BYTES
) -> tuple[RecordFile, int, int]:
    """The records of ``path`` that imply at least one trainable pair and fit ``--max-length``
    (each is encoded once here, so an over-long record is reported before training starts, not
    in the middle of a step), how many records were left out, and how many pairs the kept ones
    imply. The records stay on disk (:class:`~omnirm.train.records_file.RecordFile`).

    Over-long records are left out with a warning; any other bad record (malformed, missing or
    unreadable media, media the model cannot read) stops the run with an error naming it.
    """
    kept = RecordFile(path)
    unlabelled = too_long = pairs_total = 0
    shown = display_name(path)
    for line, offset, record in iter_records_at(path, max_bytes=max_bytes):
        if isinstance(record, InvalidRecord):
            raise record.error
        pairs = collator.pairs_of(record)
        if not pairs:
            unlabelled += 1
            continue
        try:
            length = collator.length_of(record)
        except TooLongError as error:
            too_long += 1
            if report and too_long <= 3:
                console.warn(f"{error.located(source=shown, line=line)} (record left out)")
            continue
        except RecordError as error:
            error.located(source=shown, line=line)
            raise
        kept.add(offset, length)
        pairs_total += len(pairs)
    if too_long and report:
        console.warn(
            f"{shown}: {too_long} records left out because they do not fit --max-length "
            f"{collator.builder.settings.max_length}"
        )
    if unlabelled and report:
        console.info(f"{shown}: {unlabelled} records without a trainable pair left out")
    return kept, unlabelled + too_long, pairs_total


@torch.no_grad()
def pair_outcomes(diff: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For reward differences better − worse: 1.0 where the better response is ahead, and each
    pair's Bradley-Terry loss."""
    return (diff > 0).float(), -torch.nn.functional.logsigmoid(diff)


@torch.no_grad()  # in eval mode checkpointing is off: with autograd a batch kept every activation
def evaluate(model: torch.nn.Module, loader: Any, accelerator: Any) -> dict[str, float]:
    """Pairwise accuracy (non-tie pairs: the better response gets the higher reward) and mean
    Bradley-Terry loss over the eval records, gathered exactly across processes (the padding
    a distributed sampler adds is dropped by ``gather_for_metrics``)."""
    model.eval()
    correct_sum = pairs_sum = loss_sum = 0.0
    for batch in loader:
        rewards = batch.rewards(model)
        # per-record sums, so that gather_for_metrics can drop duplicated records
        n = batch.record.max().item() + 1 if batch.record.numel() else 0
        keep = (~batch.tie).float()
        right, pair_losses = pair_outcomes(rewards[batch.better] - rewards[batch.worse])
        zeros = torch.zeros(int(n), device=rewards.device)
        correct = zeros.index_add(0, batch.record, right * keep)
        pairs = zeros.index_add(0, batch.record, keep)
        losses = zeros.index_add(0, batch.record, pair_losses * keep)
        correct, pairs, losses = accelerator.gather_for_metrics((correct, pairs, losses))
        correct_sum += float(correct.sum())
        pairs_sum += float(pairs.sum())
        loss_sum += float(losses.sum())
    model.train()
    n = max(pairs_sum, 1.0)
    return {"accuracy": correct_sum / n, "loss": loss_sum / n, "pairs": pairs_sum}


def train_bt(config: BTConfig) -> TrainResult:
    """Train a Bradley-Terry reward model as ``config`` says and save it to ``config.output``.

    >>> train_bt(BTConfig(model="HuggingFaceTB/SmolLM2-135M-Instruct", data="pairs.jsonl",
    ...                   output="rm"))  # doctest: +SKIP
    """
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, set_seed
    from torch.utils.data import DataLoader
    from transformers import get_scheduler

    from omnirm.models.checkpoint import build_reward_model, save_reward_model

    config.validate()
    release_freed_activations()
    output = Path(config.output)
    use_bf16 = config.bf16 if config.bf16 is not None else bf16_supported()
    allow_precision("bf16" if use_bf16 else "no")
    accelerator = Accelerator(
        gradient_accumulation_steps=config.grad_accum,
        mixed_precision="bf16" if use_bf16 else "no",
        # the sampler reshuffles with seed + epoch, so a resumed run sees the same order
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        # several CPU processes (torchrun / accelerate launch --multi_gpu) train with gloo
        cpu=not torch.cuda.is_available(),
        # trainable media towers get no gradient in a step whose batch lacks their modality
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]
        if not config.freeze_media
        else None,
    )
    check_launch(accelerator.num_processes)
    set_seed(config.seed)
    main = accelerator.is_main_process

    how = prepare_output(config)
    record = run_record(
        config,
        bf16=use_bf16,
        processes=accelerator.num_processes,
        data_sha256=file_sha256(config.data),
    )
    if how == "resume":
        warnings = check_same_run(read_saved_config(output), record, output)
        for warning in warnings if main else []:
            console.warn(warning)
    elif config.resume and main:
        console.info(f"--resume: nothing saved in {output} yet; starting from the beginning")
    accelerator.wait_for_everyone()
    if how == "clear" and main:
        clear_output(output)
        console.info(f"--force: cleared {output}")
    accelerator.wait_for_everyone()

    model, builder, model_config = build_reward_model(config, media_resolver(config, config.data))
    backbone = sharing_backbone(model, config, report=main)
    collator = PairCollator(builder, config.ties, config.criteria, backbone=backbone)
    train_records, skipped, train_pairs = load_training_records(
        config.data, collator, report=main, max_bytes=config.max_record_bytes
    )
    if not len(train_records):
        raise UsageError(f"{config.data}: no record implies a trainable pair")
    eval_collator = collator
    eval_records: RecordFile | list[Record] = []
    if config.eval:  # its media resolve against its own folder (unless --media-root)
        eval_builder = builder.with_resolver(media_resolver(config, config.eval))
        eval_collator = PairCollator(eval_builder, config.ties, config.criteria, backbone=backbone)
        eval_records = load_training_records(
            config.eval, eval_collator, report=main, max_bytes=config.max_record_bytes
        )[0]
    result = TrainResult(train_pairs=train_pairs, skipped_records=skipped)
    if main:
        console.info(
            f"training on {len(train_records)} records ({result.train_pairs} pairs), "
            f"evaluating on {len(eval_records)}, {world_line(accelerator)}"
        )

    train_loader: Any = training_loader(
        train_records, collator, config, lengths=train_records.lengths
    )
    if main:
        console.info(
            memory_estimate(
                model,
                train_loader,
                train_records.lengths,
                config,
                rows_per_record=1.0 if backbone is not None else 2.0,
                bf16=use_bf16,
            ).summary()
        )
    eval_loader: Any = (
        DataLoader(eval_records, batch_size=config.eval_batch_size, collate_fn=eval_collator)  # type: ignore[arg-type]
        if len(eval_records)
        else None
    )
    train_loader = accelerator.prepare(train_loader)  # sharded: its length is per process
    if eval_loader is not None:
        eval_loader = accelerator.prepare(eval_loader)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=config.resolved_lr(), weight_decay=config.weight_decay
    )
    steps_per_epoch = math.ceil(len(train_loader) / config.grad_accum)
    total_steps = max(1, math.ceil(steps_per_epoch * config.epochs))
    # accelerate steps a prepared scheduler once per process per update: count in those units
    scheduler = get_scheduler(
        "cosine",
        optimizer,
        num_warmup_steps=int(config.warmup_ratio * total_steps) * accelerator.num_processes,
        num_training_steps=total_steps * accelerator.num_processes,
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    keep_trainable_only(accelerator)
    start_step = 0
    if how == "resume":
        saved_run = load_state(accelerator, output)
        start_step = saved_run.step
        if saved_run.result:  # the report goes on from where it stopped
            result = TrainResult(**saved_run.result)
        if start_step > total_steps:
            raise UsageError(
                f"--resume: the state in {output} is at step {start_step}, but this run has "
                f"{total_steps} steps"
            )
        if main:
            console.info(f"resuming from step {start_step} of {total_steps}")

    if main:
        output.mkdir(parents=True, exist_ok=True)
        (output / "training_config.json").write_text(json.dumps(record, indent=2) + "\n")

    start_epoch, skip_batches = divmod(start_step, steps_per_epoch)
    skip_batches *= config.grad_accum
    step = saved = start_step
    model.train()
    with console.step_progress(total_steps, "training", enabled=main) as progress:
        progress.update(step)
        for epoch in range(start_epoch, math.ceil(config.epochs)):
            train_loader.set_epoch(epoch)
            loader = train_loader
            if epoch == start_epoch and skip_batches:
                loader = accelerator.skip_first_batches(train_loader, skip_batches)
            for batch in loader:
                with accelerator.accumulate(model):
                    rewards = batch.rewards(model)
                    loss = pair_loss(rewards, batch, config)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.max_grad_norm:
                        accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                if not accelerator.sync_gradients:
                    continue
                step += 1
                result.last_loss = float(accelerator.reduce(loss.detach(), reduction="mean").item())
                progress.update(step, loss=result.last_loss)
                if (
                    eval_loader is not None
                    and config.eval_every
                    and step % config.eval_every == 0
                    and step < total_steps  # the last evaluation is the final one, below
                ):
                    _log_eval(result, evaluate(model, eval_loader, accelerator), step, main)
                if config.save_every and step % config.save_every == 0:
                    save_state(accelerator, output, step, asdict(result))
                    saved = step
                if step >= total_steps:
                    break
            if eval_loader is not None and not config.eval_every and step < total_steps:
                _log_eval(result, evaluate(model, eval_loader, accelerator), step, main)
            if not config.save_every:
                save_state(accelerator, output, step, asdict(result))
                saved = step
            if step >= total_steps:
                break
    if saved != step:  # the final state, so that resuming a finished run changes nothing
        save_state(accelerator, output, step, asdict(result))
    result.steps = step

    accelerator.wait_for_everyone()
    # the model as it is saved: full precision, without the mixed-precision forward
    trained = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    trained.eval()
    if eval_loader is not None:
        metrics = [
            final_evaluation(trained, eval_collator, model_config, config, output, bf16=use_bf16)
            if main
            else {}
        ]
        if accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            broadcast_object_list(metrics)
        _log_eval(result, metrics[0], step, main)
    if main:
        save_reward_model(output, trained, builder, model_config)
        (output / "train_result.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
        console.info(f"saved the reward model to {output}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result


def training_loader(
    records: Sequence[Record] | RecordFile,
    collator: Any,
    config: BTConfig,
    lengths: Sequence[int] | None = None,
) -> Any:
    """The training DataLoader: with ``contrastive_batches`` grouped by pair
    (:class:`~omnirm.train.batching.GroupedSampler`), else with ``group_by_length`` and the
    records' ``lengths`` in batches of similar length
    (:class:`~omnirm.train.batching.LengthGroupedSampler`), else shuffled record by record."""
    from torch.utils.data import DataLoader

    sampler: Any = None
    if config.contrastive_batches:
        sampler = GroupedSampler(
            [contrast_key(records[i]) for i in range(len(records))], config.batch_size, config.seed
        )
    elif config.group_by_length and lengths is not None:
        sampler = LengthGroupedSampler(lengths, config.batch_size, config.seed)
    return DataLoader(
        records,  # type: ignore[arg-type]
        batch_size=config.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        collate_fn=collator,
    )


def sharing_backbone(model: RewardModel, config: BTConfig, *, report: bool = True) -> Any:
    """The backbone that packed rows are computed for, or None when records are encoded as
    whole sequences (``--no-share-prefix``, or an attention kernel that cannot take the packed
    rows' mask)."""
    if not config.share_prefix:
        return None
    if not supports_packing(model.backbone):
        if report:
            console.info(
                "this backbone's attention takes no custom mask: each response is trained as a "
                "whole sequence (no shared prompt)"
            )
        return None
    return model.backbone


def final_evaluation(
    model: RewardModel,
    collator: PairCollator,
    model_config: Any,
    config: BTConfig,
    output: Path,
    *,
    bf16: bool = False,
) -> dict[str, float]:
    """Score the eval records once with the model as it is saved (prompts shared and the adapter
    merged as ``omnirm score`` does) into ``eval_rewards.jsonl``, store the rewards' mean and
    standard deviation in the model config for ``--normalize``, and return the pairwise accuracy
    and loss of those rewards (the pairs :func:`evaluate` counts).

    It runs in the training's precision: with ``bf16``, under bf16 autocast (half the time of
    fp32 on a CPU with native bf16), the rewards within bf16 rounding of what ``omnirm score``
    (fp32) gives on the saved folder; without, equal to them."""
    from omnirm.jsonl import JsonlWriter
    from omnirm.models.devices import precision_name
    from omnirm.on_error import ErrorPolicy
    from omnirm.records import iter_records
    from omnirm.scoring import RewardScorer, ScoreSettings, provenance

    assert config.eval is not None
    settings = ScoreSettings(batch_size=config.eval_batch_size, criteria=config.criteria)
    precision = precision_name(torch.bfloat16 if bf16 else torch.float32)
    scored_by = provenance(str(output), model_config, settings, precision=precision)
    scorer = RewardScorer(model, collator.builder, settings, scored_by)
    device = next(model.parameters()).device
    waiting: dict[str, list[Record]] = {}  # read, not yet scored (the scorer works in windows)

    def remembered(items: Any) -> Any:
        for line, record in items:
            if isinstance(record, Record):
                waiting.setdefault(record.id, []).append(record)
            yield line, record

    rewards: list[float] = []
    diffs: list[float] = []  # better − worse, non-tie pairs
    with (
        JsonlWriter(output / "eval_rewards.jsonl") as writer,
        torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16),
        adapter_merged(model),
    ):
        records = iter_records(config.eval, max_bytes=config.max_record_bytes)
        for scored in scorer.score(remembered(records), ErrorPolicy("skip")):
            rewards.extend(scored["rewards"])
            writer.write(scored)
            queue = waiting.get(scored["id"])
            if not queue:
                continue
            given = scored["rewards"]
            diffs += [
                given[p.better] - given[p.worse]
                for p in collator.pairs_of(queue.pop(0))
                if not p.tie
            ]
    if len(rewards) > 1:
        model_config.reward_mean = statistics.mean(rewards)
        model_config.reward_std = statistics.stdev(rewards)
    correct, losses = pair_outcomes(torch.tensor(diffs, dtype=torch.float64))
    pairs = float(len(diffs))
    n = max(pairs, 1.0)
    return {"accuracy": float(correct.sum()) / n, "loss": float(losses.sum()) / n, "pairs": pairs}


@contextmanager
def adapter_merged(model: RewardModel) -> Iterator[None]:
    """LoRA weights folded into the base weights for a while, as ``omnirm score`` folds them
    (one matrix product per layer instead of three), then taken out again."""
    backbone = model.backbone
    if not hasattr(backbone, "merge_adapter"):
        yield
        return
    backbone.merge_adapter()
    try:
        yield
    finally:
        backbone.unmerge_adapter()


def media_resolver(config: Any, data: str) -> MediaResolver:
    """Media paths of ``data`` resolve against ``--media-root``, else the file's folder."""
    from omnirm.options import default_media_root

    root = default_media_root(data, config.media_root)
    return MediaResolver(
        root,
        allow_outside_root=config.allow_outside_root,
        allow_urls=config.allow_urls,
        limits=config.media_limits,
    )


def _log_eval(result: TrainResult, metrics: dict[str, float], step: int, main: bool) -> None:
    entry = {"step": float(step), **metrics}
    result.evals.append(entry)
    if main:
        console.info(
            f"step {step}: eval accuracy {metrics['accuracy']:.4f} on {int(metrics['pairs'])} pairs, "
            f"loss {metrics['loss']:.4f}"
        )


def check_launch(processes: int, environ: Any = os.environ) -> None:
    """Refuse a run that ``accelerate launch --num_processes N`` (N > 1) started as one process:
    without GPUs accelerate's default launcher runs a single process (several only through
    MPI), which would train alone and silently differ from the run asked for."""
    launched = "ACCELERATE_MIXED_PRECISION" in environ and "MASTER_ADDR" in environ
    if processes == 1 and launched and "WORLD_SIZE" not in environ:
        raise UsageError(
            "accelerate launch started one process, not the --num_processes asked for (without "
            "a GPU per process accelerate runs several only with --multi_gpu, which trains on "
            "CPUs with gloo, or through MPI): run `accelerate launch --multi_gpu --num_processes "
            "N -m omnirm train bt …` or `torchrun --nproc_per_node N -m omnirm train bt …`"
        )


def world_line(accelerator: Any) -> str:
    """The "training on" line's processes: how many, on what, with which backend."""
    count = accelerator.num_processes
    backend = accelerator.state.backend if count > 1 else None
    how = f" ({backend})" if backend else ""
    return f"{count} process{'es' if count > 1 else ''}{how} on {accelerator.device.type}"


def allow_precision(mixed_precision: str) -> None:
    """Let a run start in a process that already trained at another precision (``train bt`` in
    bf16 then ``train r1`` in fp32, in a notebook or the tests): accelerate keeps one state per
    process and refuses an ``Accelerator`` with another ``mixed_precision``. Only that state's
    precision part is cleared; the processes' part (the distributed setup) stays."""
    from accelerate.state import AcceleratorState

    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision") != mixed_precision:
        AcceleratorState._reset_state()


def bf16_supported() -> bool:
    """Whether bf16 mixed precision is the default: on GPUs that support it, and on CPUs with
    native bf16 arithmetic (AVX512-BF16 or AMX), where autocast runs the matrix products in bf16
    at about twice the fp32 speed — as TRL's trainers default to bf16. Elsewhere bf16 would be
    emulated, slower than fp32."""
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    cpu = torch.cpu
    native = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in native)
