"""Judge prompts: one system message and one user message per request, for every task type.

A template is two strings. The **system** string may use ``{task}`` (what is being judged, from
:data:`TASK_DESCRIPTIONS`), ``{criteria}`` (the record's criterion, a ``--criteria`` override,
or a default) and ``{verdicts}`` (the verdict instructions, with or without the tie option).
The **user** string places the record's content with ``{prompt}`` and ``{response_a}`` /
``{response_b}`` (pairwise) or ``{response}`` (pointwise); each placeholder becomes that
content's parts in order — its text, and its media where the placeholder stands (images, video
frames, audio clips, mesh renders), so a source image for editing, a video prompt or two video
responses all reach the model in the right block. ``{criteria}`` and ``{task}`` work there too.

Users pass their own with ``--prompt-template FILE``: a TOML file with ``system`` and ``user``
strings and ``mode = "pairwise"`` or ``"pointwise"`` (see :func:`load_template`).
"""

from __future__ import annotations

import re
import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from omnirm.errors import UsageError

Mode = Literal["pairwise", "pointwise"]

#: What the judge compares, by Omni-RewardBench task type (other combinations get a generic line).
TASK_DESCRIPTIONS: dict[str, str] = {
    "text_to_text": "two written answers to a user's request",
    "text_image_to_text": "two written answers to a request about an image",
    "text_video_to_text": "two written answers to a request about a video (shown as frames)",
    "text_audio_to_text": "two written answers to a request about an audio clip",
    "text_to_image": "two images generated from a text description",
    "text_to_video": "two videos generated from a text description (shown as frames)",
    "text_to_audio": "two audio clips generated from a text description",
    "text_to_3d": "two 3D objects generated from a text description (each shown as rendered views)",
    "text_image_to_image": "two edits of a source image made by following an instruction",
}
GENERIC_TASK = "two responses to a user's request"

DEFAULT_CRITERIA = (
    "Overall quality: which response better fulfils the request — helpful, correct, clear and safe."
)

PAIRWISE_SYSTEM = """\
You are an impartial judge. You compare {task}.

Judge them by this criterion, and by nothing else:
{criteria}

The order in which the responses are shown and their length must not influence you. First
explain your reasoning briefly, comparing the two responses on the criterion. Then give your
verdict on the last line. {verdicts}"""

VERDICTS_WITHOUT_TIE = 'Write "[[A]]" if response A is better or "[[B]]" if response B is better.'
VERDICTS_WITH_TIE = (
    'Write "[[A]]" if response A is better, "[[B]]" if response B is better, or "[[C]]" if they '
    "are equally good — use [[C]] only when you truly cannot prefer one."
)

#: ``answer_format="json"``: Omni-RRM's structured answer, ``better`` last (generation can stop
#: once the object closes).
VERDICTS_JSON = (
    'Write your answer as one JSON object, {{"reasoning": "<your comparison>", "score_A": '
    '<1-10>, "score_B": <1-10>, "better": "A" or "B"}}, and nothing after it.'
)
VERDICTS_JSON_WITH_TIE = (
    'Write your answer as one JSON object, {{"reasoning": "<your comparison>", "score_A": '
    '<1-10>, "score_B": <1-10>, "better": "A", "B" or "C"}} — "C" only when they are equally '
    "good — and nothing after it."
)

PAIRWISE_USER = """\
[The user's request]
{prompt}

[Response A]
{response_a}

[Response B]
{response_b}"""

POINTWISE_SYSTEM = """\
You are an impartial judge. You rate one of several {task_single}.

Rate it by this criterion, and by nothing else:
{criteria}

Its length must not influence you. First explain your reasoning briefly. Then give a score from
1 (very poor) to 10 (excellent) on the last line, written like this: [[7]]"""

POINTWISE_USER = """\
[The user's request]
{prompt}

[The response]
{response}"""

SCORE_RANGE = (1.0, 10.0)

_PAIRWISE_SLOTS = {"prompt", "response_a", "response_b"}
_POINTWISE_SLOTS = {"prompt", "response"}
_TEXT_FIELDS = {"task", "task_single", "criteria", "verdicts"}


@dataclass(frozen=True)
class Template:
    """A judge prompt (see the module docs)."""

    system: str
    user: str
    mode: Mode = "pairwise"
    source: str = "built-in"

    def fields(self) -> set[str]:
        return _fields(self.system) | _fields(self.user)


