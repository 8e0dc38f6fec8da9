"""The omnirm record: one preference example, typed, validated, and round-trippable.

A record is one JSON object per line (see ``docs/format.md``)::

    {"id": "ti2t-0007", "task": "text_image_to_text",
     "prompt": [{"type": "text", "text": "What is odd here?"}, {"type": "image", "path": "cat.png"}],
     "criteria": "Name the object, in one sentence.",
     "responses": ["A cat wearing a hat.", [{"type": "text", "text": "A hat on a cat."}]],
     "preference": 0}

:func:`parse_record` checks a decoded JSON object and returns a :class:`Record`; every problem
raises a :class:`~omnirm.errors.RecordError` naming the field. Known fields keep the exact JSON
shape they came in (a string prompt stays a string), and unknown keys are kept in
:attr:`Record.extra`, so ``parse_record(obj).to_dict() == obj`` for every valid ``obj``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict, Union

from typing_extensions import Required

from omnirm.errors import RecordError
from omnirm.jsonl import MAX_RECORD_BYTES, InvalidJson, display_name, iter_json_lines_at

MEDIA_TYPES: tuple[str, ...] = ("image", "video", "audio", "mesh")
PART_TYPES: tuple[str, ...] = ("text", *MEDIA_TYPES)
ROLES: tuple[str, ...] = ("system", "user", "assistant")
TIE = "tie"

#: The nine task types of Omni-RewardBench, in the benchmark's order.
TASKS: tuple[str, ...] = (
    "text_to_text",
    "text_image_to_text",
    "text_video_to_text",
    "text_audio_to_text",
    "text_to_image",
    "text_to_video",
    "text_to_audio",
    "text_to_3d",
    "text_image_to_image",
)

#: The tasks whose name says what the responses are, and that medium: it decides a record's
#: modality even where the responses are plain strings (captions or paths of the clips).
TASK_OUTPUTS: dict[str, str] = {
    "text_to_image": "image",
    "text_to_video": "video",
    "text_to_audio": "audio",
    "text_to_3d": "mesh",
    "text_image_to_image": "image",
}

#: Field names the record format defines; everything else passes through in ``extra``.
KNOWN_FIELDS: tuple[str, ...] = (
    "id",
    "task",
    "prompt",
    "messages",
    "criteria",
    "responses",
    "preference",
    "ranking",
    "gold_scores",
)


class ContentPart(TypedDict, total=False):
    """One part of a prompt or response: ``{"type": "text", "text": …}`` or a media reference
    ``{"type": "image"|"video"|"audio"|"mesh", "path": …}`` (or ``"url"``). Extra keys pass
    through."""

    type: Required[str]
    text: str
    path: str
    url: str


#: A prompt or a response: plain text, or a list of content parts.
Content = Union[str, list[ContentPart]]  # noqa: UP007  (a runtime alias, kept readable)


class Message(TypedDict):
    """One turn of a multi-turn ``messages`` history."""

    role: str
    content: Content


Preference = Union[int, Literal["tie"], None]  # noqa: UP007


@dataclass(slots=True)
class Record:
    """A validated preference record. Build it with :func:`parse_record` or directly."""

    id: str
    responses: list[Content]
    prompt: Content | None = None
    messages: list[Message] | None = None
    criteria: str | None = None
    task: str | None = None
    preference: Preference = None
    ranking: list[int] | None = None
    gold_scores: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict: known fields first (absent ones left out), then the
        unknown keys in their original order."""
        out: dict[str, Any] = {"id": self.id}
        if self.task is not None:
            out["task"] = self.task
        if self.prompt is not None:
            out["prompt"] = self.prompt
        if self.messages is not None:
            out["messages"] = self.messages
        if self.criteria is not None:
            out["criteria"] = self.criteria
        out["responses"] = self.responses
        if self.preference is not None:
            out["preference"] = self.preference
        if self.ranking is not None:
            out["ranking"] = self.ranking
        if self.gold_scores is not None:
            out["gold_scores"] = self.gold_scores
        out.update(self.extra)
        return out

    @property
    def num_responses(self) -> int:
        return len(self.responses)

    @property
    def is_tie(self) -> bool:
        return self.preference == TIE

    @property
    def has_label(self) -> bool:
        """True when the record carries a gold label of any kind."""
        return (
            self.preference is not None or self.ranking is not None or self.gold_scores is not None
        )

    def split_prompt(self) -> tuple[list[tuple[int, Message]], Content | None, str]:
        """Which turn is the prompt, the one rule every model input and judge follows:
        ``prompt`` when given, else the last turn of ``messages`` when it is a user turn (a
        history that ends otherwise has no prompt turn: None). Returns the turns before it
        (each with its index in ``messages``), the prompt and the prompt's field path."""
        history = list(enumerate(self.messages or []))
        if self.prompt is None and history and history[-1][1]["role"] == "user":
            position, last = history.pop()
            return history, last["content"], f"messages[{position}].content"
        return history, self.prompt, "prompt"

    def prompt_parts(self) -> list[ContentPart]:
        """The prompt (see :meth:`split_prompt`) as content parts, ``[]`` when there is none; a
        plain string becomes one text part."""
        _, prompt, _ = self.split_prompt()
        return as_parts(prompt) if prompt is not None else []

    def prompt_modalities(self) -> set[str]:
        """Modalities present in the prompt (or in any turn of ``messages``)."""
        contents: list[Content] = [self.prompt] if self.prompt is not None else []
        contents += [m["content"] for m in self.messages or []]
        return {p["type"] for c in contents for p in as_parts(c)}

    def response_modalities(self) -> set[str]:
        return {p["type"] for r in self.responses for p in as_parts(r)}

    @property
    def modality(self) -> str:
        """The media the record involves, as every report names them: ``text`` (none), else
        the media kinds of prompt, messages and responses joined, e.g. ``image``,
        ``audio+video``, ``3d`` (meshes). A task in :data:`TASK_OUTPUTS` names the responses'."""
        output = TASK_OUTPUTS.get(self.task or "")
        responses = {output} if output is not None else self.response_modalities()
        media = (self.prompt_modalities() | responses) - {"text"}
        return "+".join(sorted("3d" if kind == "mesh" else kind for kind in media)) or "text"

    def media_parts(self) -> Iterator[tuple[str, ContentPart]]:
        """Yield ``(field_path, part)`` for every media part, e.g. ``("responses[1][0]", part)``."""
        if isinstance(self.prompt, list):
            for i, part in enumerate(self.prompt):
                if part["type"] != "text":
                    yield f"prompt[{i}]", part
        for m, message in enumerate(self.messages or []):
            content = message["content"]
            if isinstance(content, list):
                for i, part in enumerate(content):
                    if part["type"] != "text":
                        yield f"messages[{m}].content[{i}]", part
        for r, response in enumerate(self.responses):
            if isinstance(response, list):
                for i, part in enumerate(response):
                    if part["type"] != "text":
                        yield f"responses[{r}][{i}]", part

    @property
    def resolved_task(self) -> str:
        """``task`` when given, else the task type derived from the content."""
        return self.task if self.task is not None else infer_task(self)


