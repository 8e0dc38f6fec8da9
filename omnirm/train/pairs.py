"""The preference pairs a record implies, for pairwise training and evaluation.

- ``preference: k`` with N responses: k is better than each other response (N − 1 pairs).
- ``preference: "tie"`` (two responses): one tie pair.
- ``ranking: [a, b, c]``: every earlier index is better than every later one (all N(N−1)/2).
- ``gold_scores``: every pair with different scores, the higher better; equal scores are ties.

When several labels are present the most informative wins: gold_scores, then ranking, then
preference (the record format guarantees they agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from omnirm.records import TIE, Record


@dataclass(frozen=True, slots=True)
class Pair:
    """Response ``better`` is preferred over ``worse`` (or they tie: then the order is arbitrary)."""

    better: int
    worse: int
    tie: bool = False


def implied_pairs(record: Record) -> list[Pair]:
    """All pairs the record's gold labels imply (empty when it has none)."""
    if record.gold_scores is not None:
        scores = record.gold_scores
        pairs = []
        for i, j in combinations(range(len(scores)), 2):
            if scores[i] == scores[j]:
                pairs.append(Pair(i, j, tie=True))
            else:
                pairs.append(Pair(i, j) if scores[i] > scores[j] else Pair(j, i))
        return pairs
    if record.ranking is not None:
        return [Pair(a, b) for a, b in combinations(record.ranking, 2)]
    if record.preference == TIE:
        return [Pair(0, 1, tie=True)]
    if isinstance(record.preference, int):
        best = record.preference
        return [Pair(best, j) for j in range(record.num_responses) if j != best]
    return []
