"""Outputs that ``--resume`` can continue without mixing scorers or inputs.

Every line ``score`` and ``bon`` write is stamped with two hashes: ``fingerprint``, a digest of
the scorer's fingerprint (:meth:`omnirm.runners.Runner.fingerprint`: model files, backbone,
``--criteria``, ``--normalize``, ``--tie-margin``, the judge's backend and settings …), and
``input``, a hash of the input record the line came from. A scored record carries them in
``scored_by``, an error record (``--on-error record``) in its ``error``.

``--resume`` reads them back and refuses, before writing anything: a line stamped by another
scorer or with no stamp (the file would mix two models); a line whose record id is in the input
with other content, or a scored line whose record is not in the input at all (the output was
written from another input). An input record is done when a line with its id and hash is
there. Lines are keyed by record id, or by line number for lines without one (``line 12``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from omnirm.errors import RecordError, UsageError
from omnirm.jsonl import InvalidJson, Sink, complete_lines
from omnirm.records import InvalidRecord, Record

Items = Iterable[tuple[int, Record | InvalidRecord]]


def value_hash(value: Any) -> str:
    """A stable hash of a JSON value (key order does not matter)."""
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()[:32]


def item_hash(item: Record | InvalidRecord) -> str:
    """The hash of the input an item was read from (the raw text of a line that is not JSON)."""
    if isinstance(item, Record):
        return value_hash(item.to_dict())
    if isinstance(item.error, InvalidJson):
        return value_hash({"raw": item.error.raw})
    return value_hash(item.value)


def item_key(item: Record | InvalidRecord) -> str:
    """How an item's output line is found again: its id, else ``line N``."""
    if isinstance(item, Record):
        return item.id
    value = item.value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return value["id"]
    return f"line {item.line}"


def line_key(line: dict[str, Any]) -> str | None:
    """The key of an output line (see :func:`item_key`)."""
    if isinstance(line.get("id"), str):
        return str(line["id"])
    error = line.get("error")
    if isinstance(error, dict) and isinstance(error.get("line"), int):
        return f"line {error['line']}"
    return None


