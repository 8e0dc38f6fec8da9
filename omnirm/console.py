"""Everything omnirm shows a person goes to standard error, through here.

Standard output is reserved for JSONL. Verbosity is set once by the command line (``-q``/``-v``)
and read by the library: ``-q`` hides progress bars and summaries, ``-v`` adds debug detail.
``NO_COLOR`` is honoured by rich itself.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from rich.console import Console

T = TypeVar("T")

_verbosity = 0
_console: Console | None = None


def set_verbosity(level: int) -> None:
    """-1 quiet, 0 normal, 1+ verbose."""
    global _verbosity
    _verbosity = level


def verbosity() -> int:
    return _verbosity


def stderr_console() -> Console:
    """The shared rich console on standard error (created on first use)."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True, highlight=False, soft_wrap=True)
    return _console


def info(message: str) -> None:
    """A line for the user (hidden by ``-q``). Rich markup allowed."""
    if _verbosity >= 0:
        stderr_console().print(message)


def debug(message: str) -> None:
    """A line shown only with ``-v``."""
    if _verbosity >= 1:
        stderr_console().print(f"[dim]{message}[/dim]")


def warn(message: str) -> None:
    """A warning; shown even with ``-q``."""
    stderr_console().print(f"[yellow]warning:[/yellow] {message}")


def error(message: str) -> None:
    """An error line; always shown. Plain text (no markup) so paths and ids print as they are."""
    from rich.text import Text

    stderr_console().print(Text.assemble(("error: ", "bold red"), message))


#: Seconds between the plain progress lines written when stderr is not a terminal.
PLAIN_INTERVAL = 30.0


class PlainLines:
    """Progress as plain lines on stderr for when it is not a terminal (logs, CI, nohup): at
    most one every ``interval`` seconds (0: none), ``DESCRIPTION: done/total (pct%) elapsed Xs,
    ETA Ys``; with an unknown total, the count and the time elapsed."""

    def __init__(self, description: str, total: int | None, interval: float) -> None:
        self.description = description
        self.total = total
        self.interval = interval
        self.start = self._last = time.monotonic()
        self._shown: int | None = None  # the count the last line gave

    def update(self, completed: int, metrics: str = "", *, force: bool = False) -> None:
        """Write a line when one is due, or with ``force`` (the last one)."""
        if not self.interval:
            return
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            self._shown = completed
            stderr_console().print(self.line(completed, now - self.start, metrics), markup=False)

    def finish(self, completed: int) -> None:
        """The last line, after a run that wrote any (unless the last one said this already)."""
        if self._shown is not None and self._shown != completed:
            self.update(completed, force=True)

    def line(self, completed: int, elapsed: float, metrics: str = "") -> str:
        """The text of one line (``metrics``, e.g. the loss, after the count)."""
        if self.total is None:
            head = f"{self.description}: {completed}"
        else:
            percent = 100 * completed / self.total if self.total else 100.0
            head = f"{self.description}: {completed}/{self.total} ({percent:.0f}%)"
        if metrics:
            head += f" {metrics},"
        times = f"elapsed {elapsed:.0f}s"
        if self.total is not None and completed:
            times += f", ETA {elapsed / completed * max(0, self.total - completed):.0f}s"
        return f"{head} {times}"


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a rich progress bar on stderr, or plain lines (:class:`PlainLines`
    every :data:`PLAIN_INTERVAL` seconds, and a last one after a run that wrote any) when stderr
    is not a terminal; nothing with ``-q``.

    ``total`` may be unknown (streams from stdin); progress then shows a count and the time
    elapsed, else also the time remaining.
    """
    if _verbosity < 0:
        yield from items
        return
    if not sys.stderr.isatty():
        lines = PlainLines(description, total, PLAIN_INTERVAL)
        completed = 0
        for item in items:
            yield item
            completed += 1
            lines.update(completed)
        lines.finish(completed)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns.append(BarColumn())
    columns += [MofNCompleteColumn(), TimeElapsedColumn()]
    if total is not None:
        columns.append(TimeRemainingColumn())
    with Progress(*columns, console=stderr_console(), redirect_stdout=False, transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


class StepProgress:
    """Progress over a known number of steps, with live metrics (e.g. the loss): a rich bar on a
    terminal, else a plain line on stderr every ``interval`` seconds and at the last step
    (:class:`PlainLines`)."""

    def __init__(self, bar: Any, task: Any, total: int, description: str, interval: float) -> None:
        self._bar = bar
        self._task = task
        self._lines = PlainLines(description, total, interval)

    def update(self, completed: int, **metrics: float) -> None:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, metrics=shown)
            return
        self._lines.update(completed, shown, force=completed == self._lines.total)


@contextlib.contextmanager
def step_progress(
    total: int, description: str, *, enabled: bool = True, interval: float | None = None
) -> Iterator[StepProgress]:
    """Progress for ``total`` steps on stderr: nothing with ``-q`` or when not ``enabled`` (e.g.
    on every process but the main one); off a terminal a line every ``interval`` seconds
    (default :data:`PLAIN_INTERVAL`)."""
    if not enabled or _verbosity < 0:
        yield StepProgress(None, None, total, description, 0.0)
        return
    if not sys.stderr.isatty():
        yield StepProgress(
            None, None, total, description, PLAIN_INTERVAL if interval is None else interval
        )
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"),
        console=stderr_console(),
        redirect_stdout=False,
    ) as bar:
        task = bar.add_task(description, total=total, metrics="")
        yield StepProgress(bar, task, total, description, 0.0)


def _disable_tqdm() -> None:
    """Make every tqdm bar created from now on a disabled one (callers that pass ``disable``
    themselves, such as huggingface_hub's, keep their own setting)."""
    import functools

    try:
        from tqdm import std
    except ImportError:  # pragma: no cover - a dependency of transformers
        return
    if getattr(std.tqdm, "_omnirm_disabled", False):
        return
    std.tqdm.__init__ = functools.partialmethod(std.tqdm.__init__, disable=True)
    std.tqdm._omnirm_disabled = True


@contextlib.contextmanager
def status(description: str) -> Iterator[None]:
    """A spinner with ``description`` on stderr while the block runs (model loading): on a
    terminal only, and not with ``-q``."""
    if _verbosity < 0 or not sys.stderr.isatty():
        yield
        return
    with stderr_console().status(description):
        yield


def quiet_libraries() -> None:
    """Keep transformers' load reports, progress bars and deprecation chatter off stderr unless
    ``-v`` was given (omnirm reports what matters itself)."""
    if _verbosity >= 1:
        return
    import os
    import warnings

    os.environ.setdefault("TQDM_DISABLE", "1")  # raw tqdm bars (e.g. GGUF de-quantisation)
    _disable_tqdm()  # tqdm reads TQDM_DISABLE once, when first imported (accelerate may have)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(transformers|peft|torch)\b")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
