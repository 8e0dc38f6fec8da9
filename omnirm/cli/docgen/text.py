"""Help text as plain text: rich markup removed, paragraphs, first sentences."""

from __future__ import annotations

import inspect
import re

_RICH_STYLE_WORDS = frozenset(
    {"b", "bold", "i", "italic", "u", "underline", "uu", "d", "dim", "s", "strike", "r", "reverse"}
    | {"blink", "blink2", "conceal", "frame", "encircle", "overline", "o", "not", "on", "default"}
)
_RICH_COLOR = re.compile(
    r"(bright_)?(black|red|green|yellow|blue|magenta|cyan|white|purple|orange|grey|gray)\d*"
    r"|color\(\d+\)|rgb\(\d+,\d+,\d+\)|#[0-9a-f]{6}"
)
_TAG = re.compile(r"(\\*)\[([a-zA-Z#/@][^\[\]]*?)\]")


def strip_markup(text: str) -> str:
    """Remove rich markup (``[bold]x[/bold]``, ``[/]``, ``[link=...]``) but keep other brackets.

    ``[default: x]`` and the like stay: a tag is removed only when it closes one, is closed
    later, or is made of rich style words.
    """
    closers = {m.group(2)[1:].strip() for m in _TAG.finditer(text) if m.group(2).startswith("/")}

    def replace(match: re.Match[str]) -> str:
        backslashes, tag = match.group(1), match.group(2)
        if len(backslashes) % 2:  # \[ is an escaped, literal bracket
            return backslashes[:-1] + "[" + tag + "]"
        if _is_rich_tag(tag, closers):
            return backslashes
        return match.group(0)

    return _TAG.sub(replace, text)


def _is_rich_tag(tag: str, closers: set[str]) -> bool:
    if tag.startswith(("/", "link=", "@")) or tag in closers:
        return True
    words = tag.lower().split()
    return bool(words) and all(w in _RICH_STYLE_WORDS or _RICH_COLOR.fullmatch(w) for w in words)


def plain_text(text: str) -> str:
    """Help text as plain paragraphs: cut at ``\\f``, dedented, rich markup removed."""
    text = text.split("\f", 1)[0]
    return strip_markup(inspect.cleandoc(text)).strip()


def paragraphs(text: str) -> list[tuple[str, bool]]:
    """Split help text into paragraphs: ``(text, preformatted)``.

    Lines of a paragraph are joined, except after click's ``\\b`` marker, which keeps them.
    """
    result: list[tuple[str, bool]] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        if not lines:
            continue
        if lines[0].strip() == "\b":
            result.append(("\n".join(lines[1:]), True))
        else:
            result.append((" ".join(line.strip() for line in lines if line.strip()), False))
    return [(body, pre) for body, pre in result if body.strip()]


def first_sentence(text: str) -> str:
    """The first sentence of the first paragraph, without its final period."""
    paras = paragraphs(text)
    if not paras:
        return ""
    first = paras[0][0].strip().splitlines()[0] if paras[0][1] else paras[0][0]
    sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z(\[])", first, maxsplit=1)[0].strip()
    return sentence[:-1] if sentence.endswith(".") and not sentence.endswith("..") else sentence
