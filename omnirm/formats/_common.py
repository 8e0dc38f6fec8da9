"""Small helpers the converters share: reading rows, ids, validation, pair order, extra keys."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from omnirm.errors import RecordError, UsageError
from omnirm.jsonl import STDIN, display_name, iter_json_lines
from omnirm.records import KNOWN_FIELDS, TIE, Content, Record, parse_record

#: What a reader yields: a valid omnirm record as a dict, or a located error for one source row.
Item = dict[str, Any] | RecordError


def iter_rows(source: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(number, value)`` for each row of a JSON array file or a JSONL file (or ``-``).

    ``number`` is the line for JSONL and the 1-based position for a JSON array (which is loaded
    whole: use JSONL for very large files). A JSONL line that is not JSON comes out as a located
    :class:`RecordError` in place of the value, so the stream goes on. A missing file raises
    :class:`UsageError` at once, not on the first row.
    """
    shown = display_name(source)
    if str(source) == STDIN:
        return iter_json_lines(source, name=shown)
    path = Path(source)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, expected a JSON or JSONL file")
    if _starts_with_bracket(path):
        return _array_rows(path, shown)
    return iter_json_lines(source, name=shown)


def _array_rows(path: Path, shown: str) -> Iterator[tuple[int, Any]]:
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"invalid JSON: {exc}", source=shown) from None
    if not isinstance(data, list):
        raise RecordError("expected a JSON array of objects", source=shown)
    yield from enumerate(data, start=1)


def _starts_with_bracket(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(1024).lstrip(b" \t\r\n\xef\xbb\xbf")
    return head.startswith(b"[")


def file_stem(source: str | Path) -> str:
    """The stem that derived ids start with (``stdin`` for ``-``)."""
    return "stdin" if str(source) == STDIN else Path(source).stem


class UniqueIds:
    """Hands out ids that are unique in one output stream.

    The first use of an id keeps it; a repeat gets ``-2``, ``-3`` … appended (skipping any that
    are taken), so the result is stable for a given input order.
    """

    def __init__(self) -> None:
        self._used: dict[str, int] = {}

    def __call__(self, wanted: str) -> str:
        count = self._used.get(wanted, 0)
        if count == 0:
            self._used[wanted] = 1
            return wanted
        while True:
            count += 1
            candidate = f"{wanted}-{count}"
            if candidate not in self._used:
                self._used[wanted] = count
                self._used[candidate] = 1
                return candidate


def source_id(value: Any) -> str | None:
    """A source row's own id as a string, or None when it has none (null, empty, not a scalar)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        text = str(value).strip()
        return text or None
    return None


def finish(obj: dict[str, Any], *, source: str, line: int) -> Item:
    """Validate a converted record: its canonical dict, or the located error."""
    try:
        return parse_record(obj).to_dict()
    except RecordError as error:
        return error.located(source=source, line=line)


def convert_rows(
    rows: Iterator[tuple[int, Any]],
    build: Callable[[dict[str, Any], str], dict[str, Any]],
    *,
    shown: str,
    stem: str,
) -> Iterator[Item]:
    """Turn source rows into records with ``build(row, record_id)``, one item per row.

    Ids are the row's own (made unique), else ``STEM-LINE``. A row that is not an object, or
    that ``build`` rejects with a :class:`RecordError`, comes out as that located error.
    """
    ids = UniqueIds()
    for line, row in rows:
        if isinstance(row, RecordError):
            yield row
            continue
        if not isinstance(row, dict):
            yield RecordError(
                f"expected a JSON object, got {type(row).__name__}", source=shown, line=line
            )
            continue
        record_id = ids(source_id(row.get("id")) or f"{stem}-{line}")
        try:
            record = build(row, record_id)
        except RecordError as error:
            yield error.located(source=shown, line=line, record_id=record_id)
            continue
        yield finish(record, source=shown, line=line)


def is_swapped(record_id: str, seed: int | None) -> bool:
    """Whether ``--shuffle-seed`` puts the rejected response first for this record.

    A hash of (seed, id), so the choice is deterministic, independent of file order, and about
    half the records get each order. ``None`` (no shuffling) never swaps.
    """
    if seed is None:
        return False
    digest = hashlib.blake2b(f"{seed}\x00{record_id}".encode(), digest_size=8).digest()
    return bool(digest[0] & 1)


def ordered_pair(
    record_id: str, chosen: Content, rejected: Content, seed: int | None
) -> tuple[list[Content], int]:
    """``(responses, preference)`` for a chosen/rejected pair, shuffled by ``seed`` if given."""
    if is_swapped(record_id, seed):
        return [rejected, chosen], 1
    return [chosen, rejected], 0


def extra_keys(row: dict[str, Any], consumed: Iterable[str]) -> dict[str, Any]:
    """The row's keys a converter did not interpret, to pass through unchanged.

    ``task`` keeps its name; a key that is an omnirm record field would change the record's
    meaning, so it is renamed ``source_<key>``.
    """
    skip = set(consumed)
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in skip:
            continue
        if key in _RECORD_FIELDS and key != "task":
            out[f"source_{key}"] = value
        else:
            out[key] = value
    return out


_RECORD_FIELDS = frozenset(KNOWN_FIELDS)


def chosen_and_rejected(record: Record) -> tuple[Content, Content]:
    """The preferred and the other response of a labelled pair, for exporting.

    Raises :class:`RecordError` explaining why a record cannot be a chosen/rejected pair: not
    two responses, a tie, or no label.
    """
    if record.num_responses != 2:
        raise RecordError(
            f"has {record.num_responses} responses; a chosen/rejected pair needs exactly 2",
            field="responses",
        )
    if record.preference == TIE:
        raise RecordError(
            "is a tie: a chosen/rejected pair needs one response preferred over the other",
            field="preference",
        )
    best: int | None = record.preference if isinstance(record.preference, int) else None
    if best is None and record.ranking is not None:
        best = record.ranking[0]
    if best is None and record.gold_scores is not None:
        first, second = record.gold_scores
        if first == second:
            raise RecordError(
                "has equal gold scores (a tie): a chosen/rejected pair needs one preferred",
                field="gold_scores",
            )
        best = 0 if first > second else 1
    if best is None:
        raise RecordError(
            "has no label (preference, ranking or gold_scores): cannot tell chosen from rejected",
            field="preference",
        )
    return record.responses[best], record.responses[1 - best]


def is_text(content: Content) -> bool:
    """True for a string or a list of text parts only."""
    return isinstance(content, str) or all(part["type"] == "text" for part in content)


__all__ = [
    "Item",
    "UniqueIds",
    "chosen_and_rejected",
    "extra_keys",
    "file_stem",
    "finish",
    "is_swapped",
    "is_text",
    "iter_rows",
    "ordered_pair",
    "source_id",
]
