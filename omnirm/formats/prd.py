"""The two human-preference sets of the PRD repository (bcdnlp/PRD, MIT): LFQA and Vicuna80.

- ``prd-lfqa``: ``experts_pairwise_human_preferences.jsonl``, one row per question with two
  long-form answers (written by people or by a model) and an expert's overall preference
  (-1 = answer_a better, 1 = answer_b better, 0 = tie) with a written justification. Answers use
  HTML line breaks (``<br />``) and a ``<newline>`` marker; both become newlines.
- ``prd-vicuna80``: a folder with the 80 questions (``prompts/vicuna_questions.jsonl``), each
  assistant's answers (``generations/answer_MODEL.jsonl``) and three-way judgements per pair of
  assistants (``ratings-human/answer_X-vs-answer_Y-human-reviewer_threeclass.jsonl``: score 1 =
  X better, 2 = Y better, 3 = tie), joined on ``question_id``. Some files hold several
  judgements per question; each becomes its own record.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnirm.errors import RecordError, UsageError
from omnirm.formats._common import Item, finish, iter_rows
from omnirm.jsonl import iter_json_lines

LFQA_FILE = "experts_pairwise_human_preferences.jsonl"

_LFQA_PREFERENCE: dict[int, int | str] = {-1: 0, 1: 1, 0: "tie"}
_VICUNA_PREFERENCE: dict[int, int | str] = {1: 0, 2: 1, 3: "tie"}

_LINE_BREAK = re.compile(r"<br\s*/?>|<newline>", re.IGNORECASE)
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z]+);")


def _is_number(value: Any) -> bool:
    """A JSON number (not a boolean): the only labels worth looking up."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def clean_text(text: str) -> str:
    """Undo the HTML of the PRD answers: ``<br />`` and ``<newline>`` become newlines, character
    entities (``&amp;``, ``&gt;`` …) their characters; outer whitespace is stripped."""
    text = _LINE_BREAK.sub("\n", text)
    text = _ENTITY.sub(lambda match: html.unescape(match.group(0)), text)
    return text.strip()


# --------------------------------------------------------------------------------------------
# LFQA
# --------------------------------------------------------------------------------------------


def read_prd_lfqa(source: Path) -> Iterator[Item]:
    """Read PRD's LFQA expert preferences (the JSONL file, or the folder holding it).

    Ids are ``lfqa-LINE``. Extra keys: ``answer_types`` (``human``/``machine`` per response),
    ``justification``, and the aspect labels ``coherence_preference`` /
    ``factuality_preference`` and documents ``docs`` where the source has them (not null).
    """
    path = Path(source)
    if path.is_dir():
        path = path / LFQA_FILE
    if not path.is_file():
        raise UsageError(f"{path}: no such file (expected PRD's {LFQA_FILE})")
    return _lfqa_records(path)


def _lfqa_records(path: Path) -> Iterator[Item]:
    shown = str(path)
    for line, row in iter_rows(path):
        if isinstance(row, RecordError):
            yield row
            continue
        record_id = f"lfqa-{line}"
        try:
            record = _lfqa_record(row, record_id)
        except RecordError as error:
            yield error.located(source=shown, line=line, record_id=record_id)
            continue
        yield finish(record, source=shown, line=line)


def _required_text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"expected a non-empty string, got {value!r}", field=key)
    return clean_text(value)


