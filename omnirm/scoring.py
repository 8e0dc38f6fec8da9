"""Scoring records with a reward model: ``omnirm score --model DIR``.

Records stream through in windows (growing from ``batch_size`` records, while a window takes
under a second, up to 256 records for text models and 16 for multimodal ones, whose media
tensors are large) and come out in input order with ``rewards`` added — and for pairs
``predicted`` and ``margin`` — plus ``scored_by``. Within a window:

- **shared prefix** (the default): a record's responses all follow the same criterion, history
  and prompt. That prefix — with its media, often most of the tokens — runs once; every response
  then runs on its KV cache (:mod:`omnirm.models.prefix`). Prefixes are batched by length, and
  the continuations of a batch of prefixes by their own length.
- **independent**: each (prompt, response) sequence runs whole; sequences are sorted by length
  and batched. Records with one response, or whose prompt had to be truncated (the cut differs
  per response), always go this way; ``ScoreSettings.share_prefix=False`` sends all of them.

Both give the same rewards (to float rounding, ~1e-6) whatever the batch size or record order:
padding is masked, positions are explicit, and the head reads the last real token.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from omnirm.errors import RecordError
from omnirm.models.inputs import Encoded
from omnirm.models.prefix import PositionIds, SharedPrefix, encode_shared_prefix, select_rows
from omnirm.models.reward_model import RewardModel
from omnirm.on_error import ErrorPolicy
from omnirm.records import InvalidRecord, Record
from omnirm.scorer import windowed


@dataclass
class ScoreSettings:
    batch_size: int = 8
    window: int | None = None  # records encoded and sorted together; default: the builder's
    criteria: str | None = None
    tie_margin: float = 0.0  # |margin| <= this → "tie"
    normalize: bool = False
    share_prefix: bool = True  # run each record's prompt once for all its responses


@dataclass
class ScoreReport:
    scored: int = 0
    failed: int = 0
    truncated_sequences: int = 0
    shared_prefix_records: int = 0

    def summary(self) -> str:
        parts = [f"{self.scored} records scored"]
        if self.shared_prefix_records:
            parts.append(f"{self.shared_prefix_records} with their prompt run once")
        if self.truncated_sequences:
            parts.append(f"{self.truncated_sequences} sequences had their prompt truncated")
        if self.failed:
            parts.append(f"{self.failed} failed")
        return ", ".join(parts)


def provenance(
    model: str,
    config: Any,
    settings: ScoreSettings,
    model_version: str | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    """The ``scored_by`` block: which model scored (a folder, ``ORG/NAME@commit``, or the
    embedded model's name with ``model_version``), on which backbone, and how (``precision``:
    ``fp32``, ``bf16`` or ``fp16``)."""
    version = {"model_version": model_version} if model_version else {}
    revision = {"backbone_revision": config.backbone_revision} if config.backbone_revision else {}
    return {
        "model": model,
        **version,
        "backbone": config.backbone,
        **revision,
        "head": config.head,
        "criteria_override": settings.criteria,
        "normalized": settings.normalize,
        "tie_margin": settings.tie_margin,
        "shared_prefix": settings.share_prefix,
        "precision": precision,
        "omnirm": config.omnirm_version,
    }


@torch.no_grad()
def reward_batches(
    model: torch.nn.Module, builder: Any, encoded: list[Any], batch_size: int
) -> list[float]:
    """Rewards for whole encoded sequences, batched by length; returned in the given order."""
    device = next(model.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: encoded[i].length)
    rewards = [0.0] * len(encoded)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = builder.collate([encoded[i] for i in chunk])
        out = model(**{k: v.to(device) for k, v in batch.items()})
        for i, value in zip(chunk, out.tolist(), strict=True):
            rewards[i] = float(value)
    return rewards


@torch.no_grad()
def shared_prefix_rewards(
    model: RewardModel, builder: Any, groups: list[SharedPrefix], batch_size: int
) -> list[list[float]]:
    """Rewards per group (per record), each prefix run once: up to ``batch_size`` prefixes per
    pass, then their continuations ``batch_size`` at a time on the cached keys and values."""
    device = next(model.parameters()).device
    positions = PositionIds(model.backbone)
    rewards = [[0.0] * len(g.continuations) for g in groups]
    order = sorted(range(len(groups)), key=lambda g: groups[g].prefix.length)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        prefixes = builder.collate([groups[g].prefix for g in chunk])
        cache = model.prefix_cache(**{k: v.to(device) for k, v in prefixes.items()})
        rows = [(row, g, k) for row, g in enumerate(chunk) for k in range(len(rewards[g]))]
        rows.sort(key=lambda r: groups[r[1]].continuations[r[2]].length)
        for first in range(0, len(rows), batch_size):
            part = rows[first : first + batch_size]
            batch = builder.collate([groups[g].continuations[k] for _, g, k in part])
            width = batch["input_ids"].shape[1]
            position_ids = torch.stack(
                [
                    positions.for_continuation(groups[g].prefix, groups[g].full[k], width)
                    for _, g, k in part
                ],
                dim=-2,  # (batch, width), or (3, batch, width) for 3D positions
            )
            cache_rows = torch.tensor([row for row, _, _ in part], device=device)
            out = model.continuation_rewards(
                select_rows(cache, cache_rows),
                {k: v.to(device) for k, v in batch.items()},
                prefixes["attention_mask"].to(device).index_select(0, cache_rows),
                position_ids.to(device),
            )
            for (_, g, k), value in zip(part, out.tolist(), strict=True):
                rewards[g][k] = float(value)
    return rewards


def _annotate(
    record: Record, rewards: list[float], settings: ScoreSettings, by: dict[str, Any]
) -> dict[str, Any]:
    out = record.to_dict()
    out["rewards"] = rewards
    if len(rewards) == 2:
        margin = rewards[0] - rewards[1]
        out["margin"] = margin
        out["predicted"] = "tie" if abs(margin) <= settings.tie_margin else (0 if margin > 0 else 1)
    out["scored_by"] = by
    return out


class RewardScorer:
    """Scores record streams with one model; :attr:`report` counts what happened."""

    def __init__(
        self,
        model: RewardModel,
        builder: Any,
        settings: ScoreSettings,
        scored_by: dict[str, Any],
        normalization: tuple[float, float] | None = None,
        source: str | None = None,
    ) -> None:
        self.model = model
        self.builder = builder
        self.settings = settings
        self.scored_by = scored_by
        self.normalization = normalization
        self.source = source  # the input's name, for error messages
        self.report = ScoreReport()

    def score(
        self, items: Iterable[tuple[int, Record | InvalidRecord]], policy: ErrorPolicy
    ) -> Iterator[dict[str, Any]]:
        """Scored records in input order; bad ones go to ``policy`` (which may raise or emit).

        Records are scored in windows (sorted by length inside, for batching) and come out
        when their window is done (:func:`~omnirm.scorer.windowed`). Unless ``settings.window``
        fixes it, the first window holds ``batch_size`` records and grows up to the builder's.
        """
        fixed = self.settings.window
        first = fixed or self.settings.batch_size
        largest = fixed or max(first, self.builder.score_window)
        return windowed(
            items, self._window, lambda w, r: self._emit(w, r, policy), first=first, largest=largest
        )

    def score_texts(self, texts: list[str]) -> list[float | RecordError]:
        """Rewards of whole sequences already laid out as the model reads them (vLLM's
        ``/classify`` input: a conversation rendered with the model's chat template), each
        tokenized as it is and read at its last token; a text over the token budget, or whose
        reward is not finite, gets a :class:`RecordError` instead (nothing is truncated)."""
        limit = self.builder.settings.max_length
        encoded: list[Encoded] = []
        slots: list[int | RecordError] = []
        for text in texts:
            ids = self.builder._text_ids(text)
            if not ids or len(ids) > limit:
                problem = "is empty" if not ids else f"has {len(ids)} tokens, over {limit}"
                slots.append(RecordError(f"the text {problem}", field="input"))
                continue
            slots.append(len(encoded))
            encoded.append(Encoded(ids))
        rewards = (
            reward_batches(self.model, self.builder, encoded, self.settings.batch_size)
            if encoded
            else []
        )
        results: list[float | RecordError] = []
        for slot in slots:
            if isinstance(slot, RecordError):
                results.append(slot)
                continue
            reward = rewards[slot]
            if self.normalization is not None and self.settings.normalize:
                mean, std = self.normalization
                reward = (reward - mean) / std
            if not math.isfinite(reward):
                results.append(RecordError(f"the model's reward is {reward}", field="input"))
                continue
            results.append(reward)
        return results

    def _encode(self, record: Record) -> list[Encoded] | SharedPrefix:
        """The record's prefix and continuations when they can share, else its sequences."""
        if self.settings.share_prefix:
            shared = self._encode_shared(record)
            if shared is not None:
                self.report.shared_prefix_records += 1
                return shared
        full = []
        for index in range(record.num_responses):
            item = self.builder.encode(record, index, criteria=self.settings.criteria)
            self.report.truncated_sequences += 1 if item.truncated_tokens else 0
            full.append(item)
        return full

    def _encode_shared(self, record: Record) -> SharedPrefix | None:
        """None when a sequence would need truncating (its prompt is then cut per response)."""
        return encode_shared_prefix(self.builder, record, criteria=self.settings.criteria)

    def _window(
        self, window: list[tuple[int, Record | InvalidRecord]]
    ) -> list[list[float] | InvalidRecord]:
        """Per item of the window: its rewards, or what makes it invalid."""
        single: list[Encoded] = []
        groups: list[SharedPrefix] = []
        slots: list[tuple[str, range | int] | InvalidRecord] = []
        for line, item in window:
            if isinstance(item, InvalidRecord):
                slots.append(item)
                continue
            try:
                encoded = self._encode(item)
            except RecordError as error:
                error.located(source=self.source, line=line, record_id=item.id)
                slots.append(InvalidRecord(line, error, item.to_dict()))
                continue
            if isinstance(encoded, SharedPrefix):
                slots.append(("shared", len(groups)))
                groups.append(encoded)
            else:
                slots.append(("single", range(len(single), len(single) + len(encoded))))
                single.extend(encoded)
        batch_size = self.settings.batch_size
        single_rewards = (
            reward_batches(self.model, self.builder, single, batch_size) if single else []
        )
        shared_rewards = (
            shared_prefix_rewards(self.model, self.builder, groups, batch_size) if groups else []
        )
        results: list[list[float] | InvalidRecord] = []
        for (line, item), slot in zip(window, slots, strict=True):
            if isinstance(slot, InvalidRecord):
                results.append(slot)
                continue
            kind, where = slot
            if kind == "shared":
                assert isinstance(where, int)
                rewards = shared_rewards[where]
            else:
                assert isinstance(where, range)
                rewards = [single_rewards[i] for i in where]
            if self.normalization is not None and self.settings.normalize:
                mean, std = self.normalization
                rewards = [(r - mean) / std for r in rewards]
            bad = non_finite(rewards)
            if bad is not None:
                assert isinstance(item, Record)
                overflow = RecordError(
                    f"the model's reward for response {bad} is {rewards[bad]} (not a finite "
                    "number: the model overflowed)",
                    source=self.source,
                    line=line,
                    record_id=item.id,
                    field=f"responses[{bad}]",
                )
                results.append(InvalidRecord(line, overflow, item.to_dict()))
                continue
            results.append(rewards)
        return results

    def _emit(
        self,
        window: list[tuple[int, Record | InvalidRecord]],
        results: list[list[float] | InvalidRecord],
        policy: ErrorPolicy,
    ) -> Iterator[dict[str, Any]]:
        for (_, item), result in zip(window, results, strict=True):
            if isinstance(result, InvalidRecord):
                self.report.failed += 1
                policy.handle(result)
                continue
            assert isinstance(item, Record)
            self.report.scored += 1
            yield _annotate(item, result, self.settings, self.scored_by)


def non_finite(values: list[float]) -> int | None:
    """The index of the first NaN or infinite value, or None when all are finite numbers."""
    return next((i for i, value in enumerate(values) if not math.isfinite(value)), None)
