"""The format registry and the helpers the converters share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from omnirm.errors import RecordError, UsageError
from omnirm.formats import SOURCE_FORMATS, TARGET_FORMATS, SourceName, TargetName
from omnirm.formats._common import UniqueIds, extra_keys, is_swapped, iter_rows


def test_registry_matches_the_cli_choices() -> None:
    assert [n.value for n in SourceName] == list(SOURCE_FORMATS)
    assert [n.value for n in TargetName] == list(TARGET_FORMATS)
    for name, fmt in SOURCE_FORMATS.items():
        assert fmt.name == name and fmt.description and callable(fmt.reader)
    for name, target in TARGET_FORMATS.items():
        assert target.name == name and target.description and callable(target.writer)


def test_importing_the_formats_is_light() -> None:
    code = (
        "import sys, omnirm.formats, omnirm.cli.data_convert; "
        "print(sorted(m for m in ('torch', 'transformers', 'pyarrow', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unique_ids() -> None:
    ids = UniqueIds()
    assert [ids(x) for x in ["a", "b", "a", "a-2", "a", "b"]] == [
        "a",
        "b",
        "a-2",
        "a-2-2",
        "a-3",
        "b-2",
    ]


def test_is_swapped_is_deterministic_and_balanced() -> None:
    assert not any(is_swapped(f"r{i}", None) for i in range(50))
    flags = [is_swapped(f"r{i}", 7) for i in range(1000)]
    assert flags == [is_swapped(f"r{i}", 7) for i in range(1000)]
    assert 400 < sum(flags) < 600


def test_extra_keys_rename_record_fields() -> None:
    row = {"id": 1, "prompt": "p", "task": "t", "margin": 1, "responses": ["x"], "preference": 2}
    assert extra_keys(row, {"id", "prompt"}) == {
        "task": "t",
        "margin": 1,
        "source_responses": ["x"],
        "source_preference": 2,
    }


def test_iter_rows_reads_arrays_and_jsonl(tmp_path: Path) -> None:
    array = tmp_path / "a.json"
    array.write_text('\n  [{"x": 1}, {"x": 2}]')
    assert list(iter_rows(array)) == [(1, {"x": 1}), (2, {"x": 2})]
    lines = tmp_path / "b.jsonl"
    lines.write_text('{"x": 1}\n\nnot json\n{"x": 3}\n')
    rows = list(iter_rows(lines))
    assert rows[0] == (1, {"x": 1}) and rows[2] == (4, {"x": 3})
    assert rows[1][0] == 3 and isinstance(rows[1][1], RecordError)
    broken = tmp_path / "c.json"
    broken.write_text('[{"x": 1},')
    with pytest.raises(RecordError, match="invalid JSON"):
        list(iter_rows(broken))
    with pytest.raises(UsageError, match="is a folder"):
        iter_rows(tmp_path)
