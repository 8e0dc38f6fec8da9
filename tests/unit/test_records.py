from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from omnirm.errors import RecordError
from omnirm.records import (
    InvalidRecord,
    Record,
    infer_task,
    iter_records,
    parse_record,
    read_records,
)
from tests.conftest import make_record, write_jsonl

FULL: dict[str, Any] = {
    "id": "ti2t-0007",
    "task": "text_image_to_text",
    "prompt": [
        {"type": "text", "text": "What is odd in this picture?"},
        {"type": "image", "path": "media/cat.png", "note": "kept"},
    ],
    "criteria": "Prefer the answer that names the object, in one sentence.",
    "responses": [
        "A cat wearing a hat.",
        [{"type": "text", "text": "There is a hat on the cat, and it is red."}],
    ],
    "preference": 0,
    "source": {"dataset": "x", "row": 3},
    "rewards": [1.5, -0.25],
}


def test_round_trip_keeps_every_key_and_shape() -> None:
    original = copy.deepcopy(FULL)
    record = parse_record(original)
    assert record.to_dict() == FULL
    assert record.extra == {"source": {"dataset": "x", "row": 3}, "rewards": [1.5, -0.25]}
    assert isinstance(record.responses[0], str)  # a string response stays a string


def test_file_round_trip(tmp_path: Path) -> None:
    records = [FULL, make_record("b", preference="tie", criteria=None), make_record("c", x=1)]
    records = [{k: v for k, v in r.items() if v is not None} for r in records]
    path = write_jsonl(tmp_path / "in.jsonl", records)
    assert [r.to_dict() for r in read_records(path)] == records


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"id": 3}, "id", "expected a non-empty string"),
        ({"id": ""}, "id", "expected a non-empty string"),
        ({"responses": ["only one"]}, "responses", "at least 2"),
        ({"responses": "ab"}, "responses", "expected a list"),
        ({"responses": ["a", 5]}, "responses[1]", "expected a string or a list"),
        ({"responses": ["a", [{"type": "image"}]]}, "responses[1][0]", "needs a 'path'"),
        ({"responses": ["a", [{"type": "gif", "path": "x"}]]}, "responses[1][0].type", "unknown"),
        ({"responses": ["a", [{"type": "text", "text": 1}]]}, "responses[1][0].text", "string"),
        ({"preference": 2}, "preference", "out of range"),
        ({"preference": True}, "preference", "expected a response index"),
        ({"preference": "first"}, "preference", "expected a response index"),
        ({"responses": ["a", "b", "c"], "preference": "tie"}, "preference", "exactly 2"),
        ({"ranking": [0, 0]}, "ranking", "exactly once"),
        ({"ranking": [1, 0]}, "ranking", "preference is 0"),
        ({"gold_scores": [1.0]}, "gold_scores", "1 scores for 2"),
        ({"gold_scores": [0.0, 1.0]}, "gold_scores", "highest gold score"),
        ({"criteria": ["a"]}, "criteria", "expected a string"),
        ({"prompt": None}, "prompt", "missing"),
        ({"prompt": []}, "prompt", "empty list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "expected one of"),
    ],
)
def test_errors_name_the_field(overrides: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(RecordError) as caught:
        parse_record(make_record("bad-1", **overrides))
    error = caught.value
    assert error.field == field
    assert message in error.message
    if field != "id":
        assert error.record_id == "bad-1"


def test_error_message_has_file_line_id_and_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [make_record("ok"), make_record("r-2", preference=7)])
    items = list(iter_records(path))
    line, bad = items[1]
    assert line == 2 and isinstance(bad, InvalidRecord)
    assert str(bad.error) == (
        f"{path}:2: record 'r-2': preference: index 7 is out of range for 2 responses (0..1)"
    )
    with pytest.raises(RecordError, match="out of range"):
        list(read_records(path))


def test_invalid_json_and_non_object_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "prompt": "p", "responses": ["x", "y"]}\n\n{oops\n[1, 2]\n')
    items = list(iter_records(path))
    assert [line for line, _ in items] == [1, 3, 4]
    assert isinstance(items[0][1], Record)
    assert "invalid JSON" in str(items[1][1].error)  # type: ignore[union-attr]
    assert "expected a JSON object, got list" in str(items[2][1].error)  # type: ignore[union-attr]


def test_nan_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"id": "a", "prompt": "p", "responses": ["x", "y"], "gold_scores": [NaN, 1]}\n'
    )
    ((_, item),) = list(iter_records(path))
    assert isinstance(item, InvalidRecord)


def test_error_record_keeps_the_input() -> None:
    obj = make_record("x", preference=5, extra_key=1)
    try:
        parse_record(obj)
    except RecordError as error:
        out = InvalidRecord(4, error, obj).to_error_record()
    assert out["extra_key"] == 1 and out["preference"] == 5
    assert out["error"]["field"] == "preference"