def as_parts(content: Content) -> list[ContentPart]:
    """A content value as a list of parts (a string becomes one text part)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content


def content_text(content: Content) -> str:
    """The text of a content value: its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content if p["type"] == "text")


def infer_task(record: Record) -> str:
    """Derive the Omni-RewardBench task type from what the prompt and responses contain.

    Responses decide the output side (mesh → 3d, image → image, video, audio; else text); the
    prompt's media decide the input side. Combinations outside the nine tasks are named the same
    way, e.g. ``text_audio_to_image``.
    """
    response_media = record.response_modalities() - {"text"}
    prompt_media = record.prompt_modalities() - {"text"}
    if "mesh" in response_media:
        output = "3d"
    elif response_media:
        output = "_".join(sorted(response_media))
    else:
        output = "text"
    inputs = "_".join(["text", *sorted(prompt_media)])
    return f"{inputs}_to_{output}"


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _fail(field_path: str, message: str) -> RecordError:
    return RecordError(message, field=field_path)


def _check_content(value: Any, where: str, *, allow_empty_text: bool = True) -> Content:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _fail(where, f"expected a string or a list of content parts, got {_type_name(value)}")
    if not value:
        raise _fail(where, "empty list of content parts")
    for index, part in enumerate(value):
        _check_part(part, f"{where}[{index}]")
    return value


