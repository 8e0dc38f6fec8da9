"""From a record and one of its responses to the tokens (and media tensors) a reward model reads.

The layout, the same for every backbone, built with the model's own chat template:

- **system**: the criterion (the record's ``criteria``, a ``--criteria`` override, or a default
  asking for overall quality), as plain text;
- earlier turns of ``messages``, when the record has a history (their ``system`` turns are
  dropped: the criterion is the system message);
- **user**: the prompt's parts in order — text, images, video frames, audio, mesh renders;
- **assistant**: the response's parts in order (a response can itself be an image, a video, an
  audio clip or a mesh, which the model then sees in the assistant turn).

With ``criteria_position="end"`` (a training choice, saved with the model) the criterion is also
repeated in a last **user** turn after the response, so that the token the reward is read at
sits right after it: small models learn to follow criteria much faster that way.

The reward is read at the last token of the sequence (the assistant turn, or the repeated
criterion). Over-long sequences follow an explicit
policy: ``prompt_left`` drops tokens from the start of the prompt's *text* (never media tokens,
never a response), marks the cut with "…" and counts it; ``error`` reports the record instead.

Two builders share this layout and policy:

- :class:`TextInputBuilder` renders with the tokenizer's chat template; contents are strings (the
  text parts of a content joined by newlines) and media are refused with a clear error.
- :class:`MultimodalInputBuilder` renders with the processor's chat template (Qwen2.5-VL,
  Qwen2.5-Omni, …); contents are lists of parts and the processor expands each medium into its
  placeholder tokens and tensors. Media are read with :mod:`omnirm.media` through a
  :class:`~omnirm.media.MediaResolver`:

  - image → RGB image; mesh → ``mesh_views`` views of ``mesh_size`` pixels tiled into one image;
  - video → ``video_frames`` frames sampled uniformly; the time between grids the model's
    positions use is set from the sampled frame rate (frames / duration), not the processor's
    assumed one;
  - audio → mono float32 at the feature extractor's rate (16 kHz for Qwen2.5-Omni), resampled
    here because the processor does not resample arrays.

  Decoded media are kept in a small LRU cache keyed by resolved path, file stamp and settings,
  so a file that recurs across records is decoded once. Audio features are kept only for their
  real frames (the processor pads every clip to its chunk length; the audio encoder reads only
  the frames the mask marks) and padded again per batch in :meth:`~MultimodalInputBuilder.collate`.

Batches are right-padded; media tensors are concatenated in the order of the sequences, which is
the order in which the model assigns them to placeholder tokens. Qwen's 3D (mrope) positions are
computed by the model from the attention mask in a full forward, so right padding gives every
row the positions it has alone.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from omnirm.errors import MediaError, RecordError
from omnirm.media.decoded import Clip, DecodedMedia
from omnirm.media.paths import MediaResolver
from omnirm.options import default_media_root
from omnirm.records import Content, ContentPart, Record, as_parts

DEFAULT_CRITERIA = "Judge the response by its overall quality: helpful, correct, clear, and safe."
Truncation = Literal["prompt_left", "error"]
ELLIPSIS = "…"


@dataclass
class InputSettings:
    """How records become model inputs; saved in every checkpoint so scoring matches training."""

    max_length: int = 1024
    truncation: Truncation = "prompt_left"
    default_criteria: str = DEFAULT_CRITERIA
    criteria_position: str = "system"  # "system", or "end": also after the response
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


class TooLongError(RecordError):
    """A sequence does not fit ``--max-length`` even after the truncation policy."""


@dataclass
class _Turn:
    """A chat message while it is built: role, rendered content, and where it came from."""

    role: str
    content: Any
    field: str


class InputBuilder(ABC):
    """The layout and the over-length policy both builders share (see the module docs).

    Subclasses say how a record's content becomes message content (:meth:`_content`), how
    messages become an :class:`Encoded` (:meth:`_render`), and how prompt text is cut
    (:meth:`_cut_prompt`).
    """

    #: Records that :class:`~omnirm.scoring.Scorer` encodes and sorts together.
    score_window = 256

    def __init__(self, tokenizer: Any, settings: InputSettings) -> None:
        self.tokenizer = tokenizer
        self.settings = settings

    def encode(self, record: Record, index: int, *, criteria: str | None = None) -> Encoded:
        """Inputs for one response of one record, truncated by the configured policy.

        Raises :class:`RecordError` (a :class:`MediaError` for media) naming the record and field.
        """
        try:
            return self._encode(record, index, criteria)
        except RecordError as error:
            error.located(record_id=record.id)
            raise

    def _encode(self, record: Record, index: int, criteria: str | None) -> Encoded:
        turns = self._turns(record, index, criteria)
        encoded = self._render(turns)
        limit = self.settings.max_length
        if encoded.length <= limit:
            return encoded
        where = f"responses[{index}]"
        if self.settings.truncation == "error":
            raise self._over_long(turns, record) or TooLongError(
                f"response {index} needs {encoded.length} tokens, over --max-length {limit} "
                "(raise --max-length to fit it)",
                record_id=record.id,
                field=where,
            )
        prompt = turns[-2 - len(self._tail(record, criteria))]
        original = prompt.content
        excess = encoded.length - limit
        for _ in range(3):  # re-tokenising at the cut can shift a token or two
            cut = self._cut_prompt(original, excess)
            if cut is None:
                raise self._over_long(
                    [t for t in turns if t is not prompt], record
                ) or TooLongError(
                    f"response {index} needs {encoded.length} tokens; even without its prompt "
                    f"text it is over --max-length {limit} (responses and media are never "
                    "truncated; raise --max-length to fit it)",
                    record_id=record.id,
                    field=where,
                )
            prompt.content = cut
            truncated = self._render(turns)
            if truncated.length <= limit:
                truncated.truncated_tokens = encoded.length - truncated.length
                return truncated
            excess += truncated.length - limit
        raise TooLongError(
            f"could not truncate the prompt to fit --max-length {limit} (raise --max-length)",
            record_id=record.id,
            field=prompt.field,
        )

    def _over_long(self, turns: list[_Turn], record: Record) -> TooLongError | None:
        """The error naming the criterion, prompt or earlier turn among ``turns`` (the response
        excluded) whose text alone is over ``--max-length`` — so that a huge criterion is not
        reported as an over-long response — or None when none is."""
        limit = self.settings.max_length
        for turn in turns:
            if turn.role == "assistant" and turn.field.startswith("responses["):
                continue
            tokens = sum(len(self._text_ids(text)) for text in _texts(turn.content))
            if tokens > limit:
                what = {"criteria": "the criterion", "prompt": "the prompt"}.get(
                    turn.field, f"the {turn.role} turn"
                )
                return TooLongError(
                    f"{what} alone has {tokens} tokens, over --max-length {limit}",
                    record_id=record.id,
                    field=turn.field,
                )
        return None

    def encode_prompt(self, record: Record, *, criteria: str | None = None) -> Encoded:
        """What every response's sequence of ``record`` begins with: criterion, history, prompt
        (with its media) and the opening of the assistant turn (the template's generation
        prompt). Not truncated: sequences that needed truncation are not shared."""
        return self.encode_shared(record, criteria=criteria)[0]

    def encode_shared(
        self, record: Record, *, criteria: str | None = None
    ) -> tuple[Encoded, list[Encoded | None]]:
        """The record's prompt (:meth:`encode_prompt`) rendered once, and for each text response
        the tokens that follow it, found from the chat template's text without rendering the
        prompt's media again. A response gets None where that does not apply — it has media,
        or its first token would merge with the template's text before it — and is then encoded
        whole and split with :meth:`continuation`."""
        try:
            turns = self._prompt_turns(record, criteria)
            prefix = self._render(turns, generation_prompt=True)
            head = self._template_text(turns, generation_prompt=True)
            head_ids = self._text_ids(head)
            continuations: list[Encoded | None] = []
            for index, response in enumerate(record.responses):
                if any(part["type"] != "text" for part in as_parts(response)):
                    continuations.append(None)
                    continue
                where = f"responses[{index}]"
                reply = _Turn("assistant", self._content(response, where), where)
                whole = self._template_text(
                    [*turns, reply, *self._tail(record, criteria)], generation_prompt=False
                )
                rest = self._text_ids(whole[len(head) :]) if whole.startswith(head) else None
                if rest is None or self._text_ids(whole) != head_ids + rest:
                    continuations.append(None)
                else:
                    continuations.append(Encoded(rest))
        except RecordError as error:
            error.located(record_id=record.id)
            raise
        return prefix, continuations

    def _text_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def continuation(self, full: Encoded, prefix: Encoded) -> Encoded | None:
        """The part of ``full`` after ``prefix`` (tokens and media), or None when ``full`` does
        not begin with ``prefix`` or has nothing after it."""
        start = prefix.length
        if full.length <= start or full.input_ids[:start] != prefix.input_ids:
            return None
        media = {}
        for key, value in full.media.items():
            if key in _TOKEN_ALIGNED:
                media[key] = value[start:]
                continue
            # Media tensors list items (patches, clips, grids) in sequence order: the prefix's
            # own come first.
            shared = prefix.media[key].shape[0] if key in prefix.media else 0
            if value.shape[0] > shared:
                media[key] = value[shared:]
        return Encoded(full.input_ids[start:], media)

    def collate(self, items: Sequence[Encoded]) -> dict[str, torch.Tensor]:
        """Right-padded ``input_ids`` and ``attention_mask`` for a batch."""
        return pad_batch([item.input_ids for item in items], self.pad_token_id)

    def save(self, directory: str | Path) -> None:
        """Save the tokenizer (or processor) with its chat template."""
        self.tokenizer.save_pretrained(directory)

    def with_resolver(self, resolver: MediaResolver) -> InputBuilder:
        """This builder reading media through ``resolver`` (text builders read none)."""
        return self

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id or 0)

    # -- the layout ---------------------------------------------------------------------------

    def _turns(self, record: Record, index: int, criteria: str | None) -> list[_Turn]:
        turns = self._prompt_turns(record, criteria)
        where = f"responses[{index}]"
        turns.append(_Turn("assistant", self._content(record.responses[index], where), where))
        return turns + self._tail(record, criteria)

    def _criterion(self, record: Record, criteria: str | None) -> str:
        return criteria or record.criteria or self.settings.default_criteria

    def _tail(self, record: Record, criteria: str | None) -> list[_Turn]:
        """What follows the response: the criterion again with ``criteria_position="end"``."""
        if self.settings.criteria_position != "end":
            return []
        text = self._criterion(record, criteria)
        return [_Turn("user", self._content(text, "criteria"), "criteria")]

    def _prompt_turns(self, record: Record, criteria: str | None) -> list[_Turn]:
        turns = [_Turn("system", self._criterion(record, criteria), "criteria")]
        history, prompt, prompt_field = record.split_prompt()
        for position, turn in history:
            if turn["role"] == "system":
                continue  # the criterion is the system message
            where = f"messages[{position}].content"
            turns.append(_Turn(turn["role"], self._content(turn["content"], where), where))
        prompt_content = prompt if prompt is not None else ""
        turns.append(_Turn("user", self._content(prompt_content, prompt_field), prompt_field))
        return turns

    # -- what subclasses provide ------------------------------------------------------------

    @abstractmethod
    def _content(self, content: Content, where: str) -> Any:
        """A record's content as message content; media decoded (or refused)."""

    @abstractmethod
    def _render(self, turns: list[_Turn], *, generation_prompt: bool = False) -> Encoded:
        """The chat template applied to the messages: ids and media tensors (with the opening of
        an assistant turn after them when ``generation_prompt``)."""

    @abstractmethod
    def _template_text(self, turns: list[_Turn], *, generation_prompt: bool) -> str:
        """The chat template's text for the messages (media as unexpanded placeholders)."""

    @abstractmethod
    def _cut_prompt(self, content: Any, drop: int) -> Any | None:
        """Prompt content without its first ``drop`` text tokens; None when there are fewer."""

    # -- shared helpers -----------------------------------------------------------------------

    def _cut_text_parts(
        self, parts: list[dict[str, Any]], drop: int
    ) -> list[dict[str, Any]] | None:
        """``parts`` with their first ``drop`` text tokens removed (text parts in order; other
        parts untouched) and "…" where the kept text begins; None when the text is too short."""
        parts = copy.copy(parts)
        remaining = drop + 1  # one more for the ellipsis that marks the cut
        last = None
        for position, part in enumerate(parts):
            if part.get("type") != "text":
                continue
            ids = self.tokenizer(part["text"], add_special_tokens=False)["input_ids"]
            cut = min(remaining, len(ids))
            parts[position] = {**part, "text": self.tokenizer.decode(ids[cut:])}
            remaining -= cut
            last = position
            if remaining == 0:
                break
        if remaining > 0 or last is None:
            return None
        parts[last] = {**parts[last], "text": ELLIPSIS + parts[last]["text"]}
        return [p for i, p in enumerate(parts) if i == last or p.get("type") != "text" or p["text"]]


