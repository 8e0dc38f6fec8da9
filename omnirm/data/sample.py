"""``omnirm data sample``: a seeded, stratified sample of ``n`` records.

Records are grouped by ``task`` (the resolved task type), ``modality`` (the media kinds in
prompt and responses, :attr:`Record.modality <omnirm.records.Record.modality>`: ``text``,
``image``, ``audio+video`` …), ``label`` (0, 1, …, ``tie``, ``ranking``, ``scores`` or
``none``) or ``criterion`` (the criterion text, ``none`` without one).

- ``balanced``: as equal a share per group as the groups allow — each gets ``n / groups``;
  what a small group cannot give goes to the others (water-filling).
- ``proportional``: each group its share of the data (largest remainders), so the sample keeps
  the input's mix.

Within a group, records are drawn uniformly with a generator seeded by ``seed`` and the group,
so a group's draw does not change when other groups change. The sample keeps the input order.
"""

from __future__ import annotations

import hashlib
import random
from typing import Literal

from omnirm.errors import UsageError
from omnirm.records import Record

By = Literal["task", "modality", "label", "criterion"]
Mode = Literal["balanced", "proportional"]


def group_of(record: Record, by: By) -> str:
    if by == "task":
        return record.resolved_task
    if by == "modality":
        return record.modality
    if by == "criterion":
        return record.criteria if record.criteria is not None else "none"
    if record.preference is not None:
        return str(record.preference)
    if record.ranking is not None:
        return "ranking"
    return "scores" if record.gold_scores is not None else "none"


def allocate(sizes: dict[str, int], n: int, mode: Mode) -> dict[str, int]:
    """How many records each group gives (never more than it has; ``n`` in all when the
    groups hold that many)."""
    if n < 0:
        raise UsageError(f"--n must be at least 0, got {n}")
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    if mode == "proportional":
        exact = {g: n * size / total for g, size in sizes.items()}
        counts = {g: int(share) for g, share in exact.items()}
        left = n - sum(counts.values())
        for g in sorted(exact, key=lambda g: (-(exact[g] - counts[g]), g))[:left]:
            counts[g] += 1
        return counts
    counts = dict.fromkeys(sizes, 0)
    left = n
    open_groups = sorted(sizes)
    while left > 0 and open_groups:
        share, extra = divmod(left, len(open_groups))
        given = 0
        for i, g in enumerate(open_groups):
            take = min(sizes[g] - counts[g], share + (1 if i < extra else 0))
            counts[g] += take
            given += take
        left -= given
        open_groups = [g for g in open_groups if counts[g] < sizes[g]]
    return counts


def choose(groups: dict[str, list[int]], counts: dict[str, int], seed: int) -> set[int]:
    """The positions drawn from each group (seeded per group)."""
    chosen: set[int] = set()
    for group, positions in groups.items():
        digest = hashlib.sha256(f"{seed}\x00{group}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        chosen.update(rng.sample(positions, counts[group]))
    return chosen
