"""LLaMA-Factory sharegpt ranking data ⇄ omnirm records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from omnirm.errors import RecordError, UsageError
from omnirm.formats import read_llamafactory, write_llamafactory
from omnirm.records import parse_record

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "formats" / "llamafactory"


def _records(path: Path, **options: Any) -> list[dict[str, Any]]:
    return [item for item in read_llamafactory(path, **options) if isinstance(item, dict)]


def _errors(path: Path) -> list[RecordError]:
    return [item for item in read_llamafactory(path) if isinstance(item, RecordError)]


def test_text_pairs_criteria_and_history() -> None:
    first, history, with_id = _records(FIXTURES / "omni_t2t.json")
    assert first == {
        "id": "omni_t2t-1",
        "prompt": "How tall is Mount Everest?",
        "criteria": "Prefer the answer that gives a concrete number and says where it comes from.",
        "responses": [
            "8,849 m (29,032 ft), the height agreed by China and Nepal in 2020.",
            "It is the tallest mountain in the world, very high.",
        ],
        "preference": 0,
    }
    assert [m["role"] for m in history["messages"]] == ["user", "assistant", "user"]
    assert "prompt" not in history
    assert with_id["id"] == "skywork-0193"
    assert with_id["criteria"] == "Answer in one sentence."  # the top-level system key


def test_placeholders_split_text_into_parts() -> None:
    one, two = _records(FIXTURES / "omni_ti2t.json")
    assert one["prompt"] == [
        {"type": "image", "path": "images/ti2t/00017.jpg"},
        {"type": "text", "text": "How many animals are in this picture?"},
    ]
    assert two["prompt"] == [
        {"type": "text", "text": "Here is the first photo"},
        {"type": "image", "path": "images/ti2t/00018_a.jpg"},
        {"type": "text", "text": "and the second one"},
        {"type": "image", "path": "images/ti2t/00018_b.jpg"},
        {"type": "text", "text": ". Which one was taken at night?"},
    ]
    (error,) = _errors(FIXTURES / "omni_ti2t.json")
    assert (error.line, error.record_id, error.field) == (3, "omni_ti2t-3", "conversations")
    assert "2 <image> placeholder(s) but 1 images" in str(error)


def test_generation_layout_is_untangled() -> None:
    one_placeholder, two_placeholders, video = _records(FIXTURES / "omni_t2i.json")
    assert one_placeholder == {
        "id": "omni_t2i-1",
        "prompt": "A red bicycle leaning against a blue door",  # the caption becomes the prompt
        "criteria": "The door must be blue and the bicycle red.",
        "responses": [
            [{"type": "image", "path": "images/t2i/hpd_00412_0.png"}],
            [{"type": "image", "path": "images/t2i/hpd_00412_1.png"}],
        ],
        "preference": 0,
    }
    assert two_placeholders["prompt"] == "A watercolour of a lighthouse at dusk"
    assert two_placeholders["responses"][1] == [
        {"type": "image", "path": "images/t2i/oip_1033_b.png"}
    ]
    # the user turn has its own text: it stays the prompt, the caption is kept aside
    assert video["prompt"] == "How well does the video follow the caption?"
    assert video["caption"] == "A paper boat drifting down a rainy street"
    assert video["responses"][0] == [{"type": "video", "path": "videos/t2v/vdpo_2201_win.mp4"}]


def test_editing_layout_keeps_the_source_image_in_the_prompt() -> None:
    halves, flat = _records(FIXTURES / "omni_ti2i.json")
    assert halves["prompt"] == [
        {"type": "text", "text": "Make the sky look like sunset"},
        {"type": "image", "path": "images/ti2i/0061_src.png"},
    ]
    assert halves["responses"] == [
        [{"type": "image", "path": "images/ti2i/0061_a.png"}],
        [{"type": "image", "path": "images/ti2i/0061_b.png"}],
    ]
    assert flat["prompt"] == [
        {"type": "image", "path": "images/ti2i/0062_src.png"},
        {"type": "text", "text": "Remove the person on the left"},
    ]
    assert flat["responses"][0] == [{"type": "image", "path": "images/ti2i/0062_a.png"}]


def test_flip_generation_swaps_the_candidates() -> None:
    (normal, *_), (flipped, *_) = (
        _records(FIXTURES / "omni_t2i.json"),
        _records(FIXTURES / "omni_t2i.json", flip_generation=True),
    )
    assert flipped["responses"] == normal["responses"][::-1]
    assert flipped["preference"] == 0


def test_role_content_rows_and_located_errors() -> None:
    audio, text = _records(FIXTURES / "openai_style.jsonl")
    assert audio["id"] == "101"  # a numeric id, stringified
    assert audio["prompt"][0] == {"type": "audio", "path": "audios/ta2t/0012.wav"}
    assert audio["criteria"] == "Judge only whether the transcription is exact."
    assert audio["source"] == "audio-hh"  # unknown keys pass through
    assert text["responses"] == ["11", "12"]
    tool, missing = _errors(FIXTURES / "openai_style.jsonl")
    assert (tool.line, tool.record_id, tool.field) == (3, "103", "messages[1]")
    assert "unsupported speaker 'tool'" in tool.message
    assert (missing.line, missing.record_id, missing.field) == (4, "104", "chosen")
    assert missing.source is not None and missing.source.endswith("openai_style.jsonl")


def test_shuffle_seed_swaps_about_half_deterministically(tmp_path: Path) -> None:
    rows = [
        {
            "conversations": [{"from": "human", "value": f"question {i}"}],
            "chosen": {"from": "gpt", "value": f"good {i}"},
            "rejected": {"from": "gpt", "value": f"bad {i}"},
        }
        for i in range(200)
    ]
    path = tmp_path / "many.json"
    path.write_text(json.dumps(rows))
    shuffled = _records(path, shuffle_seed=3)
    swapped = [r for r in shuffled if r["preference"] == 1]
    assert 70 < len(swapped) < 130
    for record in shuffled:
        assert record["responses"][record["preference"]].startswith("good")
    assert _records(path, shuffle_seed=3) == shuffled
    assert _records(path, shuffle_seed=4) != shuffled
    assert all(r["preference"] == 0 for r in _records(path))  # the default is faithful


@pytest.mark.parametrize(
    "name",
    ["omni_t2t.json", "omni_ti2t.json", "omni_t2i.json", "omni_ti2i.json", "openai_style.jsonl"],
)
def test_convert_export_convert_round_trip(name: str, tmp_path: Path) -> None:
    records = _records(FIXTURES / name)
    rows = list(write_llamafactory(parse_record(r) for r in records))
    assert all(isinstance(row, dict) for row in rows)
    exported = tmp_path / f"{Path(name).stem}.jsonl"
    exported.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert _records(exported) == records


def test_export_layouts() -> None:
    t2i = _records(FIXTURES / "omni_t2i.json")[0]
    (row,) = write_llamafactory([parse_record(t2i)])
    assert row == {
        "id": "omni_t2i-1",
        "conversations": [
            {"from": "system", "value": "The door must be blue and the bicycle red."},
            {"from": "human", "value": "A red bicycle leaning against a blue door<image>"},
        ],
        "chosen": {"from": "gpt", "value": "A red bicycle leaning against a blue door"},
        "rejected": {"from": "gpt", "value": "A red bicycle leaning against a blue door"},
        "images": ["images/t2i/hpd_00412_0.png", "images/t2i/hpd_00412_1.png"],
    }
    ti2i = _records(FIXTURES / "omni_ti2i.json")[0]
    (row,) = write_llamafactory([parse_record(ti2i)])
    assert row["images"] == [
        "images/ti2i/0061_src.png",
        "images/ti2i/0061_a.png",
        "images/ti2i/0061_src.png",
        "images/ti2i/0061_b.png",
    ]
    # a record whose preferred response is the second one exports it as chosen
    swapped = dict(t2i, responses=t2i["responses"][::-1], preference=1)
    (row,) = write_llamafactory([parse_record(swapped)])
    assert row["images"] == ["images/t2i/hpd_00412_0.png", "images/t2i/hpd_00412_1.png"]


def test_records_that_cannot_be_exported_say_why() -> None:
    base = {"prompt": "q", "responses": ["a", "b"]}
    records = [
        parse_record({"id": "tie", **base, "preference": "tie"}),
        parse_record({"id": "unlabelled", **base}),
        parse_record({"id": "three", "prompt": "q", "responses": ["a", "b", "c"], "preference": 0}),
        parse_record(
            {
                "id": "mesh",
                "prompt": [{"type": "text", "text": "q"}, {"type": "mesh", "path": "m.glb"}],
                "responses": ["a", "b"],
                "preference": 0,
            }
        ),
        parse_record(
            {
                "id": "mixed",
                "prompt": "q",
                "responses": ["a", [{"type": "image", "path": "b.png"}]],
                "preference": 0,
            }
        ),
        parse_record({"id": "ok", **base, "preference": 1}),
    ]
    out = list(write_llamafactory(records))
    errors = [o for o in out if isinstance(o, RecordError)]
    assert [e.record_id for e in errors] == ["tie", "unlabelled", "three", "mesh", "mixed"]
    assert "is a tie" in errors[0].message and errors[0].field == "preference"
    assert "no label" in errors[1].message
    assert "exactly 2" in errors[2].message
    assert "no mesh inputs" in errors[3].message
    assert "both be text" in errors[4].message
    assert out[-1] == {
        "id": "ok",
        "conversations": [{"from": "human", "value": "q"}],
        "chosen": {"from": "gpt", "value": "b"},
        "rejected": {"from": "gpt", "value": "a"},
    }


def test_missing_file_is_a_usage_error_up_front(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        read_llamafactory(tmp_path / "absent.json")


def test_a_speaker_of_any_json_type_is_a_located_error(tmp_path: Path) -> None:
    """Found writing tests/property: a list as a reply's speaker raised TypeError."""
    row = {
        "conversations": [{"from": "human", "value": "q"}],
        "chosen": {"from": ["gpt"], "value": "a"},
        "rejected": {"from": "gpt", "value": "b"},
    }
    path = tmp_path / "lf.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (error,) = _errors(path)
    assert error.field == "chosen" and error.line == 1 and "['gpt']" in error.message
