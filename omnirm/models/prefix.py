"""Scoring several responses after one shared prefix: the prefix's KV cache computed once.

Every response of a record is read after the same criterion, history and prompt (with its
media). :func:`prefix_cache` runs a right-padded batch of prefixes once and keeps their keys and
values; :func:`continuation_hidden` then runs the responses' continuations on
:func:`select_rows` of that cache, one row per continuation. Two details make it exact:

- the attention mask spans prefix and continuation, so the padding after a short prefix stays
  masked (a hole in the middle of the row);
- positions are passed explicitly: text models continue at the prefix's real length; Qwen's 3D
  (mrope) positions are computed on the whole sequence with the model's ``get_rope_index`` and
  sliced (media shift the text positions after them, so the prefix's length is not enough).

See ``docs/dev/hf-facts.md`` ("KV-cache prefix reuse") for the transformers behaviour this
relies on.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from omnirm.models.inputs import Encoded
from omnirm.records import Record


@dataclass
class SharedPrefix:
    """One record's responses as a shared prefix and a continuation per response."""

    prefix: Encoded
    continuations: list[Encoded]
    full: list[Encoded | None]  # whole sequences, kept where a continuation has media


def encode_shared_prefix(
    builder: Any,
    record: Record,
    *,
    criteria: str | None = None,
    responses: Sequence[int] | None = None,
) -> SharedPrefix | None:
    """The record's prompt encoded once and a continuation for each of ``responses`` (default:
    all), or None when a whole sequence would need truncating (its prompt is then cut per
    response, so the responses no longer share it)."""
    limit = builder.settings.max_length
    prefix, quick = builder.encode_shared(record, criteria=criteria)
    wanted = range(len(quick)) if responses is None else responses
    continuations: list[Encoded] = []
    whole: list[Encoded | None] = []
    for index in wanted:
        continuation, full = quick[index], None
        if continuation is None:  # media in the response: encode it whole and split
            full = builder.encode(record, index, criteria=criteria)
            continuation = None if full.truncated_tokens else builder.continuation(full, prefix)
        if continuation is None or prefix.length + continuation.length > limit:
            return None
        continuations.append(continuation)
        whole.append(full)
    return SharedPrefix(prefix, continuations, whole)


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean attention mask as the additive float mask eager attention adds to scores."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
        ~mask, torch.finfo(dtype).min
    )


def base_model(module: Any) -> Any:
    """The transformers model under a peft wrapper (or the module itself)."""
    getter = getattr(module, "get_base_model", None)
    return getter() if callable(getter) else module


def select_rows(cache: Any, rows: torch.Tensor) -> Any:
    """A new cache holding ``rows`` of ``cache`` (repeats allowed); ``cache`` is left as it is
    (a forward pass grows the cache it is given in place)."""
    selected = copy.copy(cache)
    selected.layers = []
    for layer in cache.layers:
        new = copy.copy(layer)
        if getattr(layer, "is_initialized", True) and layer.keys is not None:
            new.keys = layer.keys.index_select(0, rows)
            new.values = layer.values.index_select(0, rows)
        selected.layers.append(new)
    return selected


class PositionIds:
    """Position ids for continuations, as the backbone expects them."""

    def __init__(self, backbone: Any) -> None:
        base = base_model(backbone)
        self._rope_index = getattr(base, "get_rope_index", None)
        self._parameters = (
            set(inspect.signature(self._rope_index).parameters) if self._rope_index else set()
        )
        self._next: dict[int, int] = {}  # next text position after a prefix, by id(prefix)

    def of_sequence(self, sequence: Encoded) -> torch.Tensor:
        """Positions of a whole unpadded sequence: (length,), or (3, length) for mrope."""
        if self._rope_index is None:
            return torch.arange(sequence.length)
        return self._mrope(sequence)

    def for_continuation(self, prefix: Encoded, full: Encoded | None, width: int) -> torch.Tensor:
        """Positions of a continuation of ``prefix``, padded to ``width``: shape (width,), or
        (3, width) for mrope backbones. ``full`` is the whole sequence where the continuation
        has media (3D positions are then computed on it); a text continuation simply counts on
        from the prefix. Padded slots continue the count (they are masked anyway)."""
        start = prefix.length
        if self._rope_index is None:
            return torch.arange(start, start + width)
        if full is None:
            # Text after media: all three rows count on from the largest position so far.
            key = id(prefix)
            if key not in self._next:
                self._next[key] = int(self._mrope(prefix).max()) + 1
            return (self._next[key] + torch.arange(width)).expand(3, width)
        positions = self._mrope(full)[:, start:]
        length = positions.shape[1]
        tail = positions[:, -1:] + torch.arange(1, width - length + 1)
        return torch.cat([positions, tail], dim=1)

    def _mrope(self, full: Encoded) -> torch.Tensor:
        """(3, length) positions of one unpadded sequence."""
        media = full.media
        ids = torch.tensor([full.input_ids])
        mask = torch.ones_like(ids)
        rope_index: Any = self._rope_index
        if "audio_seqlens" in self._parameters:  # Qwen2.5-Omni thinker
            audio = media.get("feature_attention_mask")
            positions = rope_index(
                ids,
                image_grid_thw=media.get("image_grid_thw"),
                video_grid_thw=media.get("video_grid_thw"),
                attention_mask=mask,
                use_audio_in_video=False,
                audio_seqlens=audio.sum(-1) if audio is not None else None,
                second_per_grids=media.get("video_second_per_grid"),
            )[0]
        else:  # Qwen2-VL / Qwen2.5-VL and the families that share their signature
            options = {
                "image_grid_thw": media.get("image_grid_thw"),
                "video_grid_thw": media.get("video_grid_thw"),
                "second_per_grid_ts": media.get("second_per_grid_ts"),
                "attention_mask": mask,
            }
            if "mm_token_type_ids" in self._parameters:
                token_types = media.get("mm_token_type_ids")
                options["mm_token_type_ids"] = (
                    token_types[None] if token_types is not None else torch.zeros_like(ids)
                )
            positions = rope_index(
                ids, **{k: v for k, v in options.items() if k in self._parameters}
            )[0]
        return positions[:, 0].cpu()


def prefix_cache(backbone: Any, inputs: dict[str, torch.Tensor]) -> Any:
    """Run a batch of prefixes and return their KV cache."""
    return backbone(**inputs, use_cache=True, return_dict=True).past_key_values


def continuation_hidden(
    backbone: Any,
    cache: Any,
    inputs: dict[str, torch.Tensor],
    prefix_mask: torch.Tensor,
    position_ids: torch.Tensor,
) -> torch.Tensor:
    """Last hidden states of continuations run on ``cache`` (rows already selected):
    ``inputs`` holds the continuations' right-padded ids, mask and media."""
    continuation = dict(inputs)
    continuation["attention_mask"] = torch.cat([prefix_mask, inputs["attention_mask"]], dim=1)
    outputs = backbone(
        **continuation,
        past_key_values=cache,
        position_ids=position_ids,
        use_cache=True,
        return_dict=True,
    )
    hidden = getattr(outputs, "last_hidden_state", None)
    return hidden if hidden is not None else outputs.hidden_states[-1]
