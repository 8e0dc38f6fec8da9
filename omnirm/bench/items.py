"""One benchmark example as scored: what every metric reads.

A suite reader turns the published files into omnirm records that carry the gold label and two
extra keys: ``task`` (the task or subset the example counts toward) and, where a suite has them,
``bench`` keys (e.g. RewardBench's ``subset``). Scoring adds ``rewards`` (a reward model, or a
pointwise judge) or ``predicted`` (a pairwise judge). :func:`bench_item` reads the scored record
back as a :class:`BenchItem`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omnirm.records import TIE, Record

Outcome = int | str | None  # 0, 1, "tie" or None


@dataclass(frozen=True)
class BenchItem:
    """One scored example.

    - ``gold``: for pairs 0, 1 or "tie"; for best-of-N suites (RewardBench 2) the index of the
      correct response (the others are all rejected).
    - ``rewards``: one score per response (scalar models, pointwise judges), or None.
    - ``predicted``: a pairwise judge's combined outcome (0, 1, "tie", or None = no verdict).
    - ``consistent``: whether a judge's two orders agreed (None: one order, or not a judge).
    - ``lengths``: each response's length in characters of its text parts.
    """

    id: str
    task: str
    gold: int | str
    rewards: tuple[float | None, ...] | None = None
    predicted: Outcome = None
    consistent: bool | None = None
    lengths: tuple[int, ...] = ()
    subset: str | None = None  # a finer grouping inside a task (RewardBench subsets)
    modality: str = "text"  # the media involved ("image", "video", "audio", "3d"; "text": none)
    num_correct: int | None = None  # best-of-N: how many leading responses are correct

    @property
    def is_tie(self) -> bool:
        return self.gold == TIE

    @property
    def margin(self) -> float | None:
        """reward 0 − reward 1 for scalar-scored pairs (None when a reward is missing)."""
        if self.rewards is None or len(self.rewards) != 2:
            return None
        first, second = self.rewards
        return None if first is None or second is None else first - second


def bench_item(record: dict[str, Any]) -> BenchItem:
    """A scored record (a dict as ``omnirm score`` writes it) as a :class:`BenchItem`.

    Raises ``KeyError``/``ValueError`` with a plain message when the gold label or every score
    is missing; callers locate it.
    """
    gold = record.get("preference")
    if gold is None and record.get("ranking"):
        gold = int(record["ranking"][0])
    if gold is None:
        raise ValueError("no gold label (preference or ranking)")
    rewards = record.get("rewards")
    if rewards is None and "predicted" not in record:
        raise ValueError("not scored: no rewards and no predicted")
    return BenchItem(
        id=str(record["id"]),
        task=str(record.get("task") or "all"),
        gold=gold,
        rewards=tuple(rewards) if rewards is not None else None,
        predicted=record.get("predicted") if rewards is None else None,
        consistent=record.get("consistent"),
        lengths=tuple(_text_length(r) for r in record["responses"]),
        subset=record.get("subset"),
        modality=_modality(record),
        num_correct=record.get("num_correct"),
    )


def _modality(record: dict[str, Any]) -> str:
    """:attr:`Record.modality <omnirm.records.Record.modality>` of a scored record's dict."""
    return Record(
        id=str(record["id"]),
        responses=record["responses"],
        prompt=record.get("prompt"),
        messages=record.get("messages"),
        task=record.get("task"),
    ).modality


def _text_length(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    return sum(len(part.get("text", "")) for part in content if part.get("type") == "text")
