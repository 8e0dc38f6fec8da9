"""From a record and one of its responses to the tokens a reward model reads.

The layout, the same for every backbone, built with the model's own chat template:

- **system**: the criterion (the record's ``criteria``, a ``--criteria`` override, or a default
  asking for overall quality);
- earlier turns of ``messages``, when the record has a history;
- **user**: the prompt's parts in order — text, images, video frames, audio, mesh renders;
- **assistant**: the response's parts in order (a response can itself be an image, a video, an
  audio clip or a mesh, which the model then sees in the assistant turn).

The reward is read at the last token of the assistant turn. Over-long sequences follow an explicit
policy: ``prompt_left`` drops tokens from the start of the prompt text (never from a response)
and counts it; ``error`` reports the record instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from omnirm.errors import RecordError
from omnirm.records import Content, Record, as_parts

DEFAULT_CRITERIA = "Judge the response by its overall quality: helpful, correct, clear, and safe."
Truncation = Literal["prompt_left", "error"]
ELLIPSIS = "…"


@dataclass
class InputSettings:
    """How records become model inputs; saved in every checkpoint so scoring matches training."""

    max_length: int = 1024
    truncation: Truncation = "prompt_left"
    default_criteria: str = DEFAULT_CRITERIA
    video_frames: int = 4
    audio_sample_rate: int = 16000
    mesh_views: int = 4
    mesh_size: int = 256


@dataclass
class Encoded:
    """One (record, response) sequence: token ids, media tensors, and what truncation did."""

    input_ids: list[int]
    media: dict[str, torch.Tensor] = field(default_factory=dict)
    truncated_tokens: int = 0

    @property
    def length(self) -> int:
        return len(self.input_ids)


class TextInputBuilder:
    """Builds inputs for text-only backbones with the tokenizer's chat template."""

    def __init__(self, tokenizer: Any, settings: InputSettings) -> None:
        self.tokenizer = tokenizer
        self.settings = settings
        self.truncated_records = 0

    def messages(
        self, record: Record, index: int, criteria: str | None = None
    ) -> list[dict[str, Any]]:
        """The chat messages for ``record``'s response ``index`` (text content)."""
        system = criteria or record.criteria or self.settings.default_criteria
        out: list[dict[str, Any]] = [{"role": "system", "content": system}]
        history = list(record.messages or [])
        if record.prompt is None and history and history[-1]["role"] == "user":
            prompt: Content = history.pop()["content"]
        else:
            prompt = record.prompt if record.prompt is not None else ""
        for turn in history:
            if turn["role"] == "system":
                continue  # the criterion is the system message
            out.append({"role": turn["role"], "content": _text_only(turn["content"], record.id)})
        out.append({"role": "user", "content": _text_only(prompt, record.id)})
        out.append(
            {"role": "assistant", "content": _text_only(record.responses[index], record.id, index)}
        )
        return out

    def _render(self, messages: list[dict[str, Any]]) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)

    def encode(self, record: Record, index: int, *, criteria: str | None = None) -> Encoded:
        """Tokens for one response of one record, truncated by the configured policy."""
        messages = self.messages(record, index, criteria)
        ids = self._render(messages)
        limit = self.settings.max_length
        if len(ids) <= limit:
            return Encoded(ids)
        if self.settings.truncation == "error":
            raise RecordError(
                f"response {index} needs {len(ids)} tokens, over --max-length {limit}",
                record_id=record.id,
                field=f"responses[{index}]",
            )
        prompt = messages[-2]["content"]
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        excess = len(ids) - limit
        for _ in range(3):  # re-tokenising at the cut can shift a token or two
            keep = len(prompt_ids) - excess - 1
            if keep <= 0:
                raise RecordError(
                    f"response {index} needs {len(ids)} tokens; even without its prompt it is over "
                    f"--max-length {limit} (responses are never truncated)",
                    record_id=record.id,
                    field=f"responses[{index}]",
                )
            messages[-2]["content"] = ELLIPSIS + self.tokenizer.decode(prompt_ids[-keep:])
            truncated = self._render(messages)
            if len(truncated) <= limit:
                return Encoded(truncated, truncated_tokens=len(ids) - len(truncated))
            excess += len(truncated) - limit
        raise RecordError(
            f"could not truncate the prompt to fit --max-length {limit}",
            record_id=record.id,
            field="prompt",
        )

    def collate(self, items: Sequence[Encoded]) -> dict[str, torch.Tensor]:
        """Right-padded ``input_ids`` and ``attention_mask`` for a batch."""
        return pad_batch([item.input_ids for item in items], self.pad_token_id)

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id or 0)


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad token lists into ``input_ids`` and ``attention_mask`` tensors."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def _text_only(content: Content, record_id: str, index: int | None = None) -> str:
    parts = as_parts(content)
    media = [p["type"] for p in parts if p["type"] != "text"]
    if media:
        where = "prompt" if index is None else f"responses[{index}]"
        raise RecordError(
            f"this model reads text only, but the record has {', '.join(sorted(set(media)))}: "
            "use a vision-language or omni backbone",
            record_id=record_id,
            field=where,
        )
    return "\n".join(p.get("text", "") for p in parts)
