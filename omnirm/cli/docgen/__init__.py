"""Shell completions (bash, zsh, fish) and man pages, generated from the command tree.

The generators walk any click-style command tree (``typer.main.get_command(app)``): groups,
commands, options and arguments, so new commands show up without touching this package. The
completion scripts are static: they list commands, options and choices themselves and never call
back into Python on Tab. Output is deterministic (no dates, sorted where order means nothing), so
the generated files can be committed and checked for drift.

Regenerate the committed files with ``bash scripts/gen_docs.sh`` (that is
``python -m omnirm.cli.docgen --write``); ``--check`` exits 1 when they are out of date.

Modules: :mod:`.spec` (the command tree as plain data), :mod:`.text` (help text), :mod:`.bash`,
:mod:`.zsh`, :mod:`.fish` (completion scripts), :mod:`.man` (man pages) and :mod:`.files` (the
generated files, ``--write`` and ``--check``).
"""

from __future__ import annotations

from omnirm.cli.docgen.bash import bash_completion
from omnirm.cli.docgen.files import (
    BASH_FILE,
    FISH_FILE,
    MAN_DIR,
    REGEN_HINT,
    ZSH_FILE,
    check,
    generated_files,
    main,
    stale_files,
    write,
)
from omnirm.cli.docgen.fish import fish_completion
from omnirm.cli.docgen.man import EXIT_STATUS, man_pages, roff_escape
from omnirm.cli.docgen.spec import (
    GENERATED_BY,
    PROG,
    ArgumentSpec,
    CommandSpec,
    OptionSpec,
    ValueKind,
    describe,
)
from omnirm.cli.docgen.text import first_sentence, paragraphs, plain_text, strip_markup
from omnirm.cli.docgen.zsh import zsh_completion

__all__ = [
    "BASH_FILE",
    "EXIT_STATUS",
    "FISH_FILE",
    "GENERATED_BY",
    "MAN_DIR",
    "PROG",
    "REGEN_HINT",
    "ZSH_FILE",
    "ArgumentSpec",
    "CommandSpec",
    "OptionSpec",
    "ValueKind",
    "bash_completion",
    "check",
    "describe",
    "first_sentence",
    "fish_completion",
    "generated_files",
    "main",
    "man_pages",
    "paragraphs",
    "plain_text",
    "roff_escape",
    "stale_files",
    "strip_markup",
    "write",
    "zsh_completion",
]
