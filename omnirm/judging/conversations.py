"""From a record to the conversations a judge reads: the template filled with the record's
criterion, prompt and responses, media decoded the way the judge shows them.

Media reach the judge as decoded parts (see :mod:`omnirm.models.backends.base`):

- images as RGB images; a 3D mesh as one image of ``mesh_views`` rendered views;
- videos as frames sampled uniformly: ``prompt_video_frames`` (10) for a video in the prompt,
  ``response_video_frames`` (5) for each video response, as in Omni-RewardBench;
- audio as mono float32 at ``audio_sample_rate`` (16 kHz).

A record whose media the judge's model cannot read is refused with an error naming the field.
Earlier turns of a conversation (``messages``) appear in the prompt block as a transcript.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omnirm.errors import MediaError, RecordError
from omnirm.media.decoded import DecodedMedia
from omnirm.media.paths import MediaResolver
from omnirm.models.backends.base import Conversation
from omnirm.prompts.templates import DEFAULT_CRITERIA, Template, render
from omnirm.records import Content, Record, as_parts


@dataclass(frozen=True)
class JudgeMedia:
    """How media are shown to the judge (see the module docs)."""

    prompt_video_frames: int = 10
    response_video_frames: int = 5
    audio_sample_rate: int = 16000
    mesh_views: int = 4
    mesh_size: int = 256


class ConversationBuilder:
    """Builds judge conversations for records (pairwise or pointwise, by the template)."""

    def __init__(
        self,
        template: Template,
        resolver: MediaResolver,
        modalities: frozenset[str],
        *,
        ties: bool = False,
        media: JudgeMedia | None = None,
        default_criteria: str = DEFAULT_CRITERIA,
        answer_format: str = "marks",
    ) -> None:
        self.template = template
        self.resolver = resolver
        self.modalities = modalities
        self.ties = ties
        self.media = media or JudgeMedia()
        self.default_criteria = default_criteria
        self.answer_format = answer_format  # "marks" ([[A]]) or "json" (Omni-RRM's object)
        self._decoded = DecodedMedia(capacity=32)

    def pairwise(
        self, record: Record, first: int, second: int, criteria: str | None = None
    ) -> Conversation:
        """Response ``first`` shown as A and ``second`` as B."""
        slots = {
            "prompt": self._prompt(record),
            "response_a": self._content(record.responses[first], f"responses[{first}]", False),
            "response_b": self._content(record.responses[second], f"responses[{second}]", False),
        }
        return self._conversation(record, slots, criteria)

    def pointwise(self, record: Record, index: int, criteria: str | None = None) -> Conversation:
        slots = {
            "prompt": self._prompt(record),
            "response": self._content(record.responses[index], f"responses[{index}]", False),
        }
        return self._conversation(record, slots, criteria)

    def prompt_content(self, record: Record) -> list[dict[str, Any]]:
        """The record's prompt as decoded parts (earlier turns as a transcript), as the judge
        shows it; other prompts (the data pipelines') place it too."""
        return self._prompt(record)

    def response_content(self, record: Record, index: int) -> list[dict[str, Any]]:
        """Response ``index`` as decoded parts."""
        return self._content(record.responses[index], f"responses[{index}]", False)

    def _conversation(
        self, record: Record, slots: dict[str, list[dict[str, Any]]], criteria: str | None
    ) -> Conversation:
        system, user = render(
            self.template,
            task=record.resolved_task,
            criteria=criteria or record.criteria or self.default_criteria,
            ties=self.ties,
            slots=slots,
            answer_format=self.answer_format,
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _prompt(self, record: Record) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        history, prompt, where = record.split_prompt()
        for position, turn in history:
            if turn["role"] == "system":
                continue
            parts.append({"type": "text", "text": f"({turn['role']}) "})
            parts += self._content(turn["content"], f"messages[{position}].content", True)
            parts.append({"type": "text", "text": "\n"})
        if history:
            parts.append({"type": "text", "text": "(user) "})
        return parts + self._content(prompt if prompt is not None else "", where, True)

    def _content(self, content: Content, where: str, in_prompt: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for position, part in enumerate(as_parts(content)):
            if part["type"] == "text":
                out.append({"type": "text", "text": part.get("text", "")})
            else:
                out += self._medium(part, f"{where}[{position}]", in_prompt)
        return out

    def _medium(self, part: Any, where: str, in_prompt: bool) -> list[dict[str, Any]]:
        kind = part["type"]
        shown = "image" if kind == "mesh" else kind
        if shown not in self.modalities:
            reads = ", ".join(["text", *sorted(self.modalities)])
            raise RecordError(f"the judge model cannot read {kind}; it reads {reads}", field=where)
        media, limits = self.media, self.resolver.limits
        try:
            path = self.resolver.resolve(part)
            if kind == "image":
                return [{"type": "image", "image": self._decoded.image(path, limits)}]
            if kind == "video":
                frames = media.prompt_video_frames if in_prompt else media.response_video_frames
                clip = self._decoded.video(path, frames, limits)
                return [{"type": "video", "frames": clip.frames, "fps": clip.fps}]
            if kind == "audio":
                audio = self._decoded.audio(path, media.audio_sample_rate, limits)
                return [{"type": "audio", "audio": audio, "sampling_rate": media.audio_sample_rate}]
            views = self._decoded.mesh(path, media.mesh_views, media.mesh_size, limits)
            return [
                {"type": "text", "text": f"(a 3D object, {media.mesh_views} rendered views) "},
                {"type": "image", "image": views},
            ]
        except MediaError as error:
            error.field = where
            error.path = part.get("path") or part.get("url")
            raise
