"""Streaming JSONL input and output.

Reading is line by line in constant memory (a multi-GB file is never loaded whole). Writing keeps
the order it is given, refuses NaN and Infinity (they are not JSON), and flushes regularly so a
crash or Ctrl-C loses at most the last fraction of a second of output. A file is never written
by two runs at once, never the input being read, and never left half-written in place of the
previous one (:class:`OutputFile`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from omnirm.errors import OutputClosed, RecordError, UsageError

STDIN = "-"
#: The longest line read as one record, in bytes (``--max-record-bytes``): a longer one is
#: refused before it is parsed, without holding it in memory.
MAX_RECORD_BYTES = 16 * 1024**2


def display_name(source: str | Path) -> str:
    """How a source is named in messages: ``<stdin>`` for ``-``, else the path as given."""
    return "<stdin>" if str(source) == STDIN else str(source)


@contextlib.contextmanager
def open_input(source: str | Path) -> Iterator[IO[bytes]]:
    """Open ``source`` for binary reading; ``-`` is standard input (not closed afterwards)."""
    if str(source) == STDIN:
        yield sys.stdin.buffer
        return
    path = Path(source)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, expected a JSONL file (or - for stdin)")
    with path.open("rb") as handle:
        yield handle


def count_lines(source: str | Path) -> int | None:
    """The non-blank lines of a regular file (a progress bar's total), or None for standard
    input, pipes and missing files."""
    path = Path(source)
    if str(source) == STDIN or not path.is_file():
        return None
    count = 0
    with path.open("rb") as handle:
        for line in handle:
            count += 1 if line.strip() else 0
    return count


class InvalidJson(RecordError):
    """A line that is not JSON; :attr:`raw` keeps its text (``--on-error record`` writes it)."""

    def __init__(self, message: str, raw: str, **where: Any) -> None:
        super().__init__(message, **where)
        self.raw = raw


def iter_json_lines(
    source: str | Path, *, name: str | None = None, max_bytes: int | None = MAX_RECORD_BYTES
) -> Iterator[tuple[int, Any | RecordError]]:
    """Yield ``(line_number, value)`` for each non-blank line of a JSONL source.

    A line that is not valid JSON, or longer than ``max_bytes`` (None: no limit), yields a
    located :class:`RecordError` instead of a value, so the caller decides whether to stop or
    go on. Line numbers start at 1.
    """
    for number, _, value in iter_json_lines_at(source, name=name, max_bytes=max_bytes):
        yield number, value


def iter_json_lines_at(
    source: str | Path, *, name: str | None = None, max_bytes: int | None = MAX_RECORD_BYTES
) -> Iterator[tuple[int, int, Any | RecordError]]:
    """:func:`iter_json_lines` with each line's byte offset: ``(line_number, offset, value)``,
    so that a reader can come back to a line later (:func:`read_json_line_at`)."""
    shown = name or display_name(source)
    with open_input(source) as handle:
        for number, (offset, raw) in enumerate(_lines(handle, max_bytes), start=1):
            if isinstance(raw, int):
                yield (
                    number,
                    offset,
                    RecordError(
                        f"line has {raw} bytes, over the limit of {max_bytes} per record "
                        "(--max-record-bytes); not read",
                        source=shown,
                        line=number,
                    ),
                )
                continue
            if not raw.strip():
                continue
            try:
                yield number, offset, orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                yield (
                    number,
                    offset,
                    InvalidJson(f"invalid JSON: {exc}", text, source=shown, line=number),
                )


def read_json_line_at(handle: IO[bytes], offset: int) -> Any:
    """The JSON value of the line that starts at byte ``offset`` of an open file."""
    handle.seek(offset)
    return orjson.loads(handle.readline())


def _lines(handle: IO[bytes], max_bytes: int | None) -> Iterator[tuple[int, bytes | int]]:
    """The lines of ``handle`` with their byte offsets; a line longer than ``max_bytes``
    (newline not counted) comes out as its length, read past in blocks rather than held in
    memory. Offsets are counted here, so standard input (not seekable) is read the same way."""
    offset = 0
    while True:
        raw = handle.readline() if max_bytes is None else handle.readline(max_bytes + 1)
        if not raw:
            return
        start = offset
        offset += len(raw)
        if max_bytes is None or len(raw) <= max_bytes or raw.endswith(b"\n"):
            yield start, raw
            continue
        size = len(raw)
        while not raw.endswith(b"\n"):
            raw = handle.readline(1 << 20)
            if not raw:
                break
            size += len(raw)
        offset = start + size
        yield start, size - raw.endswith(b"\n")


def dumps(obj: Any) -> str:
    """Serialise one record as a single JSON line (no trailing newline).

    Raises :class:`ValueError` naming the offending key for NaN or Infinity.
    """
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        raise ValueError(
            f"not JSON: {_find_non_finite(obj) or 'a value'} is NaN or Infinity"
        ) from None


def _find_non_finite(obj: Any, path: str = "") -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return path or "value"
    if isinstance(obj, dict):
        for key, value in obj.items():
            found = _find_non_finite(value, f"{path}.{key}" if path else str(key))
            if found:
                return found
    if isinstance(obj, list | tuple):
        for index, value in enumerate(obj):
            found = _find_non_finite(value, f"{path}[{index}]")
            if found:
                return found
    return None


class Sink(Protocol):
    """Anything lines can be written to: a :class:`JsonlWriter`, or a filter in front of one."""

    def write(self, obj: Any) -> None: ...


class JsonlWriter:
    """Write JSON objects one per line to a file or to standard output (``-`` or ``None``).

    Use as a context manager. A file (see :class:`OutputFile`) is locked against a second
    writer and written through a temporary file renamed into place at the end, or appended to
    in place with ``append`` (``--resume``). ``inputs`` are the files the command reads: naming
    one of them as the target is refused. Each line is flushed as it is written: a reader at
    the other end of a pipe, or a run interrupted, has every record done so far.
    """

    def __init__(
        self,
        target: str | Path | None = None,
        *,
        append: bool = False,
        inputs: Iterable[str | Path | None] = (),
        option: str = "-o",
    ) -> None:
        self.target = STDIN if target is None else str(target)
        self.count = 0
        self._stream: IO[str]
        self.file: OutputFile | None = None
        if self.target != STDIN:
            self.file = OutputFile(Path(self.target), append=append, inputs=inputs, option=option)
            self._stream = self.file.stream
        else:
            self._stream = sys.stdout

    def write(self, obj: Any) -> None:
        """Write one object as a line."""
        line = dumps(obj) + "\n"
        try:
            self._stream.write(line)
            self._stream.flush()
        except BrokenPipeError:
            raise OutputClosed from None
        self.count += 1

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise OutputClosed from None

    def close(self) -> None:
        """Finish the output: a file is renamed into place (see :meth:`OutputFile.commit`)."""
        if self.file is not None:
            self.file.commit()
            return
        with contextlib.suppress(ValueError):  # already closed
            self.flush()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        if self.file is not None and not self.file.keeps(error):
            self.file.discard()
            return
        self.close()


class OutputFile:
    """A file one run writes, so that no other run and no crash can spoil it.

    - It is locked (an advisory ``flock``, taken at once or refused with a :class:`UsageError`)
      until the run ends, so two runs never interleave their lines.
    - Without ``append`` the lines go to a temporary file in the same folder, renamed over the
      target by :meth:`commit`: until then the previous file (if any) stays as it was. A run
      that ends normally or stops at a bad record (``--on-error fail``: its output ends before
      the record) commits; Ctrl-C commits only when there was no previous file; a crash or any
      other error leaves the previous file (see :meth:`keeps`).
    - With ``append`` (``--resume``) the lines are added to the file in place, so a crash keeps
      everything written before it.

    Special files (``/dev/null``, a FIFO) are written directly, without lock or rename.
    """

    def __init__(
        self,
        path: Path,
        *,
        append: bool = False,
        inputs: Iterable[str | Path | None] = (),
        option: str = "-o",
    ) -> None:
        self.shown = str(path)
        self.path = path.resolve()  # through symbolic links: the file they point to is replaced
        if self.path.is_dir():
            raise UsageError(f"{option} {path}: is a folder; give a file name")
        if not self.path.parent.is_dir():
            raise UsageError(f"{option} {path}: folder {path.parent} does not exist")
        for source in inputs:
            if source is not None and same_file(self.path, source):
                raise UsageError(
                    f"{option} {path} is the input file {display_name(source)}: writing it "
                    "would destroy the input; write elsewhere"
                )
        self.existed = self.path.exists() and self.path.stat().st_size > 0
        self.temp: Path | None = None
        self._lock: int | None = None
        self._done = False
        if self.path.exists() and not self.path.is_file():
            self.stream: IO[str] = self.path.open("a" if append else "w", encoding="utf-8")
            return
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise UsageError(f"{option} {path}: not writable")
        self._lock = _lock(self.path, option)
        _remove_stale_temps(self.path)
        try:
            if append:
                self.stream = self.path.open("a", encoding="utf-8")
            else:
                handle, temp = tempfile.mkstemp(
                    dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
                )
                self.temp = Path(temp)
                self.stream = os.fdopen(handle, "w", encoding="utf-8")
        except OSError as error:
            self._release()
            raise UsageError(f"{option} {path}: cannot write: {error.strerror}") from None

    def keeps(self, error: BaseException | None) -> bool:
        """Whether a run that ended with ``error`` (None: normally) commits its output."""
        if error is None or isinstance(error, RecordError):
            return True
        return isinstance(error, KeyboardInterrupt) and not self.existed

    def commit(self) -> None:
        """Flush to disk and put the output in place of the target; release the lock."""
        if self._done:
            return
        self._done = True
        try:
            self.stream.flush()
            if self.temp is not None:
                os.fsync(self.stream.fileno())
            self.stream.close()
            if self.temp is not None:
                self.temp.chmod(_new_file_mode(self.path))
                os.replace(self.temp, self.path)
        finally:
            self._release()

    def discard(self) -> None:
        """Leave the target as it was before the run (an appended file keeps its new lines)."""
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError, ValueError):
            self.stream.close()
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)
        if not self.existed and self._lock is not None:
            with contextlib.suppress(OSError):
                if self.path.stat().st_size == 0:
                    self.path.unlink()  # empty before the run, or created for the lock
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the lock
            self._lock = None


def _lock(path: Path, option: str) -> int:
    """A descriptor of ``path`` (created when absent) holding an exclusive advisory lock."""
    import fcntl

    for _ in range(3):
        try:
            handle = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
        except OSError as error:
            raise UsageError(f"{option} {path}: cannot write: {error.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise UsageError(
                f"{option} {path}: another omnirm run is writing this file; wait for it to "
                "finish, or write elsewhere"
            ) from None
        with contextlib.suppress(OSError):
            if os.fstat(handle).st_ino == os.stat(path).st_ino:
                return handle
        os.close(handle)  # the file was replaced while we locked it: lock the new one
    raise UsageError(f"{option} {path}: the file keeps being replaced by another program")


def _temp_name(path: Path) -> re.Pattern[str]:
    """The names :class:`OutputFile` gives ``path``'s temporary files (``tempfile``'s eight
    random characters between the target's name and ``.tmp``)."""
    return re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")


def _remove_stale_temps(path: Path) -> None:
    """Remove temporary files of ``path`` that earlier runs left (killed by SIGKILL, or the
    machine went down): only the holder of ``path``'s lock writes one, and that is us now."""
    pattern = _temp_name(path)
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _new_file_mode(path: Path) -> int:
    """The permissions the output gets: the previous file's, else the umask's default."""
    with contextlib.suppress(OSError):
        return stat.S_IMODE(path.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def same_file(path: Path, source: str | Path) -> bool:
    """Whether the regular file ``path`` is ``source`` (``-``: what standard input reads)."""
    try:
        target = path.stat()
        if not stat.S_ISREG(target.st_mode):
            return False
        other = os.fstat(sys.stdin.fileno()) if str(source) == STDIN else Path(source).stat()
    except (OSError, ValueError):  # no such file, or a standard input without a descriptor
        return False
    return (target.st_dev, target.st_ino) == (other.st_dev, other.st_ino)


def complete_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` for every complete line of a file being resumed; a last line
    cut off by an interruption is removed from the file, so appending continues cleanly."""
    complete = 0  # bytes up to the end of the last complete line
    with path.open("r+b") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                handle.truncate(complete)
                return
            complete += len(line)
            yield number, line


__all__ = [
    "MAX_RECORD_BYTES",
    "STDIN",
    "InvalidJson",
    "JsonlWriter",
    "OutputFile",
    "Sink",
    "complete_lines",
    "display_name",
    "dumps",
    "iter_json_lines",
    "open_input",
    "same_file",
]