def _stamp_of(line: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """The stamp of an output line and whether the line is a scored record (not an error)."""
    for field, scored in (("scored_by", True), ("error", False)):
        block = line.get(field)
        if isinstance(block, dict) and "fingerprint" in block:
            return block, scored
    return None, False


class ResumableOutput:
    """Writes stamped lines to ``sink``; with ``resume``, knows what ``path`` holds already.

    ``fingerprint`` identifies the scorer (a digest); ``provenance``, its ``scored_by`` block,
    names what differs when another scorer wrote the output; ``source`` names the input.
    ``previous`` are more files holding lines of the same output (the shards a stopped
    data-parallel run left), read and checked as ``path`` is.
    """

    def __init__(
        self,
        sink: Sink,
        fingerprint: str,
        *,
        path: Path | None = None,
        previous: Iterable[Path] = (),
        source: str = "the input",
        provenance: dict[str, Any] | None = None,
    ) -> None:
        self.sink = sink
        self.fingerprint = fingerprint
        self.provenance = provenance or {}
        self.source = source
        self.shown = str(path) if path is not None else "the output"
        self.done: dict[str, set[str | None]] = {}  # key → input hashes of its lines
        self.scored: dict[str, list[dict[str, Any]]] = {}  # key → its scored lines
        self._matched: set[str] = set()
        self.skipped = 0  # input items found done
        self._inputs: dict[str, str] = {}  # key → input hash, for records in flight
        self.path = path
        self._size = 0  # of the output before this run appended to it
        if path is not None:
            self._load(path)
            self._size = path.stat().st_size
        for other in previous:
            self._load(other)

    def __len__(self) -> int:
        return len(self.done)

    def _load(self, path: Path) -> None:
        for number, raw in complete_lines(path):
            if not raw.strip():
                continue
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                line = None
            if not isinstance(line, dict):
                raise RecordError("not a JSON object in the output being resumed",
                                  source=str(path), line=number)  # fmt: skip
            stamp, scored = _stamp_of(line)
            where = f"{path}:{number}"
            if stamp is None:
                raise UsageError(
                    f"{where}: no scorer fingerprint (scored_by.fingerprint): written by "
                    "another program or an older omnirm, --resume cannot tell who scored it; "
                    "write to a new file"
                )
            if stamp["fingerprint"] != self.fingerprint:
                raise UsageError(
                    f"{where}: scored by another scorer or with other settings "
                    f"({self._differences(stamp)}); --resume continues only with the same model "
                    "or judge and the same --criteria, --normalize, --tie-margin and judge "
                    "options; write to a new file"
                )
            key = line_key(line)
            if key is None:
                continue
            self.done.setdefault(key, set()).add(stamp.get("input"))
            if scored:
                self.scored.setdefault(key, []).append(line)

    def _differences(self, stamp: dict[str, Any]) -> str:
        differ = [
            f"{key} {stamp.get(key)!r} there, {value!r} now"
            for key, value in self.provenance.items()
            if key in stamp and stamp[key] != value
        ]
        return "; ".join(differ[:3]) or "the model or judge files changed since"

    def check_input(self, items: Items) -> None:
        """Refuse when scored lines of the output match no record of ``items`` (the whole
        input, read before anything is written): the output was written from another input."""
        if not self.scored:
            return
        present: dict[str, set[str]] = {}
        for _, item in items:
            if isinstance(item, Record):
                present.setdefault(item.id, set()).add(item_hash(item))
        for key, lines in self.scored.items():
            stamped = {line["scored_by"].get("input") for line in lines}
            if key not in present or not (None in stamped or present[key] & stamped):
                raise self._foreign(key)

    def check_all_matched(self) -> None:
        """After the input was read to its end (standard input cannot be read twice, for
        :meth:`check_input`): when scored lines of the output matched no input record, the lines
        this run appended are taken back out and the run refused."""
        foreign = next((key for key in self.scored if key not in self._matched), None)
        if foreign is None:
            return
        flush = getattr(self.sink, "flush", None)
        if flush is not None:
            flush()
        if self.path is not None:
            os.truncate(self.path, self._size)
        raise self._foreign(foreign)

    def _foreign(self, key: str) -> UsageError:
        return UsageError(
            f"{self.shown}: record {key!r} is not in {self.source} (or was different there): "
            "--resume continues the output of the same input; write to a new file"
        )

    def pending(self, items: Items) -> Iterator[tuple[int, Record | InvalidRecord]]:
        """The items whose lines are not in the output yet (see :meth:`is_done`)."""
        for line, item in items:
            if not self.is_done(line, item):
                yield line, item

    def is_done(self, line: int, item: Record | InvalidRecord) -> bool:
        """Whether the output has the item's line; refused when it was written from another
        version of the item. Items not done are remembered, to stamp their lines."""
        key, digest = item_key(item), item_hash(item)
        seen = self.done.get(key)
        if seen is None:
            self._inputs[key] = digest
            return False
        if digest not in seen and None not in seen:
            raise UsageError(
                f"{self.source}:{line}: record {key!r} differs from the one {self.shown} was "
                "scored from: --resume continues the output of the same input; write to a new "
                "file"
            )
        self._matched.add(key)
        self.skipped += 1
        return True

    def scored_line(self, key: str) -> dict[str, Any] | None:
        """The scored line a done record has in the output (None for an error line)."""
        lines = self.scored.get(key)
        return lines[0] if lines else None

    def write(self, obj: dict[str, Any]) -> None:
        """Stamp and write one scored record."""
        key = line_key(obj)
        # .get, not .pop: a record may have several lines (train r1 --stage rs keeps samples)
        stamp = {"fingerprint": self.fingerprint, "input": self._inputs.get(key or "")}
        self.sink.write({**obj, "scored_by": {**(obj.get("scored_by") or {}), **stamp}})

    @property
    def errors(self) -> Sink:
        """Where the error policy writes error records (``--on-error record``)."""
        return _ErrorLines(self)

    def write_error(self, obj: dict[str, Any]) -> None:
        """Stamp and write one error record, unless its key is in the output already (an
        error met again while resuming, such as a group that cannot be formed)."""
        key = line_key(obj)
        if key is not None and key in self.done:
            return
        stamp = {"fingerprint": self.fingerprint, "input": self._inputs.get(key or "")}
        self.sink.write({**obj, "error": {**obj["error"], **stamp}})


class _ErrorLines:
    def __init__(self, output: ResumableOutput) -> None:
        self.output = output

    def write(self, obj: Any) -> None:
        self.output.write_error(obj)