def _check_part(part: Any, where: str) -> None:
    if not isinstance(part, dict):
        raise _fail(where, f"expected a content part object, got {_type_name(part)}")
    kind = part.get("type")
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise _fail(f"{where}.text", f"expected a string, got {_type_name(part.get('text'))}")
        return
    if kind in MEDIA_TYPES:
        path, url = part.get("path"), part.get("url")
        if path is None and url is None:
            raise _fail(where, f"a {kind} part needs a 'path' (or a 'url')")
        if path is not None and (not isinstance(path, str) or not path):
            raise _fail(f"{where}.path", f"expected a non-empty string, got {_type_name(path)}")
        if url is not None and (not isinstance(url, str) or not url):
            raise _fail(f"{where}.url", f"expected a non-empty string, got {_type_name(url)}")
        return
    if kind is None:
        raise _fail(where, "content part has no 'type'")
    raise _fail(f"{where}.type", f"unknown part type {kind!r}; expected one of {list(PART_TYPES)}")


def _check_messages(value: Any) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise _fail("messages", f"expected a non-empty list of messages, got {_type_name(value)}")
    for index, message in enumerate(value):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _fail(where, f"expected a message object, got {_type_name(message)}")
        if message.get("role") not in ROLES:
            raise _fail(
                f"{where}.role", f"expected one of {list(ROLES)}, got {message.get('role')!r}"
            )
        if "content" not in message:
            raise _fail(where, "message has no 'content'")
        _check_content(message["content"], f"{where}.content")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite(value: float) -> bool:
    """Finite and within a float's range (a Python int may not be)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_labels(
    n: int, preference: Any, ranking: Any, gold_scores: Any
) -> tuple[Preference, list[int] | None, list[float] | None]:
    if preference is not None:
        if preference == TIE:
            if n != 2:
                raise _fail(
                    "preference",
                    f"'tie' needs exactly 2 responses, the record has {n}; "
                    "use 'ranking' or 'gold_scores' for more",
                )
        elif isinstance(preference, int) and not isinstance(preference, bool):
            if not 0 <= preference < n:
                raise _fail(
                    "preference",
                    f"index {preference} is out of range for {n} responses (0..{n - 1})",
                )
        else:
            raise _fail(
                "preference",
                f"expected a response index (0..{n - 1}) or 'tie', got {preference!r}",
            )
    if ranking is not None:
        if not isinstance(ranking, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ranking
        ):
            raise _fail("ranking", "expected a list of response indices, best first")
        if sorted(ranking) != list(range(n)):
            raise _fail("ranking", f"must list each of the {n} response indices exactly once")
        if isinstance(preference, int) and preference != TIE and ranking[0] != preference:
            raise _fail(
                "ranking", f"ranks response {ranking[0]} first but preference is {preference}"
            )
    if gold_scores is not None:
        if not isinstance(gold_scores, list) or not all(_is_number(s) for s in gold_scores):
            raise _fail("gold_scores", "expected a list of numbers, one per response")
        if len(gold_scores) != n:
            raise _fail("gold_scores", f"has {len(gold_scores)} scores for {n} responses")
        if not all(_is_finite(s) for s in gold_scores):
            raise _fail("gold_scores", "scores must be finite")
        best = max(gold_scores)
        if preference == TIE and len(set(gold_scores)) != 1:
            raise _fail("gold_scores", "preference is 'tie' but the gold scores differ")
        if isinstance(preference, int) and gold_scores[preference] != best:
            raise _fail(
                "gold_scores",
                f"preference is {preference} but response {gold_scores.index(best)} "
                "has the highest gold score",
            )
        if ranking is not None and any(
            gold_scores[a] < gold_scores[b] for a, b in itertools.pairwise(ranking)
        ):
            raise _fail("gold_scores", "the ranking does not follow the gold scores")
    return preference, ranking, gold_scores


def parse_record(obj: Any, *, min_responses: int = 2) -> Record:
    """Validate a decoded JSON object and return it as a :class:`Record`.

    Raises :class:`RecordError` with ``record_id`` and ``field`` set; the caller adds file and
    line (see :func:`iter_records`). ``min_responses`` 1 admits the one-candidate records that
    ``bon --group-by`` gathers into full ones.
    """
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {_type_name(obj)}")
    record_id = obj.get("id")
    if not isinstance(record_id, str) or not record_id:
        raise RecordError(
            f"expected a non-empty string, got {_type_name(record_id)}"
            + (f" {record_id!r}" if record_id is not None else ""),
            field="id",
        )
    try:
        return _parse_fields(obj, record_id, min_responses)
    except RecordError as error:
        error.record_id = record_id
        raise


def _parse_fields(obj: dict[str, Any], record_id: str, min_responses: int) -> Record:
    prompt = obj.get("prompt")
    messages = obj.get("messages")
    if prompt is None and messages is None:
        raise _fail("prompt", "missing: a record needs 'prompt' (or 'messages')")
    if prompt is not None:
        prompt = _check_content(prompt, "prompt")
    if messages is not None:
        messages = _check_messages(messages)

    responses = obj.get("responses")
    if not isinstance(responses, list):
        raise _fail(
            "responses",
            "missing" if responses is None else f"expected a list, got {_type_name(responses)}",
        )
    if len(responses) < min_responses:
        wanted = f"{min_responses} response" + ("s" if min_responses != 1 else "")
        raise _fail("responses", f"needs at least {wanted}, got {len(responses)}")
    for index, response in enumerate(responses):
        _check_content(response, f"responses[{index}]")

    criteria = obj.get("criteria")
    if criteria is not None and not isinstance(criteria, str):
        raise _fail("criteria", f"expected a string, got {_type_name(criteria)}")
    task = obj.get("task")
    if task is not None and (not isinstance(task, str) or not task):
        raise _fail("task", f"expected a non-empty string, got {_type_name(task)}")

    preference, ranking, gold_scores = _check_labels(
        len(responses), obj.get("preference"), obj.get("ranking"), obj.get("gold_scores")
    )
    extra = {k: v for k, v in obj.items() if k not in _KNOWN}
    return Record(
        id=record_id,
        responses=responses,
        prompt=prompt,
        messages=messages,
        criteria=criteria,
        task=task,
        preference=preference,
        ranking=ranking,
        gold_scores=gold_scores,
        extra=extra,
    )


_KNOWN = frozenset(KNOWN_FIELDS)


@dataclass(slots=True)
class InvalidRecord:
    """A line that could not be read as a record: the error, and the raw JSON value if any."""

    line: int
    error: RecordError
    value: Any = None

    def to_error_record(self) -> dict[str, Any]:
        """The ``--on-error record`` form: the original object (when it was an object) with an
        ``error`` key added, so nothing of the input is lost: another JSON value comes as
        ``value``, the text of a line that is not JSON as ``raw``."""
        base = dict(self.value) if isinstance(self.value, dict) else {"id": None}
        if not isinstance(self.value, dict) and self.value is not None:
            base["value"] = self.value
        if isinstance(self.error, InvalidJson):
            base["raw"] = self.error.raw
        base["error"] = self.error.to_dict()
        return base


def iter_records(
    source: str | Path,
    *,
    name: str | None = None,
    max_bytes: int | None = MAX_RECORD_BYTES,
    min_responses: int = 2,
) -> Iterator[tuple[int, Record | InvalidRecord]]:
    """Read records from a JSONL file (or ``-``) lazily, in order, as ``(line, item)``.

    Bad lines — not JSON, not a valid record (see :func:`parse_record` for
    ``min_responses``), or longer than ``max_bytes`` (refused unread) — come out as
    :class:`InvalidRecord` with a fully located error instead of stopping the stream: the
    caller applies its ``--on-error`` policy.
    """
    for line, _, item in iter_records_at(
        source, name=name, max_bytes=max_bytes, min_responses=min_responses
    ):
        yield line, item


def iter_records_at(
    source: str | Path,
    *,
    name: str | None = None,
    max_bytes: int | None = MAX_RECORD_BYTES,
    min_responses: int = 2,
) -> Iterator[tuple[int, int, Record | InvalidRecord]]:
    """:func:`iter_records` with each line's byte offset: ``(line, offset, item)``."""
    shown = name or display_name(source)
    for line, offset, value in iter_json_lines_at(source, name=shown, max_bytes=max_bytes):
        if isinstance(value, RecordError):
            yield line, offset, InvalidRecord(line, value)
            continue
        try:
            yield line, offset, parse_record(value, min_responses=min_responses)
        except RecordError as error:
            yield line, offset, InvalidRecord(line, error.located(source=shown, line=line), value)


def read_records(source: str | Path) -> Iterator[Record]:
    """Read records, raising the first :class:`RecordError` met (the strict form).

    >>> [record.id for record in read_records("pairs.jsonl")]  # doctest: +SKIP
    ['p1', 'p2']
    """
    for _, item in iter_records(source):
        if isinstance(item, InvalidRecord):
            raise item.error
        yield item
