"""Training examples for a generative judge: the judge's own conversations, in both orders.

Every record with a gold ``preference`` (0, 1, or ``"tie"`` with ``ties``) and two responses
gives two examples, built by :class:`~omnirm.judging.conversations.ConversationBuilder` with
the default pairwise template exactly as ``omnirm score --judge`` asks: response 0 shown as A
("ab") and, swapped, as B ("ba"), with the gold verdict letter swapped too, so the judge cannot
learn a position. Records without a usable label (none, a ranking, more than two responses, a
tie without ``ties``) are left out and counted.

For SFT the target answer is the record's ``rationale`` — a string, or an object of
per-criterion texts rendered one ``criterion: text`` line each — followed by the verdict mark
on its own last line. A rationale is written for the record's order, so in the swapped order
its mentions of "response A" / "response B" are swapped as well, and any verdict marks it
holds are dropped (the appended mark is the verdict).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from omnirm import console
from omnirm.errors import RecordError
from omnirm.jsonl import display_name
from omnirm.judging.conversations import ConversationBuilder
from omnirm.models.backends.base import Conversation
from omnirm.prompts.verdicts import json_answer, json_verdict, without_marks
from omnirm.records import TIE, InvalidRecord, Record, iter_records

ORDERS = ("ab", "ba")
_MENTION = re.compile(r"\b(responses?|answers?|candidates?|options?)(\s+)([AB])\b", re.IGNORECASE)


@dataclass
class JudgeExample:
    """One order of one record, as the judge sees it, with its gold verdict."""

    record: Record
    line: int
    order: str  # "ab": response 0 is A; "ba": response 1 is A
    conversation: Conversation
    gold: str  # "A", "B" or "C"
    answer: str | None = None  # the SFT target (rationale and verdict)

    def columns(self) -> dict[str, Any]:
        """The dataset columns a TRL-style reward function receives: the record's fields
        (but its prompt, as TRL leaves ``prompt`` out), the order and the gold letter."""
        row = {k: v for k, v in self.record.to_dict().items() if k != "prompt"}
        row.update(order=self.order, gold=self.gold)
        return row


def gold_letter(preference: Any, order: str) -> str:
    """The verdict letter that is right for ``preference`` in ``order``."""
    if preference == TIE:
        return "C"
    first = preference == 0
    return ("A" if first else "B") if order == "ab" else ("B" if first else "A")


def swap_mentions(text: str) -> str:
    """``text`` with "response A" and "response B" (also answer, candidate, option) swapped."""

    def swapped(match: re.Match[str]) -> str:
        letter = "B" if match.group(3).upper() == "A" else "A"
        return f"{match.group(1)}{match.group(2)}{letter}"

    return _MENTION.sub(swapped, text)


def rationale_text(value: Any, where: str) -> str:
    """A record's ``rationale`` as text (see the module docs); :class:`RecordError` naming
    the field when it is missing, empty or of another type."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, dict) and value:
        lines = []
        for key, text in value.items():
            shown = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
            lines.append(f"{key}: {shown.strip()}")
        return "\n".join(lines)
    if value is None:
        raise RecordError(
            "--stage sft needs a rationale to train on (a string, or an object of "
            "per-criterion texts); this record has none",
            field=where,
        )
    raise RecordError(
        f"expected a non-empty string or object of per-criterion texts, got "
        f"{type(value).__name__ if value not in ('', {}) else 'an empty one'}",
        field=where,
    )


def sft_answer(rationale: str, gold: str, order: str, answer_format: str = "marks") -> str:
    """The answer the judge is taught: the rationale (for ``order``), then the verdict — a
    ``[[X]]`` line, or with ``answer_format="json"`` Omni-RRM's JSON object (a rationale that
    is such an object, as rs writes in that format, gives its reasoning and scores, swapped
    with the order)."""
    scores: tuple[float, float] | None = None
    parsed = json_verdict(rationale)
    if parsed is not None:
        rationale = parsed["reasoning"]
        scores = (parsed["score_A"], parsed["score_B"])
        if order == "ba":
            scores = (scores[1], scores[0])
        if parsed["better"] == "C" or gold == "C":
            scores = None
    text = without_marks(rationale if order == "ab" else swap_mentions(rationale)).strip()
    if answer_format == "json":
        agree = scores is not None and (scores[0] > scores[1]) == (gold == "A")
        return json_answer(text, gold, scores=scores if agree else None)
    return f"{text}\n\n[[{gold}]]" if text else f"[[{gold}]]"


@dataclass
class LoadedExamples:
    examples: list[JudgeExample]
    records: int  # records that gave examples
    left_out: int  # records without a usable label


def load_examples(
    path: str,
    builder: ConversationBuilder,
    *,
    sft: bool,
    criteria: str | None = None,
    max_bytes: int | None = None,
    report: bool = True,
    answer_format: str = "marks",
) -> LoadedExamples:
    """Both orders of every usable record of ``path`` (see the module docs); with ``sft``
    every such record must hold a rationale. A malformed record stops the run with an error
    naming the file, line, record and field."""
    shown = display_name(path)
    examples: list[JudgeExample] = []
    records = left_out = 0
    options: dict[str, Any] = {} if max_bytes is None else {"max_bytes": max_bytes}
    for line, record in iter_records(path, **options):
        if isinstance(record, InvalidRecord):
            raise record.error
        usable = record.num_responses == 2 and (
            record.preference in (0, 1) or (record.preference == TIE and builder.ties)
        )
        if not usable:
            left_out += 1
            continue
        try:
            rationale = rationale_text(record.extra.get("rationale"), "rationale") if sft else None
            for order in ORDERS:
                first, second = (0, 1) if order == "ab" else (1, 0)
                gold = gold_letter(record.preference, order)
                examples.append(
                    JudgeExample(
                        record=record,
                        line=line,
                        order=order,
                        conversation=builder.pairwise(record, first, second, criteria),
                        gold=gold,
                        answer=None
                        if rationale is None
                        else sft_answer(rationale, gold, order, answer_format),
                    )
                )
        except RecordError as error:
            raise error.located(source=shown, line=line, record_id=record.id) from None
        records += 1
    if left_out and report:
        ties = "" if builder.ties else ", or a tie without --ties"
        console.info(
            f"{shown}: {left_out} records left out (no pairwise preference, two responses "
            f"needed{ties})"
        )
    return LoadedExamples(examples, records, left_out)
