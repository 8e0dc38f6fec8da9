"""The static fish completion script."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from omnirm.cli.docgen.bash import _bash_identifier
from omnirm.cli.docgen.spec import GENERATED_BY, PROG, ValueKind, describe
from omnirm.cli.docgen.text import first_sentence


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_word(word: str) -> str:
    """A word of a fish command line, quoted only when it needs to be."""
    return word if re.fullmatch(r"[\w.+-]+", word) else _fish_quote(word)


def _fish_names(names: Sequence[str]) -> list[str]:
    flags = []
    for name in names:
        if name.startswith("--"):
            flags.append(f"-l {_fish_quote(name[2:])}")
        elif len(name) == 2:
            flags.append(f"-s {_fish_quote(name[1:])}")
        else:
            flags.append(f"-o {_fish_quote(name[1:])}")
    return flags


def _fish_value(kind: ValueKind, choices: Sequence[str]) -> list[str]:
    if kind == "choice":
        return ["-x", "-a", _fish_quote(" ".join(choices))]
    if kind == "file":
        return ["-r", "-F"]
    if kind == "dir":
        return ["-x", "-a", "'(__fish_complete_directories)'"]
    if kind == "plain":
        return ["-x"]
    return []


def fish_completion(cmd: Any, prog: str = PROG) -> str:
    """A static fish completion script for the command tree ``cmd``."""
    spec = describe(cmd, prog)
    fn = _bash_identifier(prog)
    commands = list(spec.walk())
    subcommands = sorted(s.name for c in commands for s in c.commands)
    value_options = sorted(
        f"{c.name} {n}" for c in commands for o in c.options if o.takes_value for n in o.all_names
    )
    lines = [
        f"# fish completion for {prog}",
        f"# {GENERATED_BY}",
        f"# Use: copy this file to ~/.config/fish/completions/{prog}.fish",
        "",
        f"set -g __{fn}_subcommands " + " ".join(_fish_quote(s) for s in subcommands),
        f"set -g __{fn}_value_options " + " ".join(_fish_quote(v) for v in value_options),
        "",
        f"function __{fn}_path --description 'The {prog} (sub)command being completed'",
        "    set -l words (commandline -opc)",
        "    set -e words[1]",
        f"    set -l path {prog}",
        "    set -l skip 0",
        "    for word in $words",
        "        if test $skip -eq 1",
        "            set skip 0",
        '        else if test "$word" = --',
        "            break",
        "        else if string match -q -- '-?*' $word",
        f'            if contains -- "$path $word" $__{fn}_value_options',
        "                set skip 1",
        "            end",
        f'        else if contains -- "$path $word" $__{fn}_subcommands',
        '            set path "$path $word"',
        "        else",
        "            break",
        "        end",
        "    end",
        "    echo $path",
        "end",
        "",
        f"function __{fn}_at --description 'Is the command being completed this one (words)?'",
        f'    test (__{fn}_path) = "$argv"',
        "end",
        "",
        f"complete -c {prog} -f",
    ]
    for c in commands:
        condition = "-n " + _fish_quote(f"__{fn}_at " + " ".join(_fish_word(w) for w in c.path))
        lines += ["", f"# {c.name}"]
        for sub in c.commands:
            lines.append(
                f"complete -c {prog} {condition} -a {_fish_quote(sub.path[-1])} "
                f"-d {_fish_quote(sub.short_help)}"
            )
        for o in c.options:
            for names, text in ((o.names, first_sentence(o.help)), (o.secondary, "")):
                if not names:
                    continue
                words = [*_fish_names(names), *_fish_value(o.kind, o.choices)]
                if text:
                    words += ["-d", _fish_quote(text)]
                lines.append(f"complete -c {prog} {condition} {' '.join(words)}")
        kinds = {a.kind for a in c.arguments if not a.hidden}
        arg_choices = sorted({ch for a in c.arguments for ch in a.choices})
        if "file" in kinds:
            lines.append(f"complete -c {prog} {condition} -F")
        if "dir" in kinds:
            lines.append(f"complete -c {prog} {condition} -a '(__fish_complete_directories)'")
        if arg_choices:
            lines.append(f"complete -c {prog} {condition} -a {_fish_quote(' '.join(arg_choices))}")
    return "\n".join(lines) + "\n"
