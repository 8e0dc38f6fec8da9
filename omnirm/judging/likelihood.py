"""Verdicts by likelihood: ``--verdict probs``.

Instead of parsing the verdict out of free text, the judge's probability of each verdict letter
is read at the verdict position (right after ``[[``, after the rationale when one is written).
Every record gets a verdict, and a graded margin comes with it.

For a pair judged in both orders, order "ab" shows response 0 as A, order "ba" shows it as B,
so the probability that response 0 is better is the mean of P_ab(A) and P_ba(B) (and likewise
for response 1 and for a tie). ``margin`` = p(0) − p(1) is in [−1, 1]; a record's ``rewards``
are [p(0), p(1)], so reward-based tie thresholds and metrics apply unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from omnirm.models.backends.base import VerdictProbabilities
from omnirm.records import TIE

Outcome = int | str


@dataclass(frozen=True)
class LikelihoodVerdict:
    """A pair's verdict from both orders' letter probabilities."""

    better: float  # probability that response 0 is better
    worse: float  # probability that response 1 is better
    tie: float
    predicted: Outcome

    @property
    def margin(self) -> float:
        return self.better - self.worse


def combine_probabilities(
    ab: VerdictProbabilities, ba: VerdictProbabilities | None, tie_threshold: float = 0.0
) -> LikelihoodVerdict:
    """The pair's probabilities averaged over the orders given, and its verdict: the likelier
    response, or a tie when the tie is likelier than either or the margin is within
    ``tie_threshold``."""
    views = [(ab.probabilities.get("A", 0.0), ab.probabilities.get("B", 0.0), ab)]
    if ba is not None:  # in the swapped order, A is response 1
        views.append((ba.probabilities.get("B", 0.0), ba.probabilities.get("A", 0.0), ba))
    better = sum(v[0] for v in views) / len(views)
    worse = sum(v[1] for v in views) / len(views)
    tie = sum(v[2].probabilities.get("C", 0.0) for v in views) / len(views)
    predicted: Outcome
    if tie > max(better, worse) or abs(better - worse) <= tie_threshold:
        predicted = TIE
    else:
        predicted = 0 if better > worse else 1
    return LikelihoodVerdict(better, worse, tie, predicted)
