"""A reward model: a backbone that yields hidden states, and a head read at the last real token.

Two heads:

- **native** — for text models whose family has a ``…ForSequenceClassification`` class in
  transformers (Qwen2, Qwen3, Llama, …): the model is loaded as that class and its ``score``
  layer is the head, so a merged checkpoint loads in plain transformers (and vLLM).
- **value** — for every other backbone (vision-language and omni models): a
  :class:`~omnirm.models.head.ValueHead` (dropout + linear) on the last layer's hidden state.

Either way the head reads the hidden state at the last token the attention mask marks as real
(:func:`~omnirm.models.head.gather_last`), never by ``pad_token_id``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from omnirm.models.head import full_precision, gather_last
from omnirm.models.prefix import additive_mask, continuation_hidden, prefix_cache


class RewardModel(nn.Module):
    """``backbone(**inputs).last_hidden_state`` → head at the last real token → one reward each.

    ``backbone`` is the module that returns hidden states (for a native model, its base
    ``model``); ``head`` maps (batch, hidden) to (batch,) fp32 rewards.
    """

    backbone: Any  # a transformers model, or a peft model wrapping one
    head: nn.Module

    def __init__(self, backbone: nn.Module, head: nn.Module, *, native: Any = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        # The full ``…ForSequenceClassification`` model when the head is native (kept out of the
        # module tree: its parameters are the backbone's and the head's).
        self._native = [native] if native is not None else []

    @property
    def native_model(self) -> Any:
        return self._native[0] if self._native else None

    def forward(
        self, read_at: torch.Tensor | None = None, chunks: torch.Tensor | None = None, **inputs: Any
    ) -> torch.Tensor:
        """Rewards of a right-padded batch, one per row (read at its last real token), or —
        for packed rows (:mod:`omnirm.train.packing`: a 4D boolean ``attention_mask``) — one
        per ``read_at`` entry (row, position). Packed text rows with ``chunks`` (first row, end
        row, width) run group by group, each cut to its width (less padding, one forward call
        for data-parallel wrappers)."""
        if read_at is not None and chunks is not None:
            parts = [
                (
                    ((read_at[:, 0] >= start) & (read_at[:, 0] < end)).nonzero().squeeze(1),
                    _rows(inputs, start, end, width),
                    start,
                )
                for start, end, width in chunks.tolist()
            ]
            order = torch.cat([which for which, _, _ in parts])
            rewards = torch.cat(
                [
                    self._packed_rewards(part, read_at[which] - read_at.new_tensor([start, 0]))
                    for which, part, start in parts
                ]
            )
            return rewards[torch.argsort(order)]
        if read_at is not None:
            return self._packed_rewards(inputs, read_at)
        outputs = self.backbone(**inputs, use_cache=False, return_dict=True)
        return self.head(gather_last(_last_hidden_state(outputs), inputs["attention_mask"]))

    def _packed_rewards(self, inputs: dict[str, Any], read_at: torch.Tensor) -> torch.Tensor:
        attention_mask = inputs["attention_mask"]
        if attention_mask.dtype == torch.bool and self._eager():
            dtype = self.backbone.get_input_embeddings().weight.dtype
            inputs = {**inputs, "attention_mask": additive_mask(attention_mask, dtype)}
        outputs = self.backbone(**inputs, use_cache=False, return_dict=True)
        hidden = _last_hidden_state(outputs)
        return self.head(hidden[read_at[:, 0], read_at[:, 1]])

    def _eager(self) -> bool:
        """Whether the backbone's attention adds the mask to its scores (eager), rather than
        reading a boolean one (sdpa)."""
        config = self.backbone.config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        return getattr(text, "_attn_implementation", None) == "eager"

    def prefix_cache(self, **inputs: Any) -> Any:
        """The KV cache of a batch of shared prefixes (see :mod:`omnirm.models.prefix`)."""
        return prefix_cache(self.backbone, inputs)

    def continuation_rewards(
        self,
        cache: Any,
        inputs: dict[str, torch.Tensor],
        prefix_mask: torch.Tensor,
        position_ids: torch.Tensor,
    ) -> torch.Tensor:
        """Rewards of continuations run after cached prefixes (one cache row each): the head
        reads each continuation's last real token."""
        hidden = continuation_hidden(self.backbone, cache, inputs, prefix_mask, position_ids)
        return self.head(gather_last(hidden, inputs["attention_mask"]))


class NativeScore(nn.Module):
    """The ``score`` layer of a ``…ForSequenceClassification`` model used as a head: fp32 out."""

    def __init__(self, score: nn.Linear) -> None:
        super().__init__()
        self.score = score

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        with full_precision(hidden):
            return self.score(hidden.to(self.score.weight.dtype)).squeeze(-1).float()


def _rows(inputs: dict[str, Any], start: int, end: int, width: int) -> dict[str, Any]:
    """Rows ``start:end`` of packed text inputs, cut to their first ``width`` positions."""
    cut: dict[str, Any] = {
        "input_ids": inputs["input_ids"][start:end, :width],
        "attention_mask": inputs["attention_mask"][start:end, :, :width, :width],
        "position_ids": inputs["position_ids"][..., start:end, :width],
    }
    if inputs.keys() != cut.keys():
        raise ValueError(f"only text rows run in chunks, got inputs {sorted(inputs)}")
    return cut


def _last_hidden_state(outputs: Any) -> torch.Tensor:
    hidden = getattr(outputs, "last_hidden_state", None)
    if hidden is None:  # models that only return the per-layer tuple
        hidden = outputs.hidden_states[-1]
    return hidden
