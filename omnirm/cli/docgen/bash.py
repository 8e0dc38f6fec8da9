"""The static bash completion script."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from omnirm.cli.docgen.spec import GENERATED_BY, PROG, ValueKind, describe


def _sh_quote(text: str) -> str:
    """A single-quoted POSIX shell word."""
    return "'" + text.replace("'", "'\\''") + "'"


def _bash_case(cases: Sequence[tuple[Sequence[str], str]], default: str, indent: str) -> str:
    """A ``case`` body: each (patterns, command) pair, then ``*) default``."""
    lines = []
    for patterns, command in cases:
        lines.append(f"{indent}{' | '.join(_sh_quote(p) for p in patterns)})")
        lines.append(f"{indent}    {command}")
        lines.append(f"{indent}    ;;")
    lines.append(f"{indent}*)")
    lines.append(f"{indent}    {default}")
    lines.append(f"{indent}    ;;")
    return "\n".join(lines)


def _bash_action(kind: ValueKind, choices: Sequence[str]) -> str | None:
    if kind == "choice":
        return f'_omnirm_words {_sh_quote(" ".join(sorted(choices)))} "$2"'
    if kind == "file":
        return '_omnirm_files "$2"'
    if kind == "dir":
        return '_omnirm_dirs "$2"'
    return None


def _group_by_action(entries: Iterator[tuple[str, str | None]]) -> list[tuple[list[str], str]]:
    """(pattern, action) pairs grouped by action; actions and patterns sorted."""
    grouped: dict[str, list[str]] = {}
    for pattern, action in entries:
        if action is not None:
            grouped.setdefault(action, []).append(pattern)
    return [(sorted(patterns), action) for action, patterns in sorted(grouped.items())]


def bash_completion(cmd: Any, prog: str = PROG) -> str:
    """A static bash completion script for the command tree ``cmd``."""
    spec = describe(cmd, prog)
    commands = list(spec.walk())
    per_command = []
    for c in commands:
        opts = sorted(n for o in c.options for n in o.all_names)
        vopts = sorted(n for o in c.options if o.takes_value for n in o.all_names)
        subs = sorted(s.path[-1] for s in c.commands)
        per_command.append(
            (
                [c.name],
                f"subs={_sh_quote(' '.join(subs))} opts={_sh_quote(' '.join(opts))} "
                f"vopts={_sh_quote(' '.join(vopts))} nargs={len(c.positional_slots)} "
                f"vararg={int(c.variadic)}",
            )
        )
    values = _group_by_action(
        (f"{c.name} {name}", _bash_action(o.kind, o.choices))
        for c in commands
        for o in c.options
        for name in o.all_names
    )
    arguments = _group_by_action(
        (f"{c.name} {index}", _bash_action(a.kind, a.choices))
        for c in commands
        for index, a in enumerate(c.positional_slots)
    )
    no_command = "subs='' opts='' vopts='' nargs=0 vararg=0"
    script = (
        _BASH_TEMPLATE.replace("@PROG@", prog)
        .replace("@GENERATED_BY@", GENERATED_BY)
        .replace("@COMMANDS@", _bash_case(per_command, no_command, " " * 8))
        .replace("@VALUES@", _bash_case(values, "return 1", " " * 8))
        .replace("@ARGUMENTS@", _bash_case(arguments, "return 1", " " * 8))
    )
    return script.replace("_omnirm", "_" + _bash_identifier(prog))


def _bash_identifier(prog: str) -> str:
    return re.sub(r"\W", "_", prog)


_BASH_TEMPLATE = r"""# bash completion for @PROG@                                  -*- shell-script -*-
# @GENERATED_BY@
# Use: source this file, or copy it to ~/.local/share/bash-completion/completions/@PROG@

# _omnirm_command PATH: set subs, opts, vopts (options taking a value), nargs and vararg.
_omnirm_command() {
    case $1 in
@COMMANDS@
    esac
}

# _omnirm_value 'PATH OPTION' CUR: complete the value of OPTION; status 1 for free text.
_omnirm_value() {
    case $1 in
@VALUES@
    esac
}

# _omnirm_argument 'PATH INDEX' CUR: complete a positional argument; status 1 if none.
_omnirm_argument() {
    case $1 in
@ARGUMENTS@
    esac
}

# _omnirm_words WORDS CUR: the words that start with CUR.
_omnirm_words() {
    local word words
    read -r -a words <<<"$1"
    for word in "${words[@]}"; do
        [[ $word == "$2"* ]] && COMPREPLY+=("$word")
    done
    return 0
}

_omnirm_files() {
    local item
    compopt -o filenames 2>/dev/null
    while IFS= read -r item; do COMPREPLY+=("$item"); done < <(compgen -f -- "$1")
}

_omnirm_dirs() {
    local item
    compopt -o filenames 2>/dev/null
    while IFS= read -r item; do COMPREPLY+=("$item"); done < <(compgen -d -- "$1")
}

_omnirm() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev='' path=@PROG@ word
    local subs opts vopts nargs vararg i=1 npos=0 dashdash=0
    COMPREPLY=()
    _omnirm_command "$path"
    # Walk the words before the cursor: descend into subcommands, skip option values.
    while ((i < COMP_CWORD)); do
        word=${COMP_WORDS[i]}
        if ((dashdash)); then
            npos=$((npos + 1))
        elif [[ $word == -- ]]; then
            dashdash=1
        elif [[ $word == -?* ]]; then
            if [[ ${COMP_WORDS[i + 1]} == = ]]; then
                i=$((i + 2)) # --option=value, split by bash at '='
            elif [[ " $vopts " == *" $word "* ]]; then
                i=$((i + 1))
            fi
        elif [[ -n $subs && npos -eq 0 && " $subs " == *" $word "* ]]; then
            path+=" $word"
            _omnirm_command "$path"
        else
            npos=$((npos + 1))
        fi
        i=$((i + 1))
    done
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    if ((!dashdash)); then
        if [[ $cur == = && $prev == -?* ]]; then # --option=<TAB>
            _omnirm_value "$path $prev" ''
            return 0
        fi
        if [[ $prev == = ]] && ((COMP_CWORD > 1)); then # --option=partial<TAB>
            _omnirm_value "$path ${COMP_WORDS[COMP_CWORD - 2]}" "$cur"
            return 0
        fi
        if [[ " $vopts " == *" $prev "* ]]; then
            _omnirm_value "$path $prev" "$cur"
            return 0
        fi
        if [[ $cur == -* ]]; then
            _omnirm_words "$opts" "$cur"
            return 0
        fi
    fi
    if [[ -n $subs ]]; then
        ((npos == 0)) && _omnirm_words "$subs" "$cur"
        return 0
    fi
    ((vararg && npos >= nargs)) && npos=$((nargs - 1))
    if ((npos < nargs)) && _omnirm_argument "$path $npos" "$cur"; then
        return 0
    fi
    ((dashdash)) || [[ -n $cur ]] || _omnirm_words "$opts" "$cur"
    return 0
}

complete -F _omnirm @PROG@
"""