class TextInputBuilder(InputBuilder):
    """Builds inputs for text-only backbones with the tokenizer's chat template."""

    def _content(self, content: Content, where: str) -> str:
        parts = as_parts(content)
        media = sorted({p["type"] for p in parts if p["type"] != "text"})
        if media:
            raise RecordError(
                f"this model reads text only, but the record has {', '.join(media)}: "
                "use a vision-language or omni backbone",
                field=where,
            )
        return "\n".join(p.get("text", "") for p in parts)

    def _render(self, turns: list[_Turn], *, generation_prompt: bool = False) -> Encoded:
        messages = [{"role": t.role, "content": t.content} for t in turns]
        ids = self.tokenizer.apply_chat_template(
            messages, tokenize=True, return_dict=False, add_generation_prompt=generation_prompt
        )
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return Encoded(list(ids))

    def _template_text(self, turns: list[_Turn], *, generation_prompt: bool) -> str:
        messages = [{"role": t.role, "content": t.content} for t in turns]
        return str(
            self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation_prompt
            )
        )

    def _cut_prompt(self, content: str, drop: int) -> str | None:
        parts = self._cut_text_parts([{"type": "text", "text": content}], drop)
        return None if parts is None else parts[0]["text"]


# Processor outputs with one entry per token (padded like input_ids), audio features with one
# column per frame (padded to the batch's longest clip), and the per-video time between grids.
_TOKEN_ALIGNED = ("mm_token_type_ids", "token_type_ids")
_AUDIO_FRAMES = ("input_features", "feature_attention_mask")
_SECONDS_PER_GRID = ("second_per_grid_ts", "video_second_per_grid")


