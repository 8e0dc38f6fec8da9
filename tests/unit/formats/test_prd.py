"""PRD's LFQA and Vicuna80 human preferences → omnirm records: excerpts, and the real sets."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from omnirm.errors import RecordError, UsageError
from omnirm.formats import read_prd_lfqa, read_prd_vicuna80
from omnirm.formats.prd import clean_text

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "formats"
SHARED = REPO / "data"

needs_shared = pytest.mark.skipif(
    not (SHARED / "prd-lfqa").is_dir() or not (SHARED / "prd-vicuna80").is_dir(),
    reason="the real PRD data (data/) is not here",
)


def _split(items: Any) -> tuple[list[dict[str, Any]], list[RecordError]]:
    items = list(items)
    return (
        [i for i in items if isinstance(i, dict)],
        [i for i in items if isinstance(i, RecordError)],
    )


def test_clean_text() -> None:
    assert clean_text("a<br />b<BR>c<newline>d") == "a\nb\nc\nd"
    assert clean_text("  &gt;quote &amp; more AT&T &#39;x&#39; ") == ">quote & more AT&T 'x'"


def test_lfqa_excerpt() -> None:
    records, errors = _split(read_prd_lfqa(FIXTURES / "prd_lfqa_excerpt"))
    assert not errors
    assert [r["id"] for r in records] == ["lfqa-1", "lfqa-2", "lfqa-3"]
    first = records[0]
    assert first["task"] == "text_to_text" and first["preference"] == 0  # -1: answer_a better
    assert first["answer_types"] == ["human", "machine"]
    assert first["justification"].startswith("The question does not contain false assumptions.")
    assert "<br />" not in first["responses"][0] and "\nPienkos, A. (1976)" in first["responses"][0]
    assert "coherence_preference" not in first and "docs" not in first  # nulls left out
    assert "\n>The half-life of uranium-238" in records[1]["prompt"]
    assert records[2]["preference"] == 1
    assert "<newline>" not in json.dumps(records[2])


def test_lfqa_ties_and_bad_labels(tmp_path: Path) -> None:
    row = json.loads(
        (FIXTURES / "prd_lfqa_excerpt" / "experts_pairwise_human_preferences.jsonl")
        .read_text()
        .splitlines()[0]
    )
    rows = [
        dict(row, overall_preference=0, coherence_preference=1),
        dict(row, overall_preference=None),
        dict(row, answer_b=None),
    ]
    path = tmp_path / "lfqa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n")
    records, errors = _split(read_prd_lfqa(path))
    assert records[0]["preference"] == "tie" and records[0]["coherence_preference"] == 1
    assert [(e.line, e.record_id, e.field) for e in errors] == [
        (2, "lfqa-2", "overall_preference"),
        (3, "lfqa-3", "answer_b"),
        (4, None, None),
    ]
    assert "invalid JSON" in errors[2].message
    with pytest.raises(UsageError, match="no such file"):
        read_prd_lfqa(tmp_path / "nothing.jsonl")


def test_vicuna_excerpt_with_a_missing_answer() -> None:
    records, errors = _split(read_prd_vicuna80(FIXTURES / "prd_vicuna80_mini"))
    assert [r["id"] for r in records] == [
        "gpt35-vs-gpt4-q2-1",
        "gpt35-vs-gpt4-q2-2",
        "gpt35-vs-gpt4-q2-3",
        "gpt35-vs-gpt4-q14-1",
        "gpt35-vs-gpt4-q14-2",
        "gpt35-vs-gpt4-q14-3",
    ]
    assert [r["preference"] for r in records[3:]] == ["tie", 1, 0]
    first = records[0]
    assert first["prompt"] == "What are the most effective ways to deal with stress?"
    assert first["models"] == ["gpt35", "gpt4"]
    assert (first["question_id"], first["category"], first["judgement"]) == (2, "generic", 1)
    assert first["reviewer"] == "human"
    assert first["responses"][0].startswith("Here are some effective ways to deal with stress")
    # question 9 has no GPT-4 answer: one located error per judgement, no crash
    assert [(e.line, e.record_id, e.field) for e in errors] == [
        (4, "gpt35-vs-gpt4-q9-1", "question_id"),
        (5, "gpt35-vs-gpt4-q9-2", "question_id"),
        (6, "gpt35-vs-gpt4-q9-3", "question_id"),
    ]
    assert errors[0].source is not None
    assert errors[0].source.endswith(
        "ratings-human/answer_gpt35-vs-answer_gpt4-human-reviewer_threeclass.jsonl"
    )
    assert "no answer from gpt4 to question 9" in errors[0].message


def test_vicuna_folder_checks(tmp_path: Path) -> None:
    folder = tmp_path / "v"
    shutil.copytree(FIXTURES / "prd_vicuna80_mini", folder)
    with pytest.raises(UsageError, match=r"no ratings-gpt4/ folder \(found: ratings-human\)"):
        read_prd_vicuna80(folder, reviewer="gpt4")
    (folder / "generations" / "answer_gpt35.jsonl").unlink()
    _, errors = _split(read_prd_vicuna80(folder))
    assert len(errors) == 9 and "does not exist" in errors[0].message
    with pytest.raises(UsageError, match="expected the Vicuna80 folder"):
        read_prd_vicuna80(folder / "prompts" / "vicuna_questions.jsonl")


@needs_shared
def test_real_lfqa_counts() -> None:
    records, errors = _split(read_prd_lfqa(SHARED / "prd-lfqa"))
    assert not errors
    assert len(records) == 260
    assert Counter(r["preference"] for r in records) == {0: 140, 1: 120}  # no ties upstream
    assert Counter(r["answer_types"][0] for r in records) == {"human": 193, "machine": 67}
    text = json.dumps(records)
    assert "<br" not in text and "<newline>" not in text and "&gt;" not in text
    assert all(r["justification"] for r in records)


@needs_shared
def test_real_vicuna_counts() -> None:
    records, errors = _split(read_prd_vicuna80(SHARED / "prd-vicuna80"))
    # Every rating joins: each generations file answers all 80 questions (answer_gpt4.jsonl
    # merely lacks a final newline, so `wc -l` shows 79).
    assert not errors
    assert len(records) == 1760
    assert len({r["id"] for r in records}) == 1760
    assert Counter(r["preference"] for r in records) == {0: 829, 1: 727, "tie": 204}
    per_file = Counter(tuple(r["models"]) for r in records)
    assert per_file[("bard", "gpt4")] == 141 and per_file[("claude", "gpt4")] == 80
    assert Counter(r["judgement"] for r in records) == {1: 800, 2: 480, 3: 480}


def test_labels_of_any_json_type_are_located_errors(tmp_path: Path) -> None:
    """Found by tests/property: a list or object label raised TypeError (unhashable)."""
    row = {"question": "q", "answer_a": "a", "answer_b": "b", "overall_preference": [1]}
    (tmp_path / "experts_pairwise_human_preferences.jsonl").write_text(json.dumps(row) + "\n")
    _, (error,) = _split(read_prd_lfqa(tmp_path))
    assert error.field == "overall_preference" and "got [1]" in error.message
    root = tmp_path / "vicuna"
    for name, rows in (
        ("prompts/vicuna_questions.jsonl", [{"question_id": 1, "text": "Q?"}]),
        ("generations/answer_x.jsonl", [{"question_id": 1, "text": "X."}]),
        ("generations/answer_y.jsonl", [{"question_id": 1, "text": "Y."}]),
        (
            "ratings-human/answer_x-vs-answer_y-human-reviewer_threeclass.jsonl",
            [{"question_id": 1, "score": {"x": 1}}],
        ),
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    _, (error,) = _split(read_prd_vicuna80(root))
    assert error.field == "score" and error.line == 1