def default_template(mode: Mode) -> Template:
    if mode == "pointwise":
        return Template(POINTWISE_SYSTEM, POINTWISE_USER, "pointwise")
    return Template(PAIRWISE_SYSTEM, PAIRWISE_USER, "pairwise")


def load_template(path: str | Path) -> Template:
    """A template from a TOML file with ``system``, ``user`` and optional ``mode``.

    The user string must place the content slots of its mode exactly once each
    (``{prompt}``, ``{response_a}``, ``{response_b}`` — or ``{prompt}``, ``{response}``).
    Literal braces are written ``{{`` and ``}}``.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"--prompt-template {file}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"--prompt-template {file}: not valid TOML: {error}") from None
    unknown = set(data) - {"system", "user", "mode"}
    if unknown:
        raise UsageError(f"--prompt-template {file}: unknown keys {sorted(unknown)}")
    mode = data.get("mode", "pairwise")
    if mode not in ("pairwise", "pointwise"):
        raise UsageError(f"--prompt-template {file}: mode must be pairwise or pointwise")
    for key in ("system", "user"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise UsageError(f"--prompt-template {file}: needs a non-empty string {key!r}")
    template = Template(data["system"], data["user"], mode, str(file))
    _check(template, str(file))
    return template


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _check(template: Template, where: str) -> None:
    slots = _POINTWISE_SLOTS if template.mode == "pointwise" else _PAIRWISE_SLOTS
    try:
        system_fields = _fields(template.system)
        user_fields = _fields(template.user)
    except ValueError as error:
        raise UsageError(
            f"--prompt-template {where}: {error} (write literal braces as {{{{ }}}})"
        ) from None
    if system_fields & slots:
        raise UsageError(
            f"--prompt-template {where}: content slots {sorted(system_fields & slots)} belong in "
            "the user message"
        )
    unknown = (system_fields | user_fields) - slots - _TEXT_FIELDS
    if unknown:
        raise UsageError(
            f"--prompt-template {where}: unknown fields {sorted(unknown)}; known: "
            f"{sorted(slots | _TEXT_FIELDS)}"
        )
    for slot in sorted(slots):
        count = len(re.findall(r"(?<!\{)\{" + slot + r"\}(?!\})", template.user))
        if count != 1:
            raise UsageError(
                f"--prompt-template {where}: the user message must contain {{{slot}}} exactly "
                f"once ({template.mode} mode), found {count}"
            )


def task_text(task: str, *, single: bool = False) -> str:
    """The task line for the system message (``single``: one response, for pointwise)."""
    text = TASK_DESCRIPTIONS.get(task, GENERIC_TASK)
    return text.removeprefix("two ") if single else text


def render(
    template: Template,
    *,
    task: str,
    criteria: str,
    ties: bool,
    slots: dict[str, list[dict[str, Any]]],
    answer_format: str = "marks",
) -> tuple[str, list[dict[str, Any]]]:
    """The system text and the user message's parts: ``slots`` maps each content placeholder
    to its parts, which replace it in order; the text around them stays text.
    ``answer_format`` ``"json"`` asks for Omni-RRM's JSON object instead of ``[[A]]``."""
    if answer_format == "json":
        verdicts = (VERDICTS_JSON_WITH_TIE if ties else VERDICTS_JSON).format()
    else:
        verdicts = VERDICTS_WITH_TIE if ties else VERDICTS_WITHOUT_TIE
    text_fields = {
        "task": task_text(task),
        "task_single": task_text(task, single=True),
        "criteria": criteria,
        "verdicts": verdicts,
    }
    system = template.system.format(**text_fields)
    parts: list[dict[str, Any]] = []
    pieces = re.split(r"(?<!\{)\{(" + "|".join(sorted(slots)) + r")\}(?!\})", template.user)
    for index, piece in enumerate(pieces):
        if index % 2:
            parts.extend(slots[piece])
        elif piece:
            _append_text(parts, piece.format(**text_fields))
    return system, _merge_text(parts)


def _append_text(parts: list[dict[str, Any]], text: str) -> None:
    parts.append({"type": "text", "text": text})


def _merge_text(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adjacent text parts joined (templates and contents produce many small ones)."""
    merged: list[dict[str, Any]] = []
    for part in parts:
        if part["type"] == "text" and merged and merged[-1]["type"] == "text":
            merged[-1] = {"type": "text", "text": merged[-1]["text"] + part["text"]}
        elif part["type"] != "text" or part["text"]:
            merged.append(part)
    return merged