class MultimodalInputBuilder(InputBuilder):
    """Builds inputs for vision-language and omni backbones with the processor's chat template
    (see the module docs for the layout and how media are read)."""

    # Media tensors are large (a 1024x1024 image is ~25 MB of patches): score in small windows.
    score_window = 16
    cache_size = 64

    def __init__(
        self, processor: Any, settings: InputSettings, resolver: MediaResolver | None = None
    ) -> None:
        super().__init__(processor.tokenizer, settings)
        self.processor = processor
        self.resolver = (
            resolver if resolver is not None else MediaResolver(default_media_root(None))
        )
        self.modalities = processor_modalities(processor)
        if "audio" in self.modalities:  # arrays reach the processor unresampled: match its rate
            settings.audio_sample_rate = int(processor.feature_extractor.sampling_rate)
        self._media = DecodedMedia(self.cache_size)

    def with_resolver(self, resolver: MediaResolver) -> MultimodalInputBuilder:
        """A builder that reads media through ``resolver`` (the decoded-media cache is shared)."""
        clone = copy.copy(self)
        clone.resolver = resolver
        return clone

    def save(self, directory: str | Path) -> None:
        self.processor.save_pretrained(directory)

    def collate(self, items: Sequence[Encoded]) -> dict[str, torch.Tensor]:
        """Right-padded ids and mask, per-token tensors padded alike, audio features padded to
        the longest clip, other media tensors concatenated in the order of the sequences."""
        batch = super().collate(items)
        width = batch["input_ids"].shape[1]
        for key in dict.fromkeys(key for item in items for key in item.media):
            present = [item.media[key] for item in items if key in item.media]
            if key in _TOKEN_ALIGNED:
                padded = torch.zeros((len(items), width), dtype=present[0].dtype)
                for row, item in enumerate(items):
                    if key in item.media:
                        padded[row, : item.length] = item.media[key]
                batch[key] = padded
            elif key in _AUDIO_FRAMES:
                frames = max(t.shape[-1] for t in present)
                batch[key] = torch.cat(
                    [torch.nn.functional.pad(t, (0, frames - t.shape[-1])) for t in present]
                )
            else:
                batch[key] = torch.cat(present)
        return batch

    # -- content --------------------------------------------------------------------------------

    def _content(self, content: Content, where: str) -> list[dict[str, Any]]:
        if isinstance(content, str):
            return [{"type": "text", "text": content}]
        return [
            {"type": "text", "text": part["text"]}
            if part["type"] == "text"
            else self._medium(part, f"{where}[{position}]")
            for position, part in enumerate(content)
        ]

    def _medium(self, part: ContentPart, where: str) -> dict[str, Any]:
        """A media part decoded for the processor: images and mesh renders as images."""
        kind = part["type"]
        if kind not in self.modalities:
            reads = ", ".join(["text", *sorted(self.modalities)])
            raise RecordError(f"this model cannot read {kind}; it reads {reads}", field=where)
        try:
            path = self.resolver.resolve(part)
            value = self._decoded(kind, path)
        except MediaError as error:
            error.field = where
            error.path = part.get("path") or part.get("url")
            raise
        if kind == "mesh":
            return {"type": "image", "image": value}
        return {"type": kind, kind: value}

    def _decoded(self, kind: str, path: Path) -> Any:
        """The decoded file, from the run's cache when this file was read with these settings."""
        settings, limits = self.settings, self.resolver.limits
        if kind == "image":
            return self._media.image(path, limits)
        if kind == "video":
            return self._media.video(path, settings.video_frames, limits)
        if kind == "audio":
            return self._media.audio(path, settings.audio_sample_rate, limits)
        return self._media.mesh(path, settings.mesh_views, settings.mesh_size, limits)

    # -- rendering ----------------------------------------------------------------------------

    def _messages(self, turns: list[_Turn], rates: list[float]) -> list[dict[str, Any]]:
        """Messages as the processor takes them; each video's sampling rate goes to ``rates``."""
        messages = []
        for turn in turns:
            content = turn.content
            if isinstance(content, list):
                content = [_processor_part(part, rates) for part in content]
            messages.append({"role": turn.role, "content": content})
        return messages

    def _template_text(self, turns: list[_Turn], *, generation_prompt: bool) -> str:
        messages = self._messages(turns, [])
        return str(
            self.processor.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation_prompt
            )
        )

    def _render(self, turns: list[_Turn], *, generation_prompt: bool = False) -> Encoded:
        rates: list[float] = []
        messages = self._messages(turns, rates)
        try:
            out = self.processor.apply_chat_template(
                messages,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
                add_generation_prompt=generation_prompt,
            )
        except ValueError as error:  # e.g. an image more than 200 times wider than high
            raise RecordError(f"the processor cannot read this record's media: {error}") from None
        input_ids = out.pop("input_ids")[0].tolist()
        out.pop("attention_mask", None)
        media = {key: torch.as_tensor(value) for key, value in out.items()}
        for key in _TOKEN_ALIGNED:
            if key in media:
                media[key] = media[key][0]
        for key in _SECONDS_PER_GRID:
            if key in media:
                step = self.processor.video_processor.temporal_patch_size
                media[key] = torch.tensor([step / rate for rate in rates], dtype=torch.float32)
        if "feature_attention_mask" in media:
            frames = int(media["feature_attention_mask"].sum(-1).max())
            for key in _AUDIO_FRAMES:
                media[key] = media[key][..., :frames].contiguous()
        return Encoded(input_ids, media)

    def _cut_prompt(self, content: list[dict[str, Any]], drop: int) -> list[dict[str, Any]] | None:
        return self._cut_text_parts(content, drop)


def _texts(content: Any) -> list[str]:
    """The text of message content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return [content]
    return [part["text"] for part in content if part.get("type") == "text"]


def _processor_part(part: dict[str, Any], rates: list[float]) -> dict[str, Any]:
    """A part as the processor takes it; a video's sampling rate is noted in ``rates``."""
    clip = part.get("video")
    if isinstance(clip, Clip):
        rates.append(clip.fps)
        return {"type": "video", "video": clip.frames}
    return part


def processor_modalities(processor: Any) -> frozenset[str]:
    """What a processor reads besides text: meshes are read as rendered images."""
    found = set()
    if getattr(processor, "image_processor", None) is not None:
        found |= {"image", "mesh"}
    if getattr(processor, "video_processor", None) is not None:
        found.add("video")
    if getattr(processor, "feature_extractor", None) is not None:
        found.add("audio")
    return frozenset(found)


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad token lists into ``input_ids`` and ``attention_mask`` tensors."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}
