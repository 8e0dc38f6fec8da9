"""Scoring records with a reward model: ``omnirm score --model DIR``.

Records stream through in windows (256 records for text models, 16 for multimodal ones, whose
media tensors are large): every response of every record in a window is encoded, the
sequences are sorted by length and run in batches (so padding is small), and the records come
out in input order with ``rewards`` added — and for pairs ``predicted`` and ``margin`` — plus
``scored_by``. Because each sequence is scored on its own (padding is masked and the head reads
the last real token), rewards do not depend on the batch size or the order of the records.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from omnirm.errors import RecordError
from omnirm.on_error import ErrorPolicy
from omnirm.records import InvalidRecord, Record


@dataclass
class ScoreSettings:
    batch_size: int = 8
    window: int | None = None  # records encoded and sorted together; default: the builder's
    criteria: str | None = None
    tie_margin: float = 0.0  # |margin| <= this → "tie"
    normalize: bool = False


@dataclass
class ScoreReport:
    scored: int = 0
    failed: int = 0
    truncated_sequences: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{self.scored} records scored"]
        if self.truncated_sequences:
            parts.append(f"{self.truncated_sequences} sequences had their prompt truncated")
        if self.failed:
            parts.append(f"{self.failed} failed")
        return ", ".join(parts)


def provenance(model_dir: str, config: Any, settings: ScoreSettings) -> dict[str, Any]:
    """The ``scored_by`` block: which model scored, and how."""
    return {
        "model": model_dir,
        "backbone": config.backbone,
        "head": config.head,
        "criteria_override": settings.criteria,
        "normalized": settings.normalize,
        "omnirm": config.omnirm_version,
    }


@torch.no_grad()
def reward_batches(
    model: torch.nn.Module, builder: Any, encoded: list[Any], batch_size: int
) -> list[float]:
    """Rewards for encoded sequences, batched by length; returned in the given order."""
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


class Scorer:
    """Scores record streams with one model; :attr:`report` counts what happened."""

    def __init__(
        self,
        model: torch.nn.Module,
        builder: Any,
        settings: ScoreSettings,
        scored_by: dict[str, Any],
        normalization: tuple[float, float] | None = None,
    ) -> None:
        self.model = model
        self.builder = builder
        self.settings = settings
        self.scored_by = scored_by
        self.normalization = normalization
        self.report = ScoreReport()

    def score(
        self, items: Iterable[tuple[int, Record | InvalidRecord]], policy: ErrorPolicy
    ) -> Iterator[dict[str, Any]]:
        """Scored records in input order; bad ones go to ``policy`` (which may raise or emit)."""
        size = self.settings.window or self.builder.score_window
        window: list[tuple[int, Record | InvalidRecord]] = []
        for item in items:
            window.append(item)
            if len(window) >= size:
                yield from self._window(window, policy)
                window = []
        if window:
            yield from self._window(window, policy)

    def _encode(self, record: Record) -> list[Any]:
        encoded = []
        for index in range(record.num_responses):
            item = self.builder.encode(record, index, criteria=self.settings.criteria)
            self.report.truncated_sequences += 1 if item.truncated_tokens else 0
            encoded.append(item)
        return encoded

    def _window(
        self, window: list[tuple[int, Record | InvalidRecord]], policy: ErrorPolicy
    ) -> Iterator[dict[str, Any]]:
        encoded: list[Any] = []
        slots: list[range | InvalidRecord] = []
        for line, item in window:
            if isinstance(item, InvalidRecord):
                slots.append(item)
                continue
            try:
                mine = self._encode(item)
            except RecordError as error:
                error.located(line=line, record_id=item.id)
                slots.append(InvalidRecord(line, error, item.to_dict()))
                continue
            slots.append(range(len(encoded), len(encoded) + len(mine)))
            encoded.extend(mine)
        rewards = (
            reward_batches(self.model, self.builder, encoded, self.settings.batch_size)
            if encoded
            else []
        )
        if self.normalization is not None and self.settings.normalize:
            mean, std = self.normalization
            rewards = [(r - mean) / std for r in rewards]
        for (_, item), slot in zip(window, slots, strict=True):
            if isinstance(slot, InvalidRecord):
                self.report.failed += 1
                policy.handle(slot)
                continue
            assert isinstance(item, Record)
            self.report.scored += 1
            yield _annotate(item, [rewards[i] for i in slot], self.settings, self.scored_by)