def _lfqa_record(row: Any, record_id: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise RecordError(f"expected a JSON object, got {type(row).__name__}")
    label = row.get("overall_preference")
    if not _is_number(label) or label not in _LFQA_PREFERENCE:
        raise RecordError(
            f"expected -1 (answer_a better), 1 (answer_b better) or 0 (tie), got {label!r}",
            field="overall_preference",
        )
    record: dict[str, Any] = {
        "id": record_id,
        "task": "text_to_text",
        "prompt": _required_text(row, "question"),
        "responses": [_required_text(row, "answer_a"), _required_text(row, "answer_b")],
        "preference": _LFQA_PREFERENCE[label],
        "answer_types": [row.get("answer_a_type"), row.get("answer_b_type")],
    }
    justification = row.get("justification")
    if isinstance(justification, str) and justification.strip():
        record["justification"] = justification.strip()
    for key in ("coherence_preference", "factuality_preference"):
        if row.get(key) is not None:
            record[key] = row[key]
    if row.get("doc_a") is not None or row.get("doc_b") is not None:
        record["docs"] = [row.get("doc_a"), row.get("doc_b")]
    return record


# --------------------------------------------------------------------------------------------
# Vicuna80
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Question:
    text: str
    category: str | None


def read_prd_vicuna80(source: Path, *, reviewer: str = "human") -> Iterator[Item]:
    """Read PRD's Vicuna80 folder: one record per judgement in ``ratings-REVIEWER/``.

    ``reviewer`` picks the ratings folder (``human`` by default; upstream also has model
    reviewers such as ``gpt4``). Ids are ``X-vs-Y-qQUESTION-N`` with N counting the judgements
    of that question in that file (1, 2, 3 …). A judgement whose question or answer is missing
    is a located error (file, line, id, ``question_id``), not a crash. Extra keys: ``models``
    (X, Y), ``question_id``, ``category``, ``judgement`` (N) and ``reviewer``.
    """
    root = Path(source)
    if not root.is_dir():
        raise UsageError(
            f"{root}: expected the Vicuna80 folder (prompts/, generations/, ratings-*/)"
        )
    questions = _first_existing(
        root / "prompts" / "vicuna_questions.jsonl", root / "prompt" / "vicuna_questions.jsonl"
    )
    if questions is None:
        raise UsageError(f"{root}: no prompts/vicuna_questions.jsonl")
    ratings = root / f"ratings-{reviewer}"
    if not ratings.is_dir():
        found = sorted(p.name for p in root.glob("ratings-*") if p.is_dir())
        raise UsageError(
            f"{root}: no {ratings.name}/ folder"
            + (f" (found: {', '.join(found)})" if found else " (and no ratings-* folder at all)")
        )
    pattern = re.compile(
        rf"^answer_(?P<x>.+?)-vs-answer_(?P<y>.+)-{re.escape(reviewer)}-reviewer_threeclass\.jsonl$"
    )
    files = sorted(p for p in ratings.glob("*.jsonl") if pattern.match(p.name))
    if not files:
        raise UsageError(
            f"{ratings}: no answer_X-vs-answer_Y-{reviewer}-reviewer_threeclass.jsonl files"
        )
    return _vicuna_records(root, questions, files, pattern, reviewer)


def _first_existing(*paths: Path) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def _vicuna_records(
    root: Path, questions_path: Path, files: list[Path], pattern: re.Pattern[str], reviewer: str
) -> Iterator[Item]:
    questions: dict[int, _Question] = {}
    yield from _load_questions(questions_path, questions)
    answers = _Answers(root / "generations")
    for path in files:
        match = pattern.match(path.name)
        assert match is not None
        x, y = match["x"], match["y"]
        yield from answers.load_errors(x)
        yield from answers.load_errors(y)
        seen: dict[int, int] = {}
        for line, row in iter_json_lines(path):
            if isinstance(row, RecordError):
                yield row
                continue
            question_id = row.get("question_id") if isinstance(row, dict) else None
            if isinstance(question_id, bool) or not isinstance(question_id, int):
                yield RecordError(
                    f"expected an integer question id, got {question_id!r}",
                    source=str(path),
                    line=line,
                    field="question_id",
                )
                continue
            seen[question_id] = seen.get(question_id, 0) + 1
            judgement = _Judgement(x, y, question_id, seen[question_id], reviewer)
            try:
                record = _judgement_record(row, judgement, questions, answers)
            except RecordError as error:
                yield error.located(source=str(path), line=line, record_id=judgement.record_id)
                continue
            yield finish(record, source=str(path), line=line)


def _question_rows(path: Path) -> Iterator[tuple[int, str, dict[str, Any]] | RecordError]:
    """``(question_id, text, row)`` for each line of a questions or answers file, or the error
    of a malformed line."""
    for line, row in iter_json_lines(path):
        if isinstance(row, RecordError):
            yield row
            continue
        question_id = row.get("question_id") if isinstance(row, dict) else None
        text = row.get("text") if isinstance(row, dict) else None
        if not isinstance(question_id, int) or not isinstance(text, str):
            yield RecordError(
                "expected a question_id (integer) and a text (string)",
                source=str(path),
                line=line,
            )
            continue
        yield question_id, text, row


def _load_questions(path: Path, into: dict[int, _Question]) -> Iterator[RecordError]:
    for item in _question_rows(path):
        if isinstance(item, RecordError):
            yield item
            continue
        question_id, text, row = item
        category = row.get("category")
        into[question_id] = _Question(text, category if isinstance(category, str) else None)


class _Answers:
    """Each assistant's answers by question id, read from ``generations/`` on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.by_model: dict[str, dict[int, str]] = {}

    def path(self, model: str) -> Path:
        return self.folder / f"answer_{model}.jsonl"

    def load_errors(self, model: str) -> Iterator[RecordError]:
        """Read the model's answers if not read yet, yielding its malformed lines as errors."""
        if model in self.by_model:
            return
        answers: dict[int, str] = {}
        self.by_model[model] = answers
        path = self.path(model)
        if not path.is_file():
            return  # every judgement that needs it reports the missing file
        for item in _question_rows(path):
            if isinstance(item, RecordError):
                yield item
                continue
            question_id, text, _ = item
            answers.setdefault(question_id, text.strip())

    def get(self, model: str, question_id: int) -> str:
        answers = self.by_model[model]
        if question_id not in answers:
            where = self.path(model)
            reason = "has no answer to this question" if where.is_file() else "does not exist"
            raise RecordError(
                f"no answer from {model} to question {question_id}: {where} {reason}",
                field="question_id",
            )
        return answers[question_id]


@dataclass(frozen=True)
class _Judgement:
    """Where one judgement sits: the pair of assistants, the question, its number, the reviewer."""

    x: str
    y: str
    question_id: int
    number: int
    reviewer: str

    @property
    def record_id(self) -> str:
        return f"{self.x}-vs-{self.y}-q{self.question_id}-{self.number}"


def _judgement_record(
    row: dict[str, Any], judgement: _Judgement, questions: dict[int, _Question], answers: _Answers
) -> dict[str, Any]:
    x, y, question_id = judgement.x, judgement.y, judgement.question_id
    score = row.get("score")
    if not _is_number(score) or score not in _VICUNA_PREFERENCE:
        raise RecordError(
            f"expected 1 ({x} better), 2 ({y} better) or 3 (tie), got {score!r}", field="score"
        )
    question = questions.get(question_id)
    prompt = question.text if question is not None else row.get("text")
    if not isinstance(prompt, str) or not prompt.strip():
        raise RecordError(
            f"question {question_id} is not in vicuna_questions.jsonl and the rating has no text",
            field="question_id",
        )
    record: dict[str, Any] = {
        "id": judgement.record_id,
        "task": "text_to_text",
        "prompt": prompt.strip(),
        "responses": [answers.get(x, question_id), answers.get(y, question_id)],
        "preference": _VICUNA_PREFERENCE[score],
        "models": [x, y],
        "question_id": question_id,
    }
    if question is not None and question.category is not None:
        record["category"] = question.category
    record.update(judgement=judgement.number, reviewer=judgement.reviewer)
    return record


__all__ = ["clean_text", "read_prd_lfqa", "read_prd_vicuna80"]