@pytest.mark.parametrize(
    ("prompt", "responses", "task"),
    [
        ("p", ["a", "b"], "text_to_text"),
        (
            [{"type": "text", "text": "p"}, {"type": "image", "path": "i.png"}],
            ["a", "b"],
            "text_image_to_text",
        ),
        ([{"type": "video", "path": "v.mp4"}], ["a", "b"], "text_video_to_text"),
        (
            "p",
            [[{"type": "image", "path": "a.png"}], [{"type": "image", "path": "b.png"}]],
            "text_to_image",
        ),
        (
            [{"type": "image", "path": "s.png"}],
            [[{"type": "image", "path": "a.png"}], [{"type": "image", "path": "b.png"}]],
            "text_image_to_image",
        ),
        (
            "p",
            [[{"type": "mesh", "path": "a.glb"}], [{"type": "mesh", "path": "b.glb"}]],
            "text_to_3d",
        ),
        (
            "p",
            [[{"type": "audio", "path": "a.wav"}], [{"type": "audio", "path": "b.wav"}]],
            "text_to_audio",
        ),
    ],
)
def test_infer_task(prompt: Any, responses: Any, task: str) -> None:
    record = parse_record(make_record(prompt=prompt, responses=responses))
    assert infer_task(record) == task
    assert record.resolved_task == task


IMAGE = {"type": "image", "path": "a.png"}
MESH = {"type": "mesh", "path": "a.glb"}


@pytest.mark.parametrize(
    ("task", "prompt", "responses", "messages", "modality"),
    [
        (None, "p", ["a", "b"], None, "text"),
        (None, [{"type": "text", "text": "p"}, IMAGE], ["a", "b"], None, "image"),
        (None, "p", [[MESH], [MESH]], None, "3d"),
        (None, [{"type": "video", "path": "v.mp4"}], [[{"type": "audio", "path": "x.wav"}], "b"], None, "audio+video"),
        # the media of every turn of a history count
        (None, None, ["a", "b"], [{"role": "user", "content": [IMAGE]}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "and?"}], "image"),
        # a task naming its output medium wins over plain-string responses
        ("text_to_audio", "p", ["a.wav", "b.wav"], None, "audio"),
        ("text_to_3d", "p", [[IMAGE], [IMAGE]], None, "3d"),
        ("text_image_to_image", "p", ["a", "b"], None, "image"),
        ("text_image_to_text", "p", ["a", "b"], None, "text"),
    ],
)  # fmt: skip
def test_modality(
    task: str | None, prompt: Any, responses: Any, messages: Any, modality: str
) -> None:
    given = {"task": task, "prompt": prompt, "responses": responses, "messages": messages}
    record = parse_record(make_record(**given))
    assert record.modality == modality


def test_messages_instead_of_prompt() -> None:
    record = parse_record(
        make_record(
            prompt=None,
            messages=[
                {"role": "system", "content": "be kind"},
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "hi"},
                {"role": "user", "content": [{"type": "text", "text": "and now?"}]},
            ],
        )
    )
    assert record.prompt_parts() == [{"type": "text", "text": "and now?"}]
    assert "prompt" not in record.to_dict()


def test_split_prompt_takes_a_final_user_turn_only() -> None:
    turns = [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
    ]
    ends_with_user = parse_record(
        make_record(prompt=None, messages=[*turns, {"role": "user", "content": "and now?"}])
    )
    assert ends_with_user.split_prompt() == (
        list(enumerate(turns)),
        "and now?",
        "messages[3].content",
    )
    # a history that ends with the assistant has no prompt turn: every turn is history
    ends_with_assistant = parse_record(make_record(prompt=None, messages=turns))
    assert ends_with_assistant.split_prompt() == (list(enumerate(turns)), None, "prompt")
    assert ends_with_assistant.prompt_parts() == []
    with_prompt = parse_record(make_record(prompt="q", messages=turns[:2]))
    assert with_prompt.split_prompt() == (list(enumerate(turns[:2])), "q", "prompt")


def test_media_parts_lists_field_paths() -> None:
    record = parse_record(FULL)
    assert [where for where, _ in record.media_parts()] == ["prompt[1]"]


def test_reading_streams_in_constant_memory(tmp_path: Path) -> None:
    import tracemalloc

    big = "word " * 200
    path = write_jsonl(
        tmp_path / "big.jsonl",
        [make_record(f"r{i}", responses=[big, big], prompt=big) for i in range(20000)],
    )
    assert path.stat().st_size > 40_000_000
    tracemalloc.start()
    count = sum(1 for _, item in iter_records(path) if isinstance(item, Record))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 20000
    assert peak < 2_000_000  # a few records at a time, not the 40 MB file


def test_gold_scores_past_a_floats_range_are_a_record_error() -> None:
    """Found writing tests/property: an int too large for a float raised OverflowError."""
    with pytest.raises(RecordError, match="finite") as caught:
        parse_record(
            {"id": "a", "prompt": "p", "responses": ["x", "y"], "gold_scores": [10**400, 1]}
        )
    assert caught.value.field == "gold_scores" and caught.value.record_id == "a"
