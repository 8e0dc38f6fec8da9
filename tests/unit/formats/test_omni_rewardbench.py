"""Omni-RewardBench → omnirm records, on a miniature of both layouts (see omni_bench.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from omnirm.errors import RecordError, UsageError
from omnirm.formats import read_omni_rewardbench, select_tasks
from omnirm.records import parse_record
from tests.unit.formats.omni_bench import copy_json_bench, make_hub_bench, png_bytes


def _split(items: list[Any]) -> tuple[list[dict[str, Any]], list[RecordError]]:
    records = [i for i in items if isinstance(i, dict)]
    errors = [i for i in items if isinstance(i, RecordError)]
    assert len(records) + len(errors) == len(items)
    return records, errors


@pytest.fixture
def json_bench(tmp_path: Path) -> Path:
    return copy_json_bench(tmp_path)


def test_json_layout_all_nine_tasks(json_bench: Path) -> None:
    records, errors = _split(list(read_omni_rewardbench(json_bench)))
    assert len(records) == 18
    for record in records:
        parse_record(record)  # every record is valid
    assert Counter(r["task"] for r in records) == {
        "text_to_text": 3,
        "text_image_to_text": 2,
        "text_video_to_text": 1,
        "text_audio_to_text": 2,
        "text_to_image": 2,
        "text_to_video": 2,
        "text_to_audio": 2,
        "text_to_3d": 2,
        "text_image_to_image": 2,
    }
    assert sum(r["preference"] == "tie" for r in records) == 4
    # output order: the benchmark's task order, rows in file order
    assert [r["id"] for r in records[:4]] == [
        "text_to_text-1",
        "text_to_text-1-2",  # the same pair under a second criterion: its id made unique
        "text_to_text-2",
        "text_image_to_text-7",
    ]
    # the null criteria_preference is a located error, and the stream went on
    (error,) = errors
    assert error.source is not None and error.source.endswith("text_video_to_text_preferences.json")
    assert (error.line, error.record_id, error.field) == (
        1,
        "text_video_to_text-3",
        "criteria_preference",
    )


def test_record_shapes_per_task(json_bench: Path) -> None:
    by_id = {r["id"]: r for r in read_omni_rewardbench(json_bench) if isinstance(r, dict)}
    t2t = by_id["text_to_text-1"]
    assert t2t["models"] == ["gpt-4o", "qwen2.5-7b-instruct"]
    assert t2t["source_id"] == "1" and t2t["preference"] == 0
    assert by_id["text_to_text-1-2"]["preference"] == "tie"
    assert "criteria" not in by_id["text_to_text-2"]  # null criteria: general quality

    ti2t = by_id["text_image_to_text-7"]
    assert ti2t["prompt"] == [
        {"type": "text", "text": "What is unusual about this picture?"},
        {"type": "image", "path": "media_data/text_image_to_text/7.jpg"},
    ]
    assert ti2t["preference"] == 1  # "Response2 " read as response2
    assert ti2t["responses"][1] == "The cat is wearing a small red hat."

    assert by_id["text_video_to_text-4"]["prompt"][1]["type"] == "video"
    assert by_id["text_audio_to_text-11"]["prompt"][1] == {
        "type": "audio",
        "path": "media_data/text_audio_to_text/11.wav",
    }
    assert by_id["text_to_image-21"]["responses"] == [
        [{"type": "image", "path": "media_data/text_to_image/21_a.png"}],
        [{"type": "image", "path": "media_data/text_to_image/21_b.png"}],
    ]
    # an absolute path from the authors' machine is re-rooted at media_data/
    assert by_id["text_to_video-31"]["responses"][0] == [
        {"type": "video", "path": "media_data/text_to_video/31_a.mp4"}
    ]
    assert by_id["text_to_audio-41"]["responses"][1][0]["type"] == "audio"
    t23d = by_id["text_to_3d-51"]
    assert t23d["task"] == "text_to_3d"
    assert t23d["responses"][0] == [{"type": "image", "path": "media_data/text_to_3D/51_a.png"}]
    ti2i = by_id["text_image_to_image-61"]
    assert ti2i["prompt"][1] == {
        "type": "image",
        "path": "media_data/text_image_to_image/61_src.png",
    }
    assert ti2i["responses"][1] == [
        {"type": "image", "path": "media_data/text_image_to_image/61_b.png"}
    ]


def test_hub_parquet_layout_gives_the_same_records(tmp_path: Path, json_bench: Path) -> None:
    from_json = list(read_omni_rewardbench(json_bench))
    from_hub = list(read_omni_rewardbench(make_hub_bench(tmp_path)))
    records_json, errors_json = _split(from_json)
    records_hub, errors_hub = _split(from_hub)
    assert records_hub == records_json
    assert [(e.line, e.record_id, e.field) for e in errors_hub] == [
        (e.line, e.record_id, e.field) for e in errors_json
    ]
    assert errors_hub[0].source is not None
    assert errors_hub[0].source.endswith("text_video_to_text/test-00000-of-00001.parquet")
    # the embedded bytes were not needed: nothing was extracted
    assert not (tmp_path / "hub_bench" / "media_extracted").exists()


def test_embedded_bytes_are_extracted_once(tmp_path: Path) -> None:
    bench = make_hub_bench(tmp_path, with_paths=False)
    records = [
        r for r in read_omni_rewardbench(bench, tasks="T2I,TA2T,TI2I") if isinstance(r, dict)
    ]
    assert len(records) == 6
    t2i = records[2]  # task order: TA2T (2 records), T2I, TI2I
    assert t2i["task"] == "text_to_image"
    path = t2i["responses"][0][0]["path"]
    assert path.startswith("media_extracted/") and path.endswith(".png")
    assert (bench / path).read_bytes() == png_bytes(21 * 4 + 1)  # response1 sits at column 1
    audio = records[0]["prompt"][1]["path"]
    assert audio.endswith(".wav") and (bench / audio).is_file()
    files = sorted((bench / "media_extracted").iterdir())
    assert len(files) == 2 + 2 * 2 + 2 * 3  # one per embedded medium, named by content hash
    stamps = [f.stat().st_mtime_ns for f in files]
    again = [r for r in read_omni_rewardbench(bench, tasks="T2I,TA2T,TI2I") if isinstance(r, dict)]
    assert again == records
    assert [f.stat().st_mtime_ns for f in sorted((bench / "media_extracted").iterdir())] == stamps


def test_extract_dir_and_absolute_paths(tmp_path: Path) -> None:
    bench = make_hub_bench(tmp_path, with_paths=False)
    elsewhere = tmp_path / "extracted"
    (record, _) = [r for r in read_omni_rewardbench(bench, tasks="T2I", extract_dir=elsewhere)]
    path = Path(record["responses"][0][0]["path"])  # outside the bench: absolute
    assert path.is_absolute() and path.parent == elsewhere.absolute()
    json_bench = copy_json_bench(tmp_path)
    (record, _) = list(read_omni_rewardbench(json_bench, tasks="T2I", absolute_paths=True))
    assert record["responses"][0][0]["path"] == str(
        (json_bench / "media_data/text_to_image/21_a.png").absolute()
    )


def test_task_selection(json_bench: Path) -> None:
    assert [t.abbr for t in select_tasks("t2t, TI2I,text_to_3D")] == ["T2T", "T23D", "TI2I"]
    assert [t.config for t in select_tasks(["text_to_3d"])] == ["text_to_3D"]
    assert len(select_tasks(None)) == 9
    with pytest.raises(UsageError, match="unknown task 'T2X'"):
        select_tasks("T2T,T2X")
    records = [
        r for r in read_omni_rewardbench(json_bench, tasks="TI2T,T2A") if isinstance(r, dict)
    ]
    assert {r["task"] for r in records} == {"text_image_to_text", "text_to_audio"}


def test_single_file_source(json_bench: Path) -> None:
    items = list(read_omni_rewardbench(json_bench / "text_to_3D_preferences.json"))
    assert [i["id"] for i in items if isinstance(i, dict)] == ["text_to_3d-51", "text_to_3d-52"]
    with pytest.raises(UsageError, match="not selected"):
        read_omni_rewardbench(json_bench / "text_to_3D_preferences.json", tasks="T2T")


def test_unzipped_media_and_missing_data(tmp_path: Path) -> None:
    bench = copy_json_bench(tmp_path, media_data=False)
    (bench / "media_data.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(UsageError, match=r"media_data\.zip is not unzipped"):
        read_omni_rewardbench(bench)
    # text-only tasks need no media
    assert len([r for r in read_omni_rewardbench(bench, tasks="T2T")]) == 3
    (bench / "text_to_audio_preferences.json").unlink()
    with pytest.raises(UsageError, match="no data for text_to_audio"):
        read_omni_rewardbench(bench, tasks="T2T,T2A")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="no data for"):
        read_omni_rewardbench(empty)
    with pytest.raises(UsageError, match="no such file or folder"):
        read_omni_rewardbench(tmp_path / "nowhere")


def test_missing_task_is_skipped_with_a_warning_when_not_named(
    json_bench: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (json_bench / "text_to_audio_preferences.json").unlink()
    records = [r for r in read_omni_rewardbench(json_bench) if isinstance(r, dict)]
    assert len(records) == 16
    assert "no data for text_to_audio" in capsys.readouterr().err


def test_ids_that_already_name_the_task_are_kept(tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    row = {
        "prompt": "Say hello.",
        "response1": "Hello!",
        "response2": "Go away.",
        "criteria_preference": "response1",
    }
    rows = [dict(row, id="text_to_text_0005"), dict(row, id=None), dict(row, id=5)]
    (bench / "text_to_text.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [r["id"] for r in read_omni_rewardbench(bench) if isinstance(r, dict)] == [
        "text_to_text_0005",
        "text_to_text-row2",
        "text_to_text-5",
    ]


@pytest.mark.parametrize("path", [".", "./", "/", "..", "media_data/.."])
def test_a_media_path_that_names_no_file_is_a_located_error(path: str, tmp_path: Path) -> None:
    """Found by tests/property: ``image_path: "."`` raised IndexError."""
    source = tmp_path / "text_image_to_text.jsonl"
    row = {"prompt": "q", "response1": "a", "response2": "b", "criteria_preference": "tie"}
    source.write_text(json.dumps({**row, "image_path": path}) + "\n")
    (error,) = read_omni_rewardbench(source)
    assert isinstance(error, RecordError)
    assert error.field == "image_path" and error.line == 1 and repr(path) in error.message
