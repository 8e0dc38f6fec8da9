"""Every converter of ``omnirm.formats`` on arbitrary JSON-ish rows: valid records or located
errors, never another exception; every writer on valid records: rows or errors, and the rows
read back without one."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from omnirm.errors import RecordError, UsageError
from omnirm.formats import SOURCE_FORMATS, TARGET_FORMATS
from omnirm.formats.llamafactory import read_llamafactory, write_llamafactory
from omnirm.formats.omni_rewardbench import read_omni_rewardbench
from omnirm.formats.pairs import read_pairs, write_pairs
from omnirm.formats.prd import LFQA_FILE, read_prd_lfqa, read_prd_vicuna80
from omnirm.jsonl import dumps
from omnirm.records import parse_record
from tests.property.strategies import (
    json_values,
    lfqa_rows,
    llamafactory_rows,
    omni_rows,
    pairs_rows,
    suite_rows,
    valid_records,
    vicuna_questions,
    vicuna_ratings,
)

_rows = st.lists(st.one_of(json_values, json_values), max_size=4)


def _write(path: Path, rows: list[Any], array: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if array:
        path.write_text(json.dumps(rows))
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _check(read: Callable[[], Iterator[Any]]) -> list[dict[str, Any]]:
    """The records a reader gives (each valid and JSON-ready); its errors are located."""
    try:
        items = list(read())
    except (RecordError, UsageError):
        return []  # a whole-file error (a JSON array that is not one, a missing layout)
    records = []
    for item in items:
        if isinstance(item, RecordError):
            assert str(item) and (item.line is not None or item.source is not None)
            continue
        assert parse_record(item).to_dict() == item
        dumps(item)
        records.append(item)
    return records


def test_every_converter_is_covered() -> None:
    assert set(SOURCE_FORMATS) == {
        "omni-rewardbench", "llamafactory", "pairs", "prd-lfqa", "prd-vicuna80",
    }  # fmt: skip
    assert set(TARGET_FORMATS) == {"llamafactory", "pairs"}


@given(st.lists(llamafactory_rows | json_values, max_size=4), st.booleans(), st.booleans())
def test_llamafactory_rows(rows: list[Any], array: bool, flip: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = _write(Path(folder) / "lf.json", rows, array)
        _check(lambda: read_llamafactory(path, shuffle_seed=0, flip_generation=flip))


@given(st.lists(pairs_rows | json_values, max_size=4), st.booleans())
def test_pairs_rows(rows: list[Any], array: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = _write(Path(folder) / "pairs.jsonl", rows, array)
        _check(lambda: read_pairs(path, shuffle_seed=1))


@given(
    st.lists(omni_rows | json_values, max_size=4),
    st.sampled_from(["text_to_text", "text_image_to_text", "text_to_image", "text_to_3D"]),
    st.booleans(),
)
def test_omni_rewardbench_rows(rows: list[Any], task: str, absolute: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = _write(Path(folder) / f"{task}.jsonl", rows)
        _check(lambda: read_omni_rewardbench(path, absolute_paths=absolute))


@given(st.lists(lfqa_rows | json_values, max_size=4))
def test_prd_lfqa_rows(rows: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _write(Path(folder) / LFQA_FILE, rows)
        _check(lambda: read_prd_lfqa(Path(folder)))


@given(
    st.lists(vicuna_questions | json_values, max_size=4),
    st.lists(vicuna_questions | json_values, max_size=4),
    st.lists(vicuna_ratings | json_values, max_size=4),
)
def test_prd_vicuna80_rows(questions: list[Any], answers: list[Any], ratings: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _write(root / "prompts" / "vicuna_questions.jsonl", questions)
        _write(root / "generations" / "answer_x.jsonl", answers)  # y has no answers file
        name = "answer_x-vs-answer_y-human-reviewer_threeclass.jsonl"
        _write(root / "ratings-human" / name, ratings)
        _check(lambda: read_prd_vicuna80(root))


@given(st.lists(valid_records(), max_size=3), st.sampled_from(sorted(TARGET_FORMATS)))
def test_writers_on_valid_records(records: list[dict[str, Any]], target: str) -> None:
    writer = TARGET_FORMATS[target].writer
    try:
        rows = list(writer(parse_record(r) for r in records))
    except (RecordError, UsageError) as error:
        raise AssertionError(f"a writer reports per record, it raised {error!r}") from None
    assert len(rows) == len(records)
    exported = [row for row in rows if not isinstance(row, RecordError)]
    for row in rows:
        if isinstance(row, RecordError):
            assert row.record_id is not None and row.message
        else:
            dumps(row)
    reader = {"pairs": read_pairs, "llamafactory": read_llamafactory}[target]
    with tempfile.TemporaryDirectory() as folder:
        path = _write(Path(folder) / "exported.jsonl", exported)
        _check(lambda: reader(path))


@given(st.lists(valid_records(), max_size=3))
def test_trl_rows_name_an_image_per_placeholder(records: list[dict[str, Any]]) -> None:
    for row in write_pairs(parse_record(r) for r in records):
        if isinstance(row, RecordError) or isinstance(row["prompt"], str):
            continue
        placeholders = [
            part
            for message in row["prompt"]
            if isinstance(message["content"], list)
            for part in message["content"]
            if part == {"type": "image"}
        ]
        assert len(placeholders) == len(row.get("images", []))
    list(write_llamafactory(parse_record(r) for r in records))


@given(
    st.lists(suite_rows | json_values, max_size=4),
    st.sampled_from(["rewardbench", "rewardbench2", "vl-rewardbench", "multimodal-rewardbench"]),
    st.booleans(),
)
def test_benchmark_suite_rows(rows: list[Any], suite: str, array: bool) -> None:
    """The suite readers (``omnirm bench --suite``) convert the same way, from one file."""
    from omnirm.bench.suites import read_suite_items

    with tempfile.TemporaryDirectory() as folder:
        path = _write(Path(folder) / "rows.jsonl", rows, array)
        _check(lambda: read_suite_items(suite, path))
