"""Verdicts by likelihood: ``--verdict probs``.

Instead of parsing the verdict out of free text, the judge's probability of each verdict letter
is read at the verdict position (right after ``[[``, after the rationale when one is written).
Every record gets a verdict, and a graded margin comes with it.

For a pair judged in both orders, order "ab" shows response 0 as A, order "ba" shows it as B,
so the probability that response 0 is better is the mean of P_ab(A) and P_ba(B) (and likewise
for response 1 and for a tie). ``margin`` = p(0) − p(1) is in [−1, 1]; a record's ``rewards``
are [p(0), p(1)], so reward-based tie thresholds and metrics apply unchanged.

:func:`read_probabilities` is the one way readings are asked of a backend (``score --judge``
and the data builders' verifiers): each reading is cached like an answer, under a key that
holds the verdict mode, the letters and (``rationale-probs``) the sampling, so text answers
and readings of different modes never stand in for one another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from omnirm.errors import UsageError
from omnirm.judging.cache import AnswerCache, answer_key
from omnirm.models.backends.base import (
    Conversation,
    Generation,
    JudgeBackend,
    Sampling,
    VerdictProbabilities,
)
from omnirm.records import TIE

VerdictMode = Literal["text", "probs", "rationale-probs"]

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


def check_reads_probabilities(backend: JudgeBackend, verdict: str, option: str, role: str) -> None:
    """A :class:`UsageError` when ``verdict`` reads probabilities and ``backend`` cannot."""
    if verdict != "text" and not backend.reads_probabilities:
        raise UsageError(
            f"{option} {verdict} needs a {role} whose next-token probabilities can be read; "
            f"{backend.kind}: {role}s do not expose them (use an hf: {role})"
        )


def read_probabilities(
    backend: JudgeBackend,
    fingerprint: dict[str, object],
    cache: AnswerCache | None,
    conversations: list[Conversation],
    *,
    verdict: VerdictMode,
    letters: tuple[str, ...],
    sampling: Sampling,
) -> list[tuple[VerdictProbabilities, bool]]:
    """Each conversation's verdict-letter probabilities (and whether it came from the cache):
    cached readings looked up, the rest read by the backend in one call. ``sampling`` is used
    (and keyed) only with ``rationale-probs``, for the reasoning written before the letter."""
    rationale = sampling if verdict == "rationale-probs" else None
    setting = {
        "verdict": verdict,
        "letters": letters,
        "sampling": None if rationale is None else rationale.to_dict(),
    }
    keys = [answer_key(fingerprint, c, setting) for c in conversations]
    found = [cache.get(k) if cache is not None else None for k in keys]
    ask = [i for i, hit in enumerate(found) if hit is None]
    fresh = (
        backend.verdict_probabilities([conversations[i] for i in ask], letters, rationale=rationale)
        if ask
        else []
    )
    read: list[VerdictProbabilities | None] = [
        None if hit is None else _probabilities_from(hit) for hit in found
    ]
    for i, reading in zip(ask, fresh, strict=True):
        read[i] = reading
        if cache is not None:
            cache.put(keys[i], _probabilities_as_answer(reading))
    out = []
    for got, hit in zip(read, found, strict=True):
        assert got is not None
        out.append((got, hit is not None))
    return out


def likeliest(reading: VerdictProbabilities) -> str:
    """The letter a reading gives the most probability."""
    return max(reading.probabilities, key=lambda k: reading.probabilities[k])


def _probabilities_as_answer(result: VerdictProbabilities) -> Generation:
    """A probability reading as a cache entry (its text is the reading as JSON)."""
    reading = {
        "probabilities": result.probabilities,
        "mass": result.mass,
        "rationale": result.rationale,
    }
    return Generation(
        json.dumps(reading), result.prompt_tokens, result.completion_tokens, result.seconds
    )


def _probabilities_from(answer: Generation) -> VerdictProbabilities:
    reading = json.loads(answer.text or "{}")
    return VerdictProbabilities(
        probabilities=reading["probabilities"],
        mass=reading["mass"],
        rationale=reading["rationale"],
        prompt_tokens=answer.prompt_tokens or 0,
        completion_tokens=answer.completion_tokens or 0,
        seconds=answer.seconds,
    )
