"""Training pairs with a shared prefix: one row per record, its prompt run once.

Every response of a record follows the same criterion, history and prompt (with its media). A
row holds that prefix once and then each response that takes part in a pair::

    [ prefix | response a | response b | … | padding ]

and a 4D attention mask lets every response token see the prefix and the earlier tokens of its
own response, never another response. Positions continue from the prefix for each response
(text backbones: at the prefix's length; Qwen's 3D "mrope" positions: computed on the whole
sequence where the response has media, else counted on from the prefix's largest position, as
:class:`~omnirm.models.prefix.PositionIds` does for scoring). So each response token attends
to exactly the keys and values it sees in its (prompt, response) sequence alone: the rewards,
the loss and the gradients are those of the two-sequence path, up to float summation order —
while the prefix, usually most of the tokens, runs once forward and once backward, with the
gradients of every response flowing into it. Unlike a KV cache this is one ordinary forward
pass, so gradient checkpointing recomputes it like any other; media in the prompt are encoded
once (the vision/audio towers see each prompt image once per record, not once per response).

Design choices:

- **one row per record, right-padded** to the batch's longest row (records of similar length
  are batched together by :class:`~omnirm.train.batching.LengthGroupedSampler`). Padded query
  positions attend to themselves only, so no softmax row is empty (an empty one gives NaN,
  which the backward would spread);
- text rows are **sorted widest first and run in groups** (:func:`row_chunks`), each group cut
  to its own widest row, where that saves padding: a batch of SmolLM2 rows from 528 down to 262
  tokens runs as 3 × 528 and 6 × 341 instead of 9 × 528 (its step took 16.4 s instead of 24.8 s);
- the **reward** is read at the last token of each response segment (``read_at``);
- with ``criteria_position="end"`` the criterion repeated after the response is part of each
  response's segment: only what is truly common is shared;
- a record whose responses cannot share (a prompt truncated per response, or a response whose
  first token merges with the template's text) becomes **one row per response**, each its whole
  sequence (empty prefix): laid end to end in one row they would double the batch's width and
  its attention cost (measured on SmolLM2: a batch of 8 × 631 took 27 s against 19.5 s for the
  same tokens as 16 × 320);
- backbones whose attention kernel cannot take a custom 4D mask (flash-attention) are trained on
  whole sequences (:func:`supports_packing`).

``train r1``'s SFT lays out its rows with the same mask and positions (:func:`packed_layout`):
a record's two presentation orders after their common conversation start
(:mod:`omnirm.train.r1.sft`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from omnirm.models.inputs import Encoded
from omnirm.models.prefix import PositionIds, encode_shared_prefix
from omnirm.records import Record

# Processor outputs with one entry per token, and audio features with one column per frame.
_TOKEN_ALIGNED = ("mm_token_type_ids", "token_type_ids")
_AUDIO_FRAMES = ("input_features", "feature_attention_mask")
#: Attention implementations that read a custom 4D mask as given.
_MASKED_ATTENTION = ("sdpa", "eager")


@dataclass
class PackedRecord:
    """One record's row: its shared prefix (empty when it cannot share) and one segment per
    response; ``full`` holds the whole sequence where a segment's 3D positions come from it."""

    prefix: Encoded
    segments: list[Encoded]
    full: list[Encoded | None]

    @property
    def length(self) -> int:
        return self.prefix.length + sum(segment.length for segment in self.segments)

    @property
    def shared(self) -> bool:
        return self.prefix.length > 0

    def rows(self) -> list[PackedRecord]:
        """The batch rows the record takes: itself when it shares its prefix, else one row per
        response."""
        if self.shared or len(self.segments) < 2:
            return [self]
        return [
            PackedRecord(self.prefix, [segment], [full])
            for segment, full in zip(self.segments, self.full, strict=True)
        ]

    @property
    def width(self) -> int:
        """Tokens of the record's widest row."""
        return max(row.length for row in self.rows())


def pack_record(
    builder: Any, record: Record, responses: Sequence[int], criteria: str | None = None
) -> PackedRecord:
    """``record`` as one row holding ``responses`` after their shared prefix, or — when they
    cannot share — their whole sequences (truncated by the builder's policy)."""
    shared = encode_shared_prefix(builder, record, criteria=criteria, responses=responses)
    if shared is not None:
        return PackedRecord(shared.prefix, shared.continuations, shared.full)
    whole = [builder.encode(record, index, criteria=criteria) for index in responses]
    return PackedRecord(Encoded([]), whole, list(whole))


def supports_packing(backbone: Any) -> bool:
    """Whether the backbone's attention reads a custom 4D mask (sdpa and eager do; the
    flash-attention kernels take only padding masks)."""
    from omnirm.models.prefix import base_model

    config = getattr(base_model(backbone), "config", None)
    if config is None:
        return False
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return getattr(text, "_attn_implementation", None) in _MASKED_ATTENTION


