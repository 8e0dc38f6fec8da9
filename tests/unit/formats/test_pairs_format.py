"""Chosen/rejected pairs (plain, HH-RLHF transcripts, TRL conversational) ⇄ omnirm records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from omnirm.errors import RecordError
from omnirm.formats import read_pairs, write_pairs
from omnirm.formats.pairs import parse_transcript, split_transcripts
from omnirm.records import parse_record

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "formats" / "pairs"


def _read(path: Path, **options: Any) -> tuple[list[dict[str, Any]], list[RecordError]]:
    items = list(read_pairs(path, **options))
    return (
        [i for i in items if isinstance(i, dict)],
        [i for i in items if isinstance(i, RecordError)],
    )


def test_hh_rlhf_transcripts() -> None:
    (single, multi), (diverged, identical) = _read(FIXTURES / "hh_rlhf.jsonl")
    assert single == {
        "id": "hh_rlhf-1",
        "prompt": "What's a good way to keep basil fresh after buying it?",
        "responses": [
            "Trim the stems and stand the bunch in a glass of water on the counter, like cut "
            "flowers. Loosely cover the leaves with a plastic bag and change the water every day "
            "or two. Avoid the fridge: the cold turns the leaves black.",
            "Put it in the freezer.",
        ],
        "preference": 0,
    }
    assert multi["messages"] == [
        {"role": "user", "content": "My neighbour's dog barks all night. What can I do?"},
        {
            "role": "assistant",
            "content": "That sounds exhausting. Have you had a chance to talk to your "
            "neighbour about it?",
        },
        {"role": "user", "content": "Not yet, I'm worried they'll get angry."},
    ]
    assert multi["responses"][1] == "Call the police every night until they give the dog away."
    assert (diverged.line, diverged.record_id, diverged.field) == (3, "hh_rlhf-3", "chosen")
    assert "diverge before their final assistant turn" in diverged.message
    assert str(diverged).startswith(f"{FIXTURES / 'hh_rlhf.jsonl'}:3: record 'hh_rlhf-3': chosen:")
    assert "identical" in identical.message and identical.line == 4


def test_transcript_helpers() -> None:
    assert parse_transcript("Human: hi\n\nAssistant:") == [{"role": "user", "content": "hi"}]
    history, chosen, rejected = split_transcripts(
        "\n\nHuman: 2+2?\n\nAssistant: The answer is 4",
        "\n\nHuman: 2+2?\n\nAssistant: The answer is 5",
    )
    assert (history, chosen, rejected) == (
        [{"role": "user", "content": "2+2?"}],
        "The answer is 4",
        "The answer is 5",
    )
    with pytest.raises(RecordError, match="share no 'Assistant:' turn"):
        split_transcripts("\n\nHuman: a\n\nAssistant: x", "\n\nHuman: b\n\nAssistant: x")
    with pytest.raises(RecordError, match="not HH-RLHF transcripts"):
        split_transcripts("just text", "other text")


def test_plain_rows() -> None:
    records, (missing,) = _read(FIXTURES / "plain.jsonl")
    first, second, hh_prompt, repeated = records
    assert first == {
        "id": "uf-0001",
        "prompt": "Give me a synonym for 'happy'.",
        "criteria": "One word only.",
        "responses": ["Joyful.", "Sad."],
        "preference": 0,
        "margin": 2.5,
    }
    assert second["id"] == "plain-2"  # no id: file stem and line
    assert (second["score_chosen"], second["score_rejected"]) == (9.0, 2.0)
    assert hh_prompt["prompt"] == "Is it safe to eat raw cookie dough?"
    assert hh_prompt["responses"][1] == "Sure, eat as much as you like."
    assert repeated["id"] == "uf-0001-2"  # a repeated id made unique
    assert (missing.line, missing.record_id, missing.field) == (5, "plain-5", "rejected")


def test_trl_conversational_rows() -> None:
    (explicit, implicit, image), (diverged,) = _read(FIXTURES / "trl_conversational.jsonl")
    assert explicit["prompt"] == "What colour is a ripe banana?"
    assert explicit["responses"] == ["Yellow.", "Blue."]
    assert implicit["messages"] == [
        {"role": "system", "content": "You are a helpful tutor."},
        {"role": "user", "content": "What is 7 x 8?"},
    ]
    assert implicit["responses"] == ["56.", "54."]
    assert image["prompt"] == [
        {"type": "image", "path": "images/heron.jpg"},
        {"type": "text", "text": "What animal is this?"},
    ]
    assert diverged.field == "chosen" and "diverge before the last turn" in diverged.message


def test_shuffle_seed(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        "".join(
            json.dumps({"prompt": f"q{i}", "chosen": f"good{i}", "rejected": f"bad{i}"}) + "\n"
            for i in range(100)
        )
    )
    records, _ = _read(path, shuffle_seed=0)
    assert 25 < sum(r["preference"] == 1 for r in records) < 75
    assert all(r["responses"][r["preference"]].startswith("good") for r in records)


@pytest.mark.parametrize("name", ["hh_rlhf.jsonl", "plain.jsonl", "trl_conversational.jsonl"])
def test_convert_export_convert_round_trip(name: str, tmp_path: Path) -> None:
    records, _ = _read(FIXTURES / name)
    rows = list(write_pairs(parse_record(r) for r in records))
    exported = tmp_path / "exported.jsonl"
    exported.write_text("".join(json.dumps(row) + "\n" for row in rows))
    again, errors = _read(exported)
    assert not errors
    assert again == records


def test_export_shapes_and_refusals() -> None:
    plain = parse_record(
        {"id": "a", "prompt": "q", "criteria": "short", "responses": ["x", "y"], "preference": 1}
    )
    chat = parse_record(
        {
            "id": "b",
            "messages": [{"role": "user", "content": "hi"}],
            "prompt": "and now?",
            "responses": ["x", "y"],
            "preference": 0,
            "margin": 1.0,
        }
    )
    tie = parse_record({"id": "c", "prompt": "q", "responses": ["x", "y"], "preference": "tie"})
    first, second, third = write_pairs([plain, chat, tie])
    assert first == {"id": "a", "prompt": "q", "chosen": "y", "rejected": "x", "criteria": "short"}
    assert second == {
        "id": "b",
        "prompt": [{"role": "user", "content": "hi"}, {"role": "user", "content": "and now?"}],
        "chosen": [{"role": "assistant", "content": "x"}],
        "rejected": [{"role": "assistant", "content": "y"}],
        "margin": 1.0,
    }
    assert isinstance(third, RecordError) and third.record_id == "c" and "tie" in third.message


def test_system_key_is_the_criterion_unless_criteria_is_given(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    rows = [
        {"prompt": "q", "chosen": "a", "rejected": "b", "system": "Be brief."},
        {
            "prompt": "q",
            "chosen": "a",
            "rejected": "b",
            "system": "You are kind.",
            "criteria": "Be brief.",
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (first, second), _ = _read(path)
    assert first["criteria"] == "Be brief." and "system" not in first
    assert second["criteria"] == "Be brief." and second["system"] == "You are kind."


def test_export_puts_prompt_images_in_trls_vision_layout(tmp_path: Path) -> None:
    record = parse_record(
        {
            "id": "v",
            "prompt": [
                {"type": "image", "path": "a.png"},
                {"type": "text", "text": "Same?"},
                {"type": "image", "url": "https://example.org/b.png"},
                {"type": "image", "path": "/abs/c.png"},
            ],
            "responses": ["Yes.", [{"type": "image", "path": "answer.png"}]],
            "preference": 0,
        }
    )
    (row,) = write_pairs([record])
    assert isinstance(row, dict)
    assert row["prompt"] == [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": "Same?"},
                {"type": "image"},
                {"type": "image"},
            ],
        }
    ]
    assert row["images"] == ["a.png", "https://example.org/b.png", "/abs/c.png"]
    # a media response has no place in TRL's layout: it keeps its path inline
    assert row["rejected"] == [
        {"role": "assistant", "content": [{"type": "image", "path": "answer.png"}]}
    ]
    (rooted,) = write_pairs([record], media_root=tmp_path)
    assert isinstance(rooted, dict)
    assert rooted["images"] == [str(tmp_path / "a.png"), "https://example.org/b.png", "/abs/c.png"]
    exported = tmp_path / "exported.jsonl"
    exported.write_text(json.dumps(row) + "\n")
    (again,), errors = _read(exported)
    assert not errors and again["prompt"] == record.prompt  # the URL comes back as a url
