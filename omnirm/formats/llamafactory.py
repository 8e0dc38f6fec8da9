"""LLaMA-Factory's sharegpt *ranking* data ⇄ omnirm records.

A row (in a JSON array file or JSONL)::

    {"conversations": [{"from": "system", "value": "Prefer concise answers."},
                       {"from": "human", "value": "<image>What is odd here?"}],
     "chosen": {"from": "gpt", "value": "A cat in a hat."},
     "rejected": {"from": "gpt", "value": "Nothing."},
     "images": ["media/cat.png"]}

- Turns use ``from``/``value`` with ``human``/``gpt``/``system`` (or ``role``/``content`` with
  ``user``/``assistant``/``system``), under ``conversations`` (or ``messages``). A leading
  system turn, else a top-level ``system`` key, is the criterion. One human turn becomes
  ``prompt``; a longer history becomes ``messages``; ``chosen``/``rejected`` (objects or
  strings) are the final replies.
- ``images``/``videos``/``audios`` are matched in order to the ``<image>``/``<video>``/
  ``<audio>`` placeholders, and the text is split into content parts there. Media with no
  placeholder at all go in front of the first user turn.
- **The generation layout** (Omni-RewardData's text-to-image/video/audio and editing sets): when
  ``chosen`` and ``rejected`` hold the same text (a caption) and one media list holds the two
  candidates, the candidates are the responses: the first is the chosen one, the second the
  rejected one (``flip_generation`` swaps them). Earlier media of that list are the prompt's
  (the source image of an edit), either once (``[source, a, b]``) or repeated per candidate
  (``[source, a, source, b]``, as OmniReward-Factory splits them). Placeholders beyond the
  sources are dropped; the caption becomes the prompt when the user turn has no text of its
  own, and is kept as ``caption`` when it differs from it.
- Ids: the row's ``id`` if any, else ``STEM-LINE`` (LINE is the position in a JSON array).
  Other keys pass through.
- Responses are ``[chosen, rejected]`` with ``preference: 0`` — faithful to the file, but the
  label then always sits at position 0. ``shuffle_seed`` swaps about half of the records,
  chosen by a hash of (seed, id), so training and benchmarks cannot learn the position.

:func:`write_llamafactory` writes the same layout back (text pairs as chosen/rejected replies,
media responses in the generation layout with one candidate placeholder after the sources), so
converting, exporting and converting again gives the same records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnirm.errors import RecordError
from omnirm.formats._common import (
    Item,
    chosen_and_rejected,
    convert_rows,
    extra_keys,
    file_stem,
    is_text,
    iter_rows,
    ordered_pair,
)
from omnirm.jsonl import display_name
from omnirm.records import Content, ContentPart, Message, Record, as_parts, content_text

MEDIA_KINDS: tuple[str, ...] = ("image", "video", "audio")
PLACEHOLDERS: dict[str, str] = {kind: f"<{kind}>" for kind in MEDIA_KINDS}
LIST_KEYS: dict[str, str] = {kind: f"{kind}s" for kind in MEDIA_KINDS}

_KIND_OF_PLACEHOLDER = {placeholder: kind for kind, placeholder in PLACEHOLDERS.items()}
_PLACEHOLDER_SPLIT = re.compile("(" + "|".join(PLACEHOLDERS.values()) + ")")
_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}
_TAGS = {"user": "human", "assistant": "gpt", "system": "system"}


def read_llamafactory(
    source: Path, *, shuffle_seed: int | None = None, flip_generation: bool = False
) -> Iterator[Item]:
    """Read LLaMA-Factory sharegpt ranking rows (JSON array, JSONL, or ``-`` for JSONL).

    ``shuffle_seed``: swap chosen and rejected in about half of the records (deterministic per
    id); default keeps chosen first. ``flip_generation``: in the generation layout, take the
    second candidate medium as the chosen one.
    """
    rows = iter_rows(source)  # a missing file is reported now, not on the first row
    return convert_rows(
        rows,
        lambda row, record_id: _record(row, record_id, shuffle_seed, flip_generation),
        shown=display_name(source),
        stem=file_stem(source),
    )


@dataclass(frozen=True)
class _Generation:
    """The generation layout: which media list holds the candidates, its prompt media, and the
    two candidates in file order."""

    kind: str
    sources: list[str]
    candidates: tuple[str, str]


def _record(
    row: dict[str, Any], record_id: str, seed: int | None, flip_generation: bool
) -> dict[str, Any]:
    turns_key = "conversations" if "conversations" in row else "messages"
    turns = _turns(row.get(turns_key), turns_key)
    consumed = {"id", turns_key, "chosen", "rejected", *LIST_KEYS.values()}
    criteria: str | None = None
    if turns[0][0] == "system":
        criteria = turns.pop(0)[1]
    elif isinstance(row.get("system"), str):
        criteria = row["system"]
        consumed.add("system")
    _check_order([role for role, _ in turns], turns_key)

    chosen_text = _reply(row.get("chosen"), "chosen")
    rejected_text = _reply(row.get("rejected"), "rejected")
    media = {kind: _paths(row.get(LIST_KEYS[kind]), LIST_KEYS[kind]) for kind in MEDIA_KINDS}
    generation = _generation_layout(chosen_text, rejected_text, media)
    if generation is not None:
        media[generation.kind] = generation.sources
    history = _place_media(turns, media, generation.kind if generation else None, turns_key)

    extra = extra_keys(row, consumed)
    chosen: Content = chosen_text
    rejected: Content = rejected_text
    if generation is not None:
        first, second = generation.candidates
        if flip_generation:
            first, second = second, first
        chosen = [{"type": generation.kind, "path": first}]
        rejected = [{"type": generation.kind, "path": second}]
        if _place_caption(history[-1], chosen_text):
            extra["caption"] = chosen_text
    if chosen == rejected:
        raise RecordError("chosen and rejected are identical", field="chosen")

    responses, preference = ordered_pair(record_id, chosen, rejected, seed)
    record: dict[str, Any] = {"id": record_id}
    if len(history) == 1:
        record["prompt"] = history[0]["content"]
    else:
        record["messages"] = history
    if criteria is not None and criteria.strip():
        record["criteria"] = criteria
    record.update(responses=responses, preference=preference)
    record.update(extra)
    return record


def _place_caption(turn: Message, caption: str) -> bool:
    """Use the generation layout's caption as the text of the user turn when it has none of its
    own; True when the caption says something else and must be kept aside."""
    content = turn["content"]
    own_text = content_text(content).strip()
    if not own_text:
        text_part: ContentPart = {"type": "text", "text": caption}
        turn["content"] = [text_part, *as_parts(content)] if content else caption
        return False
    return bool(caption.strip()) and own_text != caption.strip()


def _turns(value: Any, key: str) -> list[tuple[str, str]]:
    if not isinstance(value, list) or not value:
        raise RecordError("expected a non-empty list of turns", field=key)
    turns: list[tuple[str, str]] = []
    for index, turn in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(turn, dict):
            raise RecordError(f"expected a turn object, got {type(turn).__name__}", field=where)
        speaker = turn.get("from", turn.get("role"))
        text = turn.get("value", turn.get("content"))
        role = _ROLES.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            raise RecordError(
                f"unsupported speaker {speaker!r}: expected human/gpt/system "
                "(or user/assistant/system)",
                field=where,
            )
        if not isinstance(text, str):
            raise RecordError(f"expected text, got {type(text).__name__}", field=where)
        turns.append((role, text))
    return turns


def _check_order(roles: list[str], key: str) -> None:
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(roles))]
    if roles != expected or len(roles) % 2 == 0:
        raise RecordError(
            "expected turns alternating human, gpt, …, ending with a human turn (after an "
            f"optional leading system turn), got {', '.join(_TAGS[r] for r in roles) or 'none'}",
            field=key,
        )


def _reply(value: Any, field: str) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        speaker = value.get("from", value.get("role"))
        if speaker is not None and (
            not isinstance(speaker, str) or _ROLES.get(speaker) != "assistant"
        ):
            raise RecordError(f"expected an assistant reply, got speaker {speaker!r}", field=field)
        text = value.get("value", value.get("content"))
        if isinstance(text, str):
            return text
    raise RecordError(
        "missing" if value is None else "expected a reply object (from/value) or a string",
        field=field,
    )


def _paths(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(f"expected a list of paths, got {type(value).__name__}", field=key)
    paths: list[str] = []
    for index, item in enumerate(value):
        path = item.get("path") if isinstance(item, dict) else item
        if not isinstance(path, str) or not path:
            raise RecordError("expected a path (string)", field=f"{key}[{index}]")
        paths.append(path)
    return paths


def _generation_layout(
    chosen: str, rejected: str, media: dict[str, list[str]]
) -> _Generation | None:
    """Recognise the generation layout (see the module docs); None for an ordinary pair."""
    if chosen != rejected:
        return None
    kinds = [kind for kind in MEDIA_KINDS if len(media[kind]) >= 2]
    if not kinds:
        return None
    if len(kinds) > 1:
        raise RecordError(
            "chosen and rejected hold the same text (the generation layout), but "
            f"{' and '.join(LIST_KEYS[k] for k in kinds)} all hold several media: "
            "cannot tell which two are the candidates",
            field=LIST_KEYS[kinds[0]],
        )
    kind = kinds[0]
    paths = media[kind]
    half = len(paths) // 2
    if len(paths) >= 4 and len(paths) % 2 == 0 and paths[: half - 1] == paths[half:-1]:
        return _Generation(kind, paths[: half - 1], (paths[half - 1], paths[-1]))
    return _Generation(kind, paths[:-2], (paths[-2], paths[-1]))


def _place_media(
    turns: list[tuple[str, str]],
    media: dict[str, list[str]],
    generation_kind: str | None,
    key: str,
) -> list[Message]:
    """Turn the texts into contents, putting each medium where its placeholder is."""
    for kind in MEDIA_KINDS:
        placeholder, count = PLACEHOLDERS[kind], len(media[kind])
        found = sum(text.count(placeholder) for _, text in turns)
        if kind == generation_kind:
            if not count <= found <= count + 2 and found:
                raise RecordError(
                    f"{found} {placeholder} placeholder(s) for {count} prompt {kind}(s) and "
                    "two candidates",
                    field=key,
                )
        elif found not in (0, count):
            raise RecordError(
                f"{found} {placeholder} placeholder(s) but {count} {LIST_KEYS[kind]}", field=key
            )
    queues = {kind: list(paths) for kind, paths in media.items()}
    history: list[Message] = [
        {"role": role, "content": _split(text, queues)} for role, text in turns
    ]
    unplaced: list[ContentPart] = [
        {"type": kind, "path": path} for kind in MEDIA_KINDS for path in queues[kind]
    ]
    if unplaced:
        first = history[0]["content"]
        history[0]["content"] = [*unplaced, *(as_parts(first) if first else [])]
    return history


def _split(text: str, queues: dict[str, list[str]]) -> Content:
    """A turn's text as content: unchanged without placeholders, else parts split at them
    (stripped text segments; a placeholder with no medium left is dropped)."""
    if not _PLACEHOLDER_SPLIT.search(text):
        return text
    parts: list[ContentPart] = []
    for piece in _PLACEHOLDER_SPLIT.split(text):
        kind = _KIND_OF_PLACEHOLDER.get(piece)
        if kind is None:
            if piece.strip():
                parts.append({"type": "text", "text": piece.strip()})
        elif queues[kind]:
            parts.append({"type": kind, "path": queues[kind].pop(0)})
    if all(part["type"] == "text" for part in parts):
        return "\n".join(part["text"] for part in parts)
    return parts


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def write_llamafactory(records: Iterable[Record]) -> Iterator[Item]:
    """Export labelled pairs as LLaMA-Factory sharegpt ranking rows; a record that cannot be
    one (a tie, no label, not two responses, meshes, mixed responses) yields a
    :class:`RecordError` saying why."""
    for record in records:
        try:
            yield _row(record)
        except RecordError as error:
            error.record_id = record.id
            yield error


def _row(record: Record) -> dict[str, Any]:
    chosen, rejected = chosen_and_rejected(record)
    history: list[Message] = list(record.messages or [])
    if record.prompt is not None:
        history.append({"role": "user", "content": record.prompt})
    criteria = record.criteria
    if history and history[0]["role"] == "system":
        if criteria is not None:
            raise RecordError(
                "has both criteria and a system message; LLaMA-Factory rows hold one system turn",
                field="messages[0]",
            )
        criteria = content_text(history[0]["content"])
        history = history[1:]
    _check_order([m["role"] for m in history], "messages")

    media: dict[str, list[str]] = {kind: [] for kind in MEDIA_KINDS}
    conversations: list[dict[str, str]] = []
    if criteria is not None:
        conversations.append({"from": "system", "value": criteria})
    for index, message in enumerate(history):
        value = _render(message["content"], media, f"messages[{index}].content")
        conversations.append({"from": _TAGS[message["role"]], "value": value})

    row: dict[str, Any] = {"id": record.id, "conversations": conversations}
    generation = False
    if is_text(chosen) and is_text(rejected):
        row["chosen"] = {"from": "gpt", "value": content_text(chosen)}
        row["rejected"] = {"from": "gpt", "value": content_text(rejected)}
    else:
        generation = True
        kind, chosen_path, rejected_path = _candidates(chosen, rejected)
        sources = media[kind]
        media[kind] = [*sources, chosen_path, *sources, rejected_path]
        conversations[-1]["value"] += PLACEHOLDERS[kind]
        caption = record.extra.get("caption")
        if not isinstance(caption, str):
            caption = content_text(history[-1]["content"])
        row["chosen"] = {"from": "gpt", "value": caption}
        row["rejected"] = {"from": "gpt", "value": caption}
    for kind in MEDIA_KINDS:
        if media[kind]:
            row[LIST_KEYS[kind]] = media[kind]
    if record.task is not None:
        row["task"] = record.task
    for key, value in record.extra.items():
        if key not in row and not (generation and key == "caption"):
            row[key] = value
    return row


def _render(content: Content, media: dict[str, list[str]], field: str) -> str:
    """A content as LLaMA-Factory text: media become placeholders, their paths are appended to
    ``media``; adjacent text parts are joined by a newline."""
    if isinstance(content, str):
        return content
    pieces: list[str] = []
    previous_text = False
    for index, part in enumerate(content):
        kind = part["type"]
        if kind == "text":
            if previous_text:
                pieces.append("\n")
            pieces.append(part["text"])
            previous_text = True
            continue
        if kind not in PLACEHOLDERS:
            raise RecordError(f"LLaMA-Factory has no {kind} inputs", field=f"{field}[{index}]")
        media[kind].append(_reference(part))
        pieces.append(PLACEHOLDERS[kind])
        previous_text = False
    return "".join(pieces)


def _reference(part: ContentPart) -> str:
    return part.get("path") or part.get("url") or ""


def _candidates(chosen: Content, rejected: Content) -> tuple[str, str, str]:
    """``(kind, chosen_path, rejected_path)`` for two single-medium responses of one kind."""
    kinds: list[str | None] = []
    for content in (chosen, rejected):
        parts = as_parts(content)
        if len(parts) != 1 or parts[0]["type"] not in PLACEHOLDERS:
            kinds.append(None)
        else:
            kinds.append(parts[0]["type"])
    kind = kinds[0]
    if kind is None or kind != kinds[1]:
        raise RecordError(
            "responses must both be text, or both one image, video or audio of the same kind "
            "(LLaMA-Factory's generation layout)",
            field="responses",
        )
    return kind, _reference(as_parts(chosen)[0]), _reference(as_parts(rejected)[0])


__all__ = ["LIST_KEYS", "MEDIA_KINDS", "PLACEHOLDERS", "read_llamafactory", "write_llamafactory"]