def collate_packed(
    builder: Any, backbone: Any, rows: Sequence[PackedRecord]
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]:
    """Model inputs for a batch of rows — ids, media, a boolean 4D ``attention_mask`` and
    explicit ``position_ids`` —, ``read_at`` (segments × 2: row, position of the segment's last
    token; segments in record order, a record that does not share taking one row per response)
    and, for text rows, ``chunks``: the rows sorted widest first and cut into groups that the
    model runs one after the other, each padded only to its own widest row
    (:func:`row_chunks`; None: one group)."""
    rows = [row for record in rows for row in record.rows()]
    text = not any(part.media for row in rows for part in (row.prefix, *row.segments))
    order = sorted(range(len(rows)), key=lambda i: -rows[i].length) if text else range(len(rows))
    place = {old: new for new, old in enumerate(order)}
    laid_out = [rows[i] for i in order]
    batch = builder.collate([_joined(row) for row in laid_out])
    batch.update(packed_layout(backbone, laid_out, batch["input_ids"].shape[1]))
    read_at: list[tuple[int, int]] = []
    for index, row in enumerate(rows):
        end = row.prefix.length
        for segment in row.segments:
            end += segment.length
            read_at.append((place[index], end - 1))
    text = text and batch.keys() == {"input_ids", "attention_mask", "position_ids"}
    chunks = row_chunks([row.length for row in laid_out]) if text else None
    return batch, torch.tensor(read_at, dtype=torch.long).reshape(-1, 2), chunks


#: What one more group counts as, in padded tokens: a group is formed only where it saves more
#: padding than this (each group is a forward pass of its own, on smaller matrices).
CHUNK_COST = 512


def row_chunks(widths: Sequence[int], cost: int | None = None) -> torch.Tensor | None:
    """Cut rows of ``widths`` (widest first) into consecutive groups that minimise the padded
    tokens (each group padded to its first row) plus ``cost`` per group: (groups × 3) tensor of
    (first row, end row, width), or None where one group is best. A batch of 8 records whose
    rows run from 528 to 262 tokens: 4,752 padded tokens as one group, 3,630 as two."""
    cost = CHUNK_COST if cost is None else cost
    n = len(widths)
    best = [0.0] + [float("inf")] * n  # best[i]: cheapest layout of the first i rows
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(end):
            total = best[start] + (end - start) * widths[start] + cost
            if total < best[end]:
                best[end], cut[end] = total, start
    bounds: list[tuple[int, int, int]] = []
    end = n
    while end > 0:
        start = cut[end]
        bounds.append((start, end, widths[start]))
        end = start
    if len(bounds) < 2:
        return None
    return torch.tensor(bounds[::-1], dtype=torch.long)


def packed_layout(
    backbone: Any, rows: Sequence[PackedRecord], width: int
) -> dict[str, torch.Tensor]:
    """The ``position_ids`` and boolean 4D ``attention_mask`` of ``rows`` right-padded to
    ``width`` (what lets the model read a packed row as its separate sequences)."""
    positions = PositionIds(backbone)  # fresh per batch: it keys a small memo by id(prefix)
    position_rows = [_positions(positions, row, width) for row in rows]
    return {
        "position_ids": torch.stack(position_rows, dim=-2),  # (B, L) or (3, B, L)
        "attention_mask": packed_mask(rows, width),
    }


def packed_mask(rows: Sequence[PackedRecord], width: int) -> torch.Tensor:
    """(B, 1, L, L) boolean mask, True where a query may attend a key: the prefix causally,
    each segment the prefix and itself causally, each padded slot itself."""
    mask = torch.zeros((len(rows), width, width), dtype=torch.bool)
    for index, row in enumerate(rows):
        prefix = row.prefix.length
        mask[index, :prefix, :prefix] = _causal(prefix)
        start = prefix
        for segment in row.segments:
            end = start + segment.length
            mask[index, start:end, :prefix] = True
            mask[index, start:end, start:end] = _causal(segment.length)
            start = end
        padded = torch.arange(start, width)
        mask[index, padded, padded] = True
    return mask[:, None]


def _causal(size: int) -> torch.Tensor:
    return torch.ones((size, size), dtype=torch.bool).tril()


def _joined(row: PackedRecord) -> Encoded:
    """The row as one sequence: ids one after the other, media tensors in sequence order (the
    order in which the model assigns them to placeholder tokens)."""
    parts = [row.prefix, *row.segments]
    ids = [token for part in parts for token in part.input_ids]
    media: dict[str, torch.Tensor] = {}
    for key in dict.fromkeys(key for part in parts for key in part.media):
        present = [part.media[key] for part in parts if key in part.media]
        if key in _TOKEN_ALIGNED:  # one entry per token; zero (text) where a part has none
            media[key] = torch.cat(
                [
                    part.media.get(key, torch.zeros(part.length, dtype=present[0].dtype))
                    for part in parts
                ]
            )
        elif key in _AUDIO_FRAMES:
            frames = max(t.shape[-1] for t in present)
            media[key] = torch.cat(
                [torch.nn.functional.pad(t, (0, frames - t.shape[-1])) for t in present]
            )
        else:
            media[key] = torch.cat(present)
    return Encoded(ids, media)


def _positions(positions: PositionIds, row: PackedRecord, width: int) -> torch.Tensor:
    """The row's position ids, (width,) or (3, width); padded slots get 0 (they are masked)."""
    parts = []
    if row.prefix.length:
        parts.append(positions.of_sequence(row.prefix))
    for segment, full in zip(row.segments, row.full, strict=True):
        parts.append(positions.for_continuation(row.prefix, full, segment.length))
    joined = torch.cat(parts, dim=-1)
    pad = width - joined.shape[-1]
    return torch.nn.functional.pad(joined, (0, pad))
