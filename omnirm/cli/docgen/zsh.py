"""The static zsh completion script (``_omnirm``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from omnirm.cli.docgen.bash import _bash_identifier, _sh_quote
from omnirm.cli.docgen.spec import (
    GENERATED_BY,
    PROG,
    CommandSpec,
    OptionSpec,
    ValueKind,
    describe,
)
from omnirm.cli.docgen.text import first_sentence


def _zsh_func(spec: CommandSpec) -> str:
    return "_" + "__".join(_bash_identifier(p) for p in spec.path)


def _zsh_text(text: str) -> str:
    """Text inside an ``_arguments`` spec's brackets or message."""
    return re.sub(r"([\\\[\]:])", r"\\\1", text)


def _zsh_action(kind: ValueKind, choices: Sequence[str]) -> str:
    if kind == "choice":
        return "(" + " ".join(re.sub(r"([\\\s()'\"])", r"\\\1", c) for c in choices) + ")"
    if kind == "file":
        return "_files"
    if kind == "dir":
        return "_files -/"
    return " "


def _zsh_option_specs(option: OptionSpec) -> list[str]:
    names = option.all_names
    exclusion = "" if option.repeatable else "(" + " ".join(names) + ")"
    star = "*" if option.repeatable else ""
    specs = []
    for name in names:
        text = first_sentence(option.help) if name not in option.secondary else ""
        explanation = f"[{_zsh_text(text)}]" if text else ""
        if option.takes_value:
            equals = "=" if name.startswith("--") else ""
            value = f":{_zsh_text(option.metavar)}:{_zsh_action(option.kind, option.choices)}"
            specs.append(f"{exclusion}{star}{name}{equals}{explanation}{value}")
        else:
            specs.append(f"{exclusion}{star}{name}{explanation}")
    return specs


def _zsh_argument_specs(spec: CommandSpec) -> list[str]:
    specs = []
    for index, arg in enumerate(spec.positional_slots, start=1):
        message = _zsh_text(arg.metavar)
        action = _zsh_action(arg.kind, arg.choices)
        if arg.nargs < 0:
            specs.append(f"*:{message}:{action}")
        else:
            specs.append(f"{index}:{':' if not arg.required else ''}{message}:{action}")
    return specs


def _zsh_function(spec: CommandSpec) -> str:
    specs = [s for o in spec.options for s in _zsh_option_specs(o)]
    if not spec.is_group:
        specs += _zsh_argument_specs(spec)
        call = "    _arguments -s -S" + "".join(f" \\\n        {_sh_quote(s)}" for s in specs)
        return f"{_zsh_func(spec)}() {{\n{call}\n}}"
    specs += ["1:command:->command", "*::argument:->argument"]
    call = "    _arguments -C -s -S" + "".join(f" \\\n        {_sh_quote(s)}" for s in specs)
    described = [f"{_zsh_text(s.path[-1])}:{s.short_help}" for s in spec.commands]
    lines = [
        f"{_zsh_func(spec)}() {{",
        '    local curcontext="$curcontext" state state_descr line ret=1',
        "    typeset -A opt_args",
        call + " && ret=0",
        "    case $state in",
        "        command)",
        "            local -a commands=(",
        *[f"                {_sh_quote(d)}" for d in described],
        "            )",
        f"            _describe -t commands {_sh_quote(spec.name + ' command')} commands && ret=0",
        "            ;;",
        "        argument)",
        f'            curcontext="${{curcontext%:*:*}}:{spec.page}-$words[1]:"',
        "            case $words[1] in",
        *[
            f"                {_sh_quote(s.path[-1])}) {_zsh_func(s)} && ret=0 ;;"
            for s in spec.commands
        ],
        "            esac",
        "            ;;",
        "    esac",
        "    return ret",
        "}",
    ]
    return "\n".join(lines)


def zsh_completion(cmd: Any, prog: str = PROG) -> str:
    """A static zsh completion script (``_omnirm``) for the command tree ``cmd``."""
    spec = describe(cmd, prog)
    functions = "\n\n".join(_zsh_function(c) for c in spec.walk())
    return (
        f"#compdef {prog}\n"
        f"# zsh completion for {prog}\n"
        f"# {GENERATED_BY}\n"
        f"# Use: put this file in a directory of $fpath (as _{prog}), or source it.\n\n"
        f"{functions}\n\n"
        f'if [[ "$funcstack[1]" == {_zsh_func(spec)} ]]; then\n'
        f'    {_zsh_func(spec)} "$@"\n'
        "else\n"
        f"    compdef {_zsh_func(spec)} {prog}\n"
        "fi\n"
    )
