"""Man pages (roff), one per command and group."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from omnirm.cli.docgen.spec import GENERATED_BY, PROG, CommandSpec, OptionSpec, describe
from omnirm.cli.docgen.text import paragraphs

EXIT_STATUS = (
    ("0", "Success."),
    ("1", "Failure: bad data, missing media, a failed model."),
    ("2", "Usage error: a bad option, a missing argument or an unknown command."),
    ("130", "Interrupted."),
)

_ROFF_SPECIAL = re.compile(r"\\|(?<![\w-])-[-\w]*")


def roff_escape(text: str) -> str:
    """Escape text for roff: backslashes, hyphens of options and dashes as ``\\-``, and any
    non-ASCII character as a ``\\[uXXXX]`` glyph (groff reads its input as Latin-1).

    Hyphens inside words (``free-form``) stay hyphens.
    """

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        return "\\e" if token == "\\" else token.replace("-", "\\-")

    escaped = _ROFF_SPECIAL.sub(replace, text)
    return "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in escaped)


def _roff_line(text: str) -> str:
    """One escaped text line, protected against being read as a request (leading . or ')."""
    line = roff_escape(text.strip())
    return "\\&" + line if line.startswith((".", "'")) else line


def _roff_text(text: str) -> list[str]:
    """Help text as roff lines: paragraphs separated by ``.PP``, ``\\b`` blocks kept as-is."""
    lines: list[str] = []
    for body, preformatted in paragraphs(text):
        if lines:
            lines.append(".PP")
        if preformatted:
            lines += [".nf", *(_roff_line(line) for line in body.splitlines()), ".fi"]
        else:
            lines.append(_roff_line(body))
    return lines


def _roff_name(name: str) -> str:
    """A command or page name: every hyphen is a real minus, for copy and paste."""
    return name.replace("\\", "\\e").replace("-", "\\-")


def _bold(text: str) -> str:
    return f"\\fB{roff_escape(text)}\\fR"


def _italic(text: str) -> str:
    return f"\\fI{roff_escape(text)}\\fR"


def _option_tag(option: OptionSpec) -> str:
    tag = ", ".join(_bold(n) for n in option.names)
    if option.secondary:
        tag += " / " + ", ".join(_bold(n) for n in option.secondary)
    if option.takes_value:
        tag += " " + _italic(option.metavar)
    return tag


def _option_details(option: OptionSpec) -> list[str]:
    details = []
    if option.choices:
        details.append("Choices: " + ", ".join(_bold(c) for c in option.choices) + ".")
    if option.default is not None and option.default != "":
        details.append(f"Default: {_bold(option.default)}.")
    if option.required:
        details.append("Required.")
    if option.repeatable:
        details.append("May be repeated.")
    if option.envvars:
        details.append("Environment: " + ", ".join(_bold(e) for e in option.envvars) + ".")
    return details


def _man_page(spec: CommandSpec, version: str, by_name: Mapping[str, CommandSpec]) -> str:
    lines = [
        f'.\\" {GENERATED_BY}',
        f'.TH {spec.page.upper()} 1 "" "{spec.path[0]} {version}" "{spec.path[0]} manual"',
        ".SH NAME",
        _roff_name(spec.page) + (f" \\- {_roff_line(spec.short_help)}" if spec.short_help else ""),
        ".SH SYNOPSIS",
        f".B {_roff_name(spec.name)}",
    ]
    usage = ["[\\fIOPTIONS\\fR]"] if spec.options else []
    if spec.is_group:
        usage.append("\\fICOMMAND\\fR [\\fIARGS\\fR]...")
    for arg in spec.arguments:
        if not arg.hidden:
            text = _italic(arg.metavar) + ("..." if arg.nargs != 1 else "")
            usage.append(text if arg.required else f"[{text}]")
    if usage:
        lines.append(" ".join(usage))
    if spec.help or spec.deprecated:
        lines.append(".SH DESCRIPTION")
        if spec.deprecated:
            lines += ["This command is deprecated.", ".PP"] if spec.help else ["Deprecated."]
        lines += _roff_text(spec.help)
    if spec.is_group and spec.commands:
        lines.append(".SH COMMANDS")
        for sub in spec.commands:
            lines += [".TP", _bold(sub.path[-1])]
            if sub.short_help:
                lines.append(_roff_line(sub.short_help + "."))
            lines += [".br", f"See \\fB{_roff_name(sub.page)}\\fR(1)."]
    arguments = [a for a in spec.arguments if not a.hidden]
    if arguments:
        lines.append(".SH ARGUMENTS")
        for arg in arguments:
            lines += [".TP", _italic(arg.metavar + ("..." if arg.nargs != 1 else ""))]
            body = _roff_text(arg.help) if arg.help else []
            extra = []
            if arg.choices:
                extra.append("Choices: " + ", ".join(_bold(c) for c in arg.choices) + ".")
            if arg.default is not None and arg.default != "" and not arg.required:
                extra.append(f"Default: {_bold(arg.default)}.")
            lines += _join_details(body, extra)
    if spec.options:
        lines.append(".SH OPTIONS")
        for option in spec.options:
            lines += [".TP", _option_tag(option)]
            body = _roff_text(option.help) if option.help else []
            lines += _join_details(body, _option_details(option))
    if spec.epilog:
        lines += [".SH NOTES", *_roff_text(spec.epilog)]
    lines.append(".SH EXIT STATUS")
    for code, meaning in EXIT_STATUS:
        lines += [".TP", f".B {code}", _roff_line(meaning)]
    see_also = [by_name[" ".join(spec.path[:n])] for n in range(1, len(spec.path))]
    see_also += list(spec.commands)
    if see_also:
        lines.append(".SH SEE ALSO")
        for index, other in enumerate(see_also):
            comma = "," if index < len(see_also) - 1 else ""
            lines.append(f".BR {_roff_name(other.page)} (1){comma}")
    return "\n".join(lines) + "\n"


def _join_details(body: list[str], details: list[str]) -> list[str]:
    """Help lines, then each detail on its own line."""
    lines = list(body)
    for detail in details:
        if lines:
            lines.append(".br")
        lines.append(detail)
    return lines


def man_pages(cmd: Any, prog: str = PROG, version: str | None = None) -> dict[str, str]:
    """One roff man page per command and group: ``{"omnirm-data-validate.1": text, ...}``."""
    if version is None:
        import omnirm

        version = omnirm.__version__
    spec = describe(cmd, prog)
    by_name = {c.name: c for c in spec.walk()}
    return {f"{c.page}.1": _man_page(c, version, by_name) for c in spec.walk()}
