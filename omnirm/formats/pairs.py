"""Chosen/rejected pairs (JSONL) ⇄ omnirm records.

Three shapes are read, decided per row:

- **plain**: ``{"prompt": str, "chosen": str, "rejected": str}``. A prompt written as an
  HH-RLHF transcript (``"\\n\\nHuman: …\\n\\nAssistant:"``) is parsed into turns, and responses
  that repeat the prompt in front are cut after it.
- **HH-RLHF**: no prompt; ``chosen`` and ``rejected`` are whole transcripts
  (``"\\n\\nHuman: …\\n\\nAssistant: …"``). The prompt is their shared part up to the last
  common ``\\n\\nAssistant:``; what follows is each response. Transcripts that differ before
  their final assistant turn are an error.
- **TRL conversational**: ``chosen`` / ``rejected`` are message lists (``role`` / ``content``),
  with an optional ``prompt`` message list; without one, the prompt is their common prefix and
  each side must end in one assistant message after it. Image parts without a path take the
  row's ``images`` list in order.

A single-turn prompt becomes ``prompt``; a longer history becomes ``messages`` (with its roles).
``id`` is kept (else ``STEM-LINE``), ``criteria`` (or ``system``) becomes the criterion, and
every other key (``margin``, scores, sources …) passes through. Records get
``responses=[chosen, rejected]`` and ``preference=0`` unless ``shuffle_seed`` is given.

:func:`write_pairs` exports labelled pairs in TRL's form: plain strings for a single text turn,
message lists otherwise, with ``id``, ``criteria`` and the record's extra keys alongside. Prompt
images follow TRL's vision layout (``{"type": "image"}`` placeholders and an ``images`` list of
paths), which ``DPOTrainer`` on a vision-language model and this reader both accept; media of
other kinds, and media responses, keep their ``path`` inline (TRL's DPO has no place for them).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from omnirm.errors import RecordError
from omnirm.formats._common import (
    Item,
    chosen_and_rejected,
    convert_rows,
    extra_keys,
    file_stem,
    iter_rows,
    ordered_pair,
)
from omnirm.jsonl import display_name
from omnirm.records import ROLES, Content, Message, Record

#: Keys the reader interprets (plus ``system`` when it is the criterion); the writer does not
#: copy extra keys of these names, which would change the row's meaning.
_READ_KEYS = ("id", "prompt", "chosen", "rejected", "criteria", "images")
_WRITTEN_KEYS = (*_READ_KEYS, "system")

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"
_TURN = re.compile(r"\n\n(Human|Assistant):")
_SPEAKERS = {"Human": "user", "Assistant": "assistant"}


def read_pairs(source: Path, *, shuffle_seed: int | None = None) -> Iterator[Item]:
    """Read prompt/chosen/rejected rows (JSONL, a JSON array, or ``-``) as omnirm records.

    ``shuffle_seed``: put the rejected response first in about half of the records, chosen by a
    hash of (seed, id), so the label is not always 0. By default chosen stays first.
    """
    rows = iter_rows(source)  # a missing file is reported now, not on the first row
    return convert_rows(
        rows,
        lambda row, record_id: _pair_record(row, record_id, shuffle_seed),
        shown=display_name(source),
        stem=file_stem(source),
    )


def _pair_record(row: dict[str, Any], record_id: str, seed: int | None) -> dict[str, Any]:
    history, chosen, rejected = split_pair(row)
    if chosen == rejected:
        raise RecordError("chosen and rejected are identical", field="chosen")
    responses, preference = ordered_pair(record_id, chosen, rejected, seed)
    record: dict[str, Any] = {"id": record_id}
    if len(history) == 1 and history[0]["role"] == "user":
        record["prompt"] = history[0]["content"]
    else:
        record["messages"] = history
    criteria_key = "criteria" if row.get("criteria") is not None else "system"
    criteria = row.get(criteria_key)
    if criteria is not None:
        if not isinstance(criteria, str):
            raise RecordError(
                f"expected a string, got {type(criteria).__name__}", field=criteria_key
            )
        if criteria.strip():
            record["criteria"] = criteria
    record["responses"] = responses
    record["preference"] = preference
    record.update(extra_keys(row, {*_READ_KEYS, criteria_key}))
    return record


def split_pair(row: dict[str, Any]) -> tuple[list[Message], Content, Content]:
    """``(history, chosen, rejected)`` of a pairs row in any of the three shapes.

    ``history`` is the conversation up to the responses, ending with the user's turn.
    """
    prompt, chosen, rejected = row.get("prompt"), row.get("chosen"), row.get("rejected")
    for name, value in (("chosen", chosen), ("rejected", rejected)):
        if value is None:
            raise RecordError("missing", field=name)
    if isinstance(chosen, str) and isinstance(rejected, str):
        if prompt is None:
            return split_transcripts(chosen, rejected)
        if isinstance(prompt, str):
            return _plain(prompt, chosen, rejected)
        raise RecordError(
            f"expected a string next to string responses, got {type(prompt).__name__}",
            field="prompt",
        )
    if isinstance(chosen, list) and isinstance(rejected, list):
        return _conversational(prompt, chosen, rejected, row.get("images"))
    raise RecordError(
        "chosen and rejected must both be strings or both be message lists, got "
        f"{type(chosen).__name__} and {type(rejected).__name__}",
        field="chosen",
    )


# --------------------------------------------------------------------------------------------
# Text transcripts (HH-RLHF)
# --------------------------------------------------------------------------------------------


def _looks_like_transcript(text: str) -> bool:
    return text.startswith(("Human:", HUMAN))


def parse_transcript(text: str, field: str = "prompt") -> list[Message]:
    """Turns of an HH-RLHF transcript (``"\\n\\nHuman: …\\n\\nAssistant: …"``), roles mapped to
    user/assistant, text stripped. A final empty ``Assistant:`` (the cue to answer) is dropped."""
    if text.startswith("Human:"):
        text = "\n\n" + text
    pieces = _TURN.split(text)
    if pieces[0].strip():
        raise RecordError("the transcript does not start with a 'Human:' turn", field=field)
    turns: list[Message] = [
        {"role": _SPEAKERS[speaker], "content": body.strip()}
        for speaker, body in zip(pieces[1::2], pieces[2::2], strict=True)
    ]
    if turns and turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
        turns.pop()
    if not turns or turns[-1]["role"] != "user":
        raise RecordError("the transcript does not end with a 'Human:' turn", field=field)
    return turns


def split_transcripts(chosen: str, rejected: str) -> tuple[list[Message], str, str]:
    """Split two HH-RLHF transcripts into the shared history and the two final replies.

    The split is at the last ``\\n\\nAssistant:`` inside their common prefix. If what follows
    holds another ``Human:`` turn, the transcripts diverged before their final assistant turn,
    and no single prompt fits both: that is an error.
    """
    if not (_looks_like_transcript(chosen) and _looks_like_transcript(rejected)):
        raise RecordError(
            "no prompt field, and chosen/rejected are not HH-RLHF transcripts "
            "('\\n\\nHuman: …\\n\\nAssistant: …'): give a prompt",
            field="prompt",
        )
    if chosen.startswith("Human:"):
        chosen = "\n\n" + chosen
    if rejected.startswith("Human:"):
        rejected = "\n\n" + rejected
    common = os.path.commonprefix([chosen, rejected])  # noqa: RUF071  (strings, by character)
    cut = common.rfind(ASSISTANT)
    if cut < 0:
        raise RecordError(
            "chosen and rejected share no 'Assistant:' turn: they differ inside the first "
            "human turn, so there is no common prompt",
            field="rejected",
        )
    start = cut + len(ASSISTANT)
    replies = {"chosen": chosen[start:], "rejected": rejected[start:]}
    for name, reply in replies.items():
        if HUMAN in reply:
            turn = common[:cut].count(HUMAN)
            raise RecordError(
                "chosen and rejected diverge before their final assistant turn: after their "
                f"last common 'Assistant:' (turn {turn}) the {name} transcript goes on with "
                "another 'Human:' turn; expected transcripts that differ only in the last reply",
                field=name,
            )
    history = parse_transcript(chosen[:cut], "chosen")
    return history, replies["chosen"].strip(), replies["rejected"].strip()


def _plain(prompt: str, chosen: str, rejected: str) -> tuple[list[Message], str, str]:
    if not _looks_like_transcript(prompt):
        return [{"role": "user", "content": prompt}], chosen, rejected
    history = parse_transcript(prompt)
    return history, _reply_after(prompt, chosen), _reply_after(prompt, rejected)


def _reply_after(prompt: str, reply: str) -> str:
    """A reply without the prompt transcript repeated in front and without its speaker tag."""
    if reply.startswith(prompt):
        reply = reply[len(prompt) :]
    reply = reply.lstrip()
    if reply.startswith("Assistant:"):
        reply = reply[len("Assistant:") :]
    return reply.strip()


# --------------------------------------------------------------------------------------------
# Conversational (TRL)
# --------------------------------------------------------------------------------------------


def _messages(value: Any, field: str) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise RecordError("expected a non-empty list of messages", field=field)
    out: list[Message] = []
    for index, message in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(message, dict) or "content" not in message:
            raise RecordError("expected a message with 'role' and 'content'", field=where)
        if message.get("role") not in ROLES:
            raise RecordError(
                f"expected a role in {list(ROLES)}, got {message.get('role')!r}", field=where
            )
        out.append({"role": message["role"], "content": message["content"]})
    return out


def _conversational(
    prompt: Any, chosen: list[Any], rejected: list[Any], images: Any
) -> tuple[list[Message], Content, Content]:
    chosen_messages = _messages(chosen, "chosen")
    rejected_messages = _messages(rejected, "rejected")
    if prompt is None:
        shared = 0
        while (
            shared < min(len(chosen_messages), len(rejected_messages))
            and chosen_messages[shared] == rejected_messages[shared]
        ):
            shared += 1
        history = chosen_messages[:shared]
        chosen_messages, rejected_messages = chosen_messages[shared:], rejected_messages[shared:]
        if not history:
            raise RecordError(
                "no prompt field, and chosen and rejected share no leading messages",
                field="prompt",
            )
    elif isinstance(prompt, str):
        history = [{"role": "user", "content": prompt}]
    else:
        history = _messages(prompt, "prompt")
    if history[-1]["role"] != "user":
        raise RecordError(
            f"the prompt must end with a user message, not {history[-1]['role']!r}",
            field="prompt",
        )
    replies = {}
    for name, messages in (("chosen", chosen_messages), ("rejected", rejected_messages)):
        if len(messages) != 1 or messages[0]["role"] != "assistant":
            raise RecordError(
                f"expected one final assistant message after the shared prompt, got "
                f"{len(messages)} message(s)"
                + (" (the conversations diverge before the last turn)" if messages else ""),
                field=name,
            )
        replies[name] = messages[0]["content"]
    _fill_image_paths([*history, {"role": "assistant", "content": replies["chosen"]}], images)
    return history, replies["chosen"], replies["rejected"]


def _fill_image_paths(messages: list[Message], images: Any) -> None:
    """Give TRL's path-less ``{"type": "image"}`` parts the row's ``images`` paths (or http(s)
    URLs), in order."""
    pending = [
        part
        for message in messages
        if isinstance(message["content"], list)
        for part in message["content"]
        if isinstance(part, dict)
        and part.get("type") == "image"
        and "path" not in part
        and "url" not in part
    ]
    if not pending:
        return
    if (
        not isinstance(images, list)
        or len(images) != len(pending)
        or not all(isinstance(p, str) for p in images)
    ):
        raise RecordError(
            f"{len(pending)} image part(s) without a path need as many paths in 'images'",
            field="images",
        )
    for part, reference in zip(pending, images, strict=True):
        part["url" if reference.startswith(("http://", "https://")) else "path"] = reference


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def write_pairs(records: Iterable[Record], *, media_root: Path | None = None) -> Iterator[Item]:
    """Export labelled pairs as TRL-style rows; a record that is no pair (a tie, no label,
    not two responses) yields a :class:`RecordError` saying why.

    Images in the prompt are written in TRL's vision layout: ``{"type": "image"}`` placeholders
    in the messages and their paths (or URLs), in order, in an ``images`` list. ``media_root``:
    relative image paths are made absolute against it, so the rows load from any folder.
    """
    for record in records:
        try:
            yield _pair_row(record, media_root)
        except RecordError as error:
            error.record_id = record.id
            yield error


def _pair_row(record: Record, media_root: Path | None = None) -> dict[str, Any]:
    chosen, rejected = chosen_and_rejected(record)
    history: list[Message] = list(record.messages or [])
    if record.prompt is not None:
        history.append({"role": "user", "content": record.prompt})
    images: list[str] = []
    history = [
        {"role": m["role"], "content": _image_placeholders(m["content"], images, media_root)}
        for m in history
    ]
    row: dict[str, Any] = {"id": record.id}
    simple = (
        len(history) == 1
        and history[0]["role"] == "user"
        and all(isinstance(c, str) for c in (history[0]["content"], chosen, rejected))
    )
    if simple:
        row.update(prompt=history[0]["content"], chosen=chosen, rejected=rejected)
    else:
        row.update(
            prompt=history,
            chosen=[{"role": "assistant", "content": chosen}],
            rejected=[{"role": "assistant", "content": rejected}],
        )
    if images:
        row["images"] = images
    if record.criteria is not None:
        row["criteria"] = record.criteria
    if record.task is not None:
        row["task"] = record.task
    row.update({k: v for k, v in record.extra.items() if k not in _WRITTEN_KEYS})
    return row


def _image_placeholders(content: Content, images: list[str], media_root: Path | None) -> Content:
    """``content`` with its image parts as TRL's ``{"type": "image"}``, their references added
    to ``images`` (TRL counts placeholders and fills them from ``images`` in order)."""
    if isinstance(content, str):
        return content
    out: list[Any] = []
    for part in content:
        if part["type"] != "image":
            out.append(part)
            continue
        reference = part.get("path") or part.get("url") or ""
        if media_root is not None and "path" in part and not Path(reference).is_absolute():
            reference = str(media_root / reference)
        images.append(reference)
        out.append({"type": "image"})
    return out


__all__ = ["parse_transcript", "read_pairs", "split_pair", "split_transcripts", "write_pairs"]
