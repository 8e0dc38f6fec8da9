"""Streaming JSONL input and output.

Reading is line by line in constant memory (a multi-GB file is never loaded whole). Writing keeps
the order it is given, refuses NaN and Infinity (they are not JSON), and flushes regularly so a
crash or Ctrl-C loses at most the last fraction of a second of output.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

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


def iter_json_lines(
    source: str | Path, *, name: str | None = None, max_bytes: int | None = MAX_RECORD_BYTES
) -> Iterator[tuple[int, Any | RecordError]]:
    """Yield ``(line_number, value)`` for each non-blank line of a JSONL source.

    A line that is not valid JSON, or longer than ``max_bytes`` (None: no limit), yields a
    located :class:`RecordError` instead of a value, so the caller decides whether to stop or
    go on. Line numbers start at 1.
    """
    shown = name or display_name(source)
    with open_input(source) as handle:
        for number, raw in enumerate(_lines(handle, max_bytes), start=1):
            if isinstance(raw, int):
                yield (
                    number,
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
                yield number, orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield number, RecordError(f"invalid JSON: {exc}", source=shown, line=number)


def _lines(handle: IO[bytes], max_bytes: int | None) -> Iterator[bytes | int]:
    """The lines of ``handle``; a line longer than ``max_bytes`` (newline not counted) comes
    out as its length, read past in blocks rather than held in memory."""
    while True:
        raw = handle.readline() if max_bytes is None else handle.readline(max_bytes + 1)
        if not raw:
            return
        if max_bytes is None or len(raw) <= max_bytes or raw.endswith(b"\n"):
            yield raw
            continue
        size = len(raw)
        while not raw.endswith(b"\n"):
            raw = handle.readline(1 << 20)
            if not raw:
                break
            size += len(raw)
        yield size - raw.endswith(b"\n")


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


class JsonlWriter:
    """Write JSON objects one per line to a file or to standard output (``-`` or ``None``).

    Use as a context manager. Output is flushed at least every ``flush_seconds`` and on close, so
    what has been written survives an interruption. ``append`` adds to an existing file (resume).
    """

    def __init__(
        self, target: str | Path | None = None, *, flush_seconds: float = 0.5, append: bool = False
    ) -> None:
        self.target = STDIN if target is None else str(target)
        self.count = 0
        self._flush_seconds = flush_seconds
        self._last_flush = time.monotonic()
        self._stream: IO[str]
        self._owned = self.target != STDIN
        if self._owned:
            path = Path(self.target)
            if path.parent and not path.parent.exists():
                raise UsageError(f"{path}: folder {path.parent} does not exist")
            self._stream = path.open("a" if append else "w", encoding="utf-8")
        else:
            self._stream = sys.stdout

    def write(self, obj: Any) -> None:
        """Write one object as a line."""
        line = dumps(obj) + "\n"
        try:
            self._stream.write(line)
            now = time.monotonic()
            if now - self._last_flush >= self._flush_seconds:
                self._stream.flush()
                self._last_flush = now
        except BrokenPipeError:
            raise OutputClosed from None
        self.count += 1

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise OutputClosed from None

    def close(self) -> None:
        with contextlib.suppress(ValueError):  # already closed
            self.flush()
        if self._owned:
            self._stream.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def completed_ids(path: str | Path) -> set[str]:
    """Ids of the complete records in an output file, for ``--resume``.

    A last line cut off by an interruption is removed from the file, so appending continues
    cleanly; every complete line must be a JSON object.
    """
    file = Path(path)
    if not file.exists():
        return set()
    ids: set[str] = set()
    complete = 0  # bytes up to the end of the last complete line
    with file.open("r+b") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                handle.truncate(complete)  # the cut-off last line; appending starts clean
                break
            complete += len(line)
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise RecordError(
                    "invalid JSON in the output being resumed", source=str(file), line=number
                ) from None
            if isinstance(value, dict) and isinstance(value.get("id"), str):
                ids.add(value["id"])
    return ids


def write_jsonl(objects: Any, target: str | Path | None = None) -> int:
    """Write an iterable of objects as JSONL; returns how many were written."""
    with JsonlWriter(target) as writer:
        for obj in objects:
            writer.write(obj)
        return writer.count


def read_json_or_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, object)`` from a JSON array file or a JSONL file, whichever ``path`` is.

    Used by converters whose sources come either way (LLaMA-Factory datasets are often one JSON
    array). Index is the 1-based line number for JSONL and the 1-based position for an array.
    """
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip()
    if head.startswith(b"["):
        try:
            data = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise RecordError(f"invalid JSON: {exc}", source=str(path)) from None
        yield from enumerate(data, start=1)
        return
    for number, value in iter_json_lines(path):
        if isinstance(value, RecordError):
            raise value
        yield number, value


__all__ = [
    "MAX_RECORD_BYTES",
    "STDIN",
    "JsonlWriter",
    "display_name",
    "dumps",
    "iter_json_lines",
    "open_input",
    "read_json_or_jsonl",
    "write_jsonl",
]
