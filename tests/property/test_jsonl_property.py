"""The JSONL reader on arbitrary bytes: values or located errors, never another exception."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from omnirm.errors import RecordError, UsageError
from omnirm.jsonl import InvalidJson, dumps, iter_json_lines
from omnirm.records import InvalidRecord, Record, iter_records
from tests.property.strategies import FRAGMENTS, json_values, record_like

_LINE_PIECES = st.sampled_from(
    [b"{", b"}", b"[", b"]", b'"', b",", b":", b"\r", b"\t", b" ", b"\xef\xbb\xbf", b"\xff",
     b"null", b"1e400", b"NaN", b'{"id": "a"}', b"\\u00", b"\x00"]
) | st.binary(max_size=8)  # fmt: skip
_lines = st.lists(st.lists(_LINE_PIECES, max_size=6).map(b"".join), max_size=8)


def _file(data: bytes) -> Path:
    handle = tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False)  # noqa: SIM115
    handle.write(data)
    handle.close()
    return Path(handle.name)


@given(_lines, st.booleans(), st.sampled_from([None, 1, 4, 16, 64]))
def test_any_bytes_give_values_or_located_errors(
    lines: list[bytes], final_newline: bool, max_bytes: int | None
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    path = _file(data)
    try:
        seen = list(iter_json_lines(path, max_bytes=max_bytes))
    finally:
        path.unlink()
    physical = data.split(b"\n")
    numbers = [number for number, _ in seen]
    assert numbers == sorted(set(numbers)) and all(1 <= n <= len(physical) for n in numbers)
    for number, value in seen:
        raw = physical[number - 1]
        if isinstance(value, RecordError):
            assert value.line == number and value.source == str(path)
            if max_bytes is not None and len(raw) > max_bytes:
                assert f"line has {len(raw)} bytes" in value.message
            elif isinstance(value, InvalidJson):
                assert value.raw == raw.decode("utf-8", errors="replace").rstrip("\r")
        else:
            assert max_bytes is None or len(raw) <= max_bytes
            json.dumps(value)
    # every line is read but the blank ones; an over-long line is refused unread, blank or not
    skipped = {
        i + 1
        for i, raw in enumerate(physical)
        if not raw.strip() and (max_bytes is None or len(raw) <= max_bytes)
    }
    assert set(numbers) == set(range(1, len(physical) + 1)) - skipped


@given(st.lists(json_values, max_size=6))
def test_json_values_read_back_unchanged(values: list[Any]) -> None:
    path = _file("".join(dumps(v) + "\n" for v in values).encode())
    try:
        read = [value for _, value in iter_json_lines(path, max_bytes=None)]
    finally:
        path.unlink()
    assert read == values


@given(st.lists(record_like | json_values, max_size=5), st.lists(st.sampled_from(FRAGMENTS)))
def test_records_or_error_records(objects: list[Any], garbage: list[str]) -> None:
    lines = [json.dumps(obj) for obj in objects] + ["".join(garbage)]
    path = _file("\n".join(lines).encode())
    try:
        items = list(iter_records(path))
    except UsageError:
        raise AssertionError("a readable file is no usage error") from None
    finally:
        path.unlink()
    for line, item in items:
        if isinstance(item, InvalidRecord):
            assert item.error.line == line
            error_record = item.to_error_record()
            assert error_record["error"]["line"] == line
            dumps(error_record)  # JSON-ready, whatever the line held
        else:
            assert isinstance(item, Record)
