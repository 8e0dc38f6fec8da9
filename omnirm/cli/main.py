"""Entry point: ``omnirm`` (console script) and ``python -m omnirm``.

``main(argv) -> int`` runs the command line and returns the exit code: 0 ok, 1 failure (bad data,
missing media, a failed model), 2 usage error, 130 interrupted (Ctrl-C, or SIGTERM: ended
the same way, so that no temporary output is left behind).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Annotated, Any

import typer
from typer.exceptions import Abort, TyperException

from omnirm import __version__, console
from omnirm.cli import data, train
from omnirm.cli.bench import bench
from omnirm.cli.bon import bon
from omnirm.cli.score import score
from omnirm.cli.serve import serve
from omnirm.errors import OmnirmError, OutputClosed, Terminated, UsageError

app = typer.Typer(
    name="omnirm",
    help="Omni-modal reward modelling with free-form preferences.\n\n"
    "Every command reads JSONL (a file, or - for stdin) and writes JSONL to stdout, so they "
    "chain in pipes. Progress, tables and logs go to stderr.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(data.app, name="data")
app.add_typer(train.app, name="train")
app.command("score")(score)
app.command("bench")(bench)
app.command("bon")(bon)
app.command("serve")(serve)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"omnirm {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only errors on stderr: no progress or summary.")
    ] = False,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More detail on stderr (-vv: more).")
    ] = 0,
) -> None:
    """Omni-modal reward modelling with free-form preferences."""
    console.set_verbosity(-1 if quiet else verbose)


def _unwrap_paragraphs(text: str) -> str:
    # Typer's rich help keeps the docstring's single line breaks after the first paragraph; join
    # them so paragraphs wrap at the terminal's width. ``\b`` paragraphs stay verbatim.
    paragraphs = text.split("\n\n")
    return "\n\n".join(
        p if p.lstrip().startswith("\b") else " ".join(p.split("\n")) for p in paragraphs
    )


def _set_quiet(ctx: Any, param: Any, value: bool) -> None:
    if value:
        console.set_verbosity(-1)


def _set_verbose(ctx: Any, param: Any, value: int) -> None:
    if value:
        console.set_verbosity(value)


def _verbosity_options(root: Any) -> list[Any]:
    """Copies of the root's ``-q``/``-v``, for every command (``omnirm score -q …`` as well as
    ``omnirm -q score …``); they set the verbosity when given and leave it alone otherwise."""
    import copy

    options = []
    for param in root.params:
        if param.name in ("quiet", "verbose"):
            option = copy.copy(param)
            option.expose_value = False
            option.callback = _set_quiet if param.name == "quiet" else _set_verbose
            options.append(option)
    return options


def build_command() -> Any:
    """The click command tree of the CLI, as ``main`` runs it and ``docgen`` documents it."""
    import inspect

    command = typer.main.get_command(app)
    verbosity = _verbosity_options(command)
    pending = [command]
    while pending:
        current = pending.pop()
        if current.help:
            current.help = _unwrap_paragraphs(inspect.cleandoc(current.help))
        children = getattr(current, "commands", None)
        if children is None:  # a command, not a group
            current.params.extend(verbosity)
        pending.extend((children or {}).values())
    return command


def _silence_stdout() -> None:
    # The reader is gone; point fd 1 at /dev/null so the interpreter's final flush stays quiet.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _os_error_message(exc: OSError) -> str:
    import errno

    where = f"{exc.filename}: " if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"{where}no space left on device; free some space and run the command again"
    return f"{where}{exc.strerror or exc}"


_received: set[int] = set()  # the signals that ended the command


def _terminate(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    _received.add(signum)
    raise Terminated


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises :class:`~omnirm.errors.Terminated` (a ``KeyboardInterrupt``) while the
    command runs, so it unwinds as Ctrl-C does instead of dying with its files half-written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted() -> int:
    console.error("terminated (SIGTERM)" if signal.SIGTERM in _received else "interrupted")
    return 130


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    command = build_command()
    try:
        with _sigterm_interrupts():
            result = command.main(args=argv, prog_name="omnirm", standalone_mode=False)
    except OutputClosed:
        _silence_stdout()
        return 0
    except UsageError as exc:
        console.error(str(exc))
        return 2
    except OmnirmError as exc:
        console.error(str(exc))
        return 1
    except Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            return _interrupted()
        console.error("aborted")
        return 130
    except TyperException as exc:  # usage errors: bad option, missing argument, unknown command
        from typer import rich_utils

        rich_utils.rich_format_error(exc)  # type: ignore[arg-type]
        return int(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        return _interrupted()
    except OSError as exc:  # a full disk, a file that cannot be written: one line, no traceback
        console.error(_os_error_message(exc))
        return 1
    if result == 130:  # typer turns Ctrl-C inside a command into exit code 130
        _interrupted()
    if isinstance(result, int):
        return result
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
