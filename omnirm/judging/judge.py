"""Judging records with a generative model: ``omnirm score --judge SPEC``.

**Pairwise** (the default; records with exactly two responses). Each pair is judged in both
orders by default — response 0 shown as A and response 1 as B ("ab"), then the reverse ("ba")
— because judges favour a position. Each order's verdict is mapped back to a response: 0, 1 or
"tie" (``[[C]]``). The two are combined by voting: a vote for response 0 counts +1, for
response 1 −1, a tie 0; the sign of the sum decides and a sum of 0 is a tie. So agreeing
orders give their answer, a side and a tie give that side, and orders that contradict each
other (the judge just picked a position) give a tie. ``consistent`` says whether both orders
named the same outcome. When one order has no verdict, the other decides alone (``consistent``
is then null); with none, ``predicted`` is null. ``--orders ab`` asks once.

**Pointwise** (``--mode pointwise``, any number of responses): one request per response; the
parsed scores become ``rewards`` (null where none could be read), and for pairs ``predicted``.

**Verdicts by likelihood** (``--verdict probs``, pairwise): instead of parsing the answer, the
judge's probability of each verdict letter is read right after ``[[`` — at the start of its
answer, or (``rationale-probs``) after the reasoning it writes first. Both orders' letter
probabilities are averaged (:mod:`omnirm.judging.likelihood`): every record gets a verdict,
``rewards`` [p(0), p(1)] and ``margin`` p(0) − p(1), which tie thresholds and best-of-N use.
Each order's ``judgements`` entry has its ``probabilities`` and ``mass`` (the share of the
next-token distribution the letters held: low means the judge wanted to write something else).

**Unparseable answers** (no verdict, or several) are asked again up to ``retries`` times, with
sampling at ``retry_temperature`` and the seed moved by the attempt number (so reruns are
reproducible); after that the order counts as having no verdict — never a guess. A request that
fails for good (a server error after the backend's own retries) makes the record fail, handled
by ``--on-error``; a rerun with ``--resume`` asks again.

Every answer is cached (:mod:`omnirm.judging.cache`): a resumed or repeated run asks only what
it has not seen. Output: ``predicted``, ``rationale`` (the first order's answer), per-request
``judgements`` (order or response, verdict or score, answer, attempts, tokens, seconds, cached),
``consistent`` (both orders), ``usage`` (totals for the record) and ``scored_by``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from omnirm.errors import RecordError
from omnirm.judging.cache import AnswerCache, answer_key
from omnirm.judging.conversations import ConversationBuilder
from omnirm.judging.likelihood import combine_probabilities, likeliest, read_probabilities
from omnirm.models.backends.base import (
    Conversation,
    Generation,
    JudgeBackend,
    Sampling,
    VerdictProbabilities,
)
from omnirm.on_error import ErrorPolicy
from omnirm.options import DEFAULT_RETRIES
from omnirm.prompts.templates import SCORE_RANGE
from omnirm.prompts.verdicts import parse_score, parse_verdict
from omnirm.records import TIE, InvalidRecord, Record
from omnirm.scorer import Item, windowed

Outcome = int | str | None  # 0, 1, "tie" or None (no verdict)


@dataclass
class JudgeSettings:
    mode: Literal["pairwise", "pointwise"] = "pairwise"
    orders: Literal["both", "ab"] = "both"
    verdict: Literal["text", "probs", "rationale-probs"] = "text"
    answer_format: Literal["marks", "json"] = "marks"  # how the prompt asks for the verdict
    ties: bool = False  # offer [[C]]
    retries: int = DEFAULT_RETRIES
    retry_temperature: float = 0.7
    criteria: str | None = None
    sampling: Sampling = field(default_factory=Sampling)
    window: int = 16  # records whose requests go to the backend together


@dataclass
class JudgeReport:
    records: int = 0
    failed: int = 0
    requests: int = 0  # answers used (one per order or response)
    asked: int = 0  # generations actually requested from the backend (retries included)
    cached: int = 0
    no_verdict: int = 0
    low_mass: int = 0  # --verdict probs: answers whose letters held under half the probability
    consistent: int = 0
    inconsistent: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    asked_as: str = "generations"  # "probability readings" with --verdict probs

    def summary(self) -> str:
        parts = [
            f"{self.records} records judged",
            f"{self.requests} answers ({self.cached} from the cache, {self.asked} "
            f"{self.asked_as} asked)",
        ]
        if self.no_verdict:
            parts.append(f"{self.no_verdict} without a verdict after retries")
        if self.low_mass:
            parts.append(f"{self.low_mass} answers with verdict letters under half the mass")
        both = self.consistent + self.inconsistent
        if both:
            parts.append(f"order consistency {self.consistent / both:.1%} ({both} pairs)")
        parts.append(
            f"tokens {self.prompt_tokens} in / {self.completion_tokens} out, "
            f"{self.seconds:.1f} s of generation"
        )
        if self.failed:
            parts.append(f"{self.failed} failed")
        return ", ".join(parts)


def combine_orders(ab: Outcome, ba: Outcome) -> tuple[Outcome, bool | None]:
    """The combined outcome of the two orders and whether they agree (see the module docs)."""
    if ab is None or ba is None:
        return (ab if ba is None else ba), None
    vote = _vote(ab) + _vote(ba)
    combined: Outcome = 0 if vote > 0 else 1 if vote < 0 else TIE
    return combined, ab == ba


def _vote(outcome: Outcome) -> int:
    return 1 if outcome == 0 else -1 if outcome == 1 else 0


def verdict_outcome(verdict: str | None, order: str) -> Outcome:
    """A verdict letter as a response index for the order it was given in."""
    if verdict is None:
        return None
    if verdict == "C":
        return TIE
    first = verdict == "A"
    return (0 if first else 1) if order == "ab" else (1 if first else 0)


@dataclass
class _Request:
    """One answer a record needs: an order of its pair, or one of its responses."""

    slot: int  # the record's position in the window
    label: str  # "ab" / "ba" / "response 2"
    conversation: Conversation
    attempts: int = 0
    cached: bool = False
    answer: Generation | None = None
    parsed: Any = None
    probabilities: VerdictProbabilities | None = None  # --verdict probs
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


class Judge:
    """Judges record streams with one backend; :attr:`report` counts what happened."""

    def __init__(
        self,
        backend: JudgeBackend,
        builder: ConversationBuilder,
        settings: JudgeSettings,
        scored_by: dict[str, Any],
        cache: AnswerCache | None = None,
        source: str | None = None,
    ) -> None:
        self.backend = backend
        self.builder = builder
        self.settings = settings
        self.scored_by = scored_by
        self.cache = cache
        self.source = source
        self.fingerprint = backend.fingerprint()
        self.report = JudgeReport(
            asked_as="generations" if settings.verdict == "text" else "probability readings"
        )

    def score(
        self,
        items: Iterable[tuple[int, Record | InvalidRecord]],
        policy: ErrorPolicy,
        *,
        ramp_up: bool = True,
    ) -> Iterator[dict[str, Any]]:
        """Judged records in input order, in windows of up to ``settings.window`` records (their
        requests go to the backend together); bad ones go to ``policy``. A local backend's
        windows start at one record and grow while they are quick; ``ramp_up=False`` makes every
        window ``settings.window`` records from the first, so the batches (and the answers
        sampled in them, seeded per batch) do not depend on timing."""
        size = self.settings.window
        first = size if self.backend.answers_concurrently or not ramp_up else 1
        return windowed(
            items, self._window, lambda w, r: self._emit(w, r, policy), first=first, largest=size
        )

    # -- one window -----------------------------------------------------------------------------

    def _window(self, window: list[Item]) -> tuple[list[_Request], dict[int, InvalidRecord]]:
        """The window's requests, answered, and the records that failed building them."""
        requests: list[_Request] = []
        failures: dict[int, InvalidRecord] = {}
        for slot, (line, item) in enumerate(window):
            if isinstance(item, InvalidRecord):
                failures[slot] = item
                continue
            try:
                requests += self._requests(slot, item)
            except RecordError as error:
                error.located(source=self.source, line=line, record_id=item.id)
                failures[slot] = InvalidRecord(line, error, item.to_dict())
        if self.settings.verdict == "text":
            self._answer(requests)
        else:
            self._read_probabilities(requests)
        return requests, failures

    def _emit(
        self,
        window: list[Item],
        answered: tuple[list[_Request], dict[int, InvalidRecord]],
        policy: ErrorPolicy,
    ) -> Iterator[dict[str, Any]]:
        requests, failures = answered
        by_slot: dict[int, list[_Request]] = {}
        for request in requests:
            by_slot.setdefault(request.slot, []).append(request)
        for slot, (line, item) in enumerate(window):
            mine = by_slot.get(slot, [])
            broken = next((r for r in mine if r.answer is not None and r.answer.text is None), None)
            if slot not in failures and broken is not None and isinstance(item, Record):
                assert broken.answer is not None
                failure = RecordError(
                    f"judge request ({broken.label}) failed: {broken.answer.error}"
                )
                failure.located(source=self.source, line=line, record_id=item.id)
                failures[slot] = InvalidRecord(line, failure, item.to_dict())
            if slot in failures:
                self.report.failed += 1
                policy.handle(failures[slot])
                continue
            assert isinstance(item, Record)
            self.report.records += 1
            yield self._annotate(item, mine)

    def _requests(self, slot: int, record: Record) -> list[_Request]:
        settings = self.settings
        asked = judge_conversations(
            self.builder, record, settings.mode, settings.orders, settings.criteria
        )
        return [_Request(slot, label, conversation) for label, conversation in asked]

    def _answer(self, requests: list[_Request]) -> None:
        """Answers for every request: from the cache, else the backend; unparseable answers are
        asked again (up to ``retries`` times) at the retry temperature, seed moved by attempt."""
        pending = list(requests)
        for attempt in range(self.settings.retries + 1):
            if not pending:
                break
            sampling = self._sampling(attempt)
            keys = [
                answer_key(
                    self.fingerprint, r.conversation, {**sampling.to_dict(), "attempt": attempt}
                )
                for r in pending
            ]
            cached = [self.cache.get(k) if self.cache is not None else None for k in keys]
            ask = [i for i, hit in enumerate(cached) if hit is None]
            fresh = (
                self.backend.generate([pending[i].conversation for i in ask], sampling)
                if ask
                else []
            )
            self.report.asked += len(ask)
            answers = list(cached)
            for i, generated in zip(ask, fresh, strict=True):
                answers[i] = generated
                if self.cache is not None:
                    self.cache.put(keys[i], generated)
            still: list[_Request] = []
            for i, (request, answer) in enumerate(zip(pending, answers, strict=True)):
                assert answer is not None
                request.attempts = attempt + 1
                request.answer = answer
                request.cached = cached[i] is not None
                request.prompt_tokens += answer.prompt_tokens or 0
                request.completion_tokens += answer.completion_tokens or 0
                request.seconds += answer.seconds
                if answer.text is None:
                    continue  # failed for good: the record fails
                request.parsed = self._parse(answer.text)
                if request.parsed is None:
                    still.append(request)
            pending = still

    def _read_probabilities(self, requests: list[_Request]) -> None:
        """Every request's verdict-letter probabilities: from the cache, else the backend."""
        settings = self.settings
        assert settings.verdict != "text"
        readings = read_probabilities(
            self.backend,
            self.fingerprint,
            self.cache,
            [r.conversation for r in requests],
            verdict=settings.verdict,
            letters=("A", "B", "C") if settings.ties else ("A", "B"),
            sampling=settings.sampling,
        )
        self.report.asked += sum(1 for _, cached in readings if not cached)
        for request, (result, cached) in zip(requests, readings, strict=True):
            request.attempts = 1
            request.cached = cached
            request.probabilities = result
            request.answer = Generation(result.rationale or "", seconds=result.seconds)
            request.parsed = likeliest(result)
            request.prompt_tokens = result.prompt_tokens
            request.completion_tokens = result.completion_tokens
            request.seconds = result.seconds

    def _sampling(self, attempt: int) -> Sampling:
        base = self.settings.sampling
        if attempt == 0:
            return base
        seed = None if base.seed is None else base.seed + attempt
        return replace(
            base, temperature=max(base.temperature, self.settings.retry_temperature), seed=seed
        )

    def _parse(self, text: str) -> Any:
        return parse_answer(self.settings.mode, text)

    # -- output -------------------------------------------------------------------------------

    def _annotate(self, record: Record, requests: list[_Request]) -> dict[str, Any]:
        out = record.to_dict()
        report = self.report
        judgements = []
        for request in requests:
            report.requests += 1
            report.cached += 1 if request.cached else 0
            report.no_verdict += 1 if request.parsed is None else 0
            report.prompt_tokens += request.prompt_tokens
            report.completion_tokens += request.completion_tokens
            report.seconds += request.seconds
            judgements.append(self._judgement(request))
        if self.settings.verdict != "text" and self.settings.mode != "pointwise":
            self._annotate_probabilities(out, requests)
        else:
            first = requests[0].answer
            out.update(
                answer_fields(
                    self.settings.mode,
                    [r.label for r in requests],
                    [r.parsed for r in requests],
                    first.text if first is not None else None,
                )
            )
            consistent = out.get("consistent")
            if consistent is not None:
                report.consistent += 1 if consistent else 0
                report.inconsistent += 0 if consistent else 1
        out["judgements"] = judgements
        out["usage"] = {
            "requests": len(requests),
            "generations": sum(r.attempts for r in requests if not r.cached),
            "prompt_tokens": sum(r.prompt_tokens for r in requests),
            "completion_tokens": sum(r.completion_tokens for r in requests),
            "seconds": round(sum(r.seconds for r in requests), 4),
        }
        out["scored_by"] = self.scored_by
        return out

    def _annotate_probabilities(self, out: dict[str, Any], requests: list[_Request]) -> None:
        views = [r.probabilities for r in requests]
        assert views[0] is not None
        combined = combine_probabilities(views[0], views[1] if len(views) == 2 else None)
        out["predicted"] = combined.predicted
        out["rewards"] = [round(combined.better, 6), round(combined.worse, 6)]
        out["margin"] = round(combined.margin, 6)
        if self.settings.ties:
            out["tie_probability"] = round(combined.tie, 6)
        self.report.low_mass += sum(1 for v in views if v is not None and v.mass < 0.5)
        if len(requests) == 2:
            ab, ba = (verdict_outcome(r.parsed, r.label) for r in requests)
            out["consistent"] = ab == ba
            self.report.consistent += 1 if ab == ba else 0
            self.report.inconsistent += 0 if ab == ba else 1
        else:
            out["consistent"] = None
        out["rationale"] = views[0].rationale

    def _judgement(self, request: _Request) -> dict[str, Any]:
        answer = request.answer
        entry: dict[str, Any]
        if self.settings.mode == "pointwise":
            entry = {"response": int(request.label.split()[-1]), "score": request.parsed}
        else:
            entry = {
                "order": request.label,
                "verdict": request.parsed,
                "predicted": verdict_outcome(request.parsed, request.label),
            }
            if request.probabilities is not None:
                entry["probabilities"] = {
                    k: round(v, 6) for k, v in request.probabilities.probabilities.items()
                }
                entry["mass"] = round(request.probabilities.mass, 6)
        entry.update(
            answer=answer.text if answer is not None else None,
            attempts=request.attempts,
            cached=request.cached,
            prompt_tokens=request.prompt_tokens,
            completion_tokens=request.completion_tokens,
            seconds=round(request.seconds, 4),
        )
        return entry


def judge_conversations(
    builder: ConversationBuilder,
    record: Record,
    mode: str,
    orders: str,
    criteria: str | None = None,
) -> list[tuple[str, Conversation]]:
    """The conversations a record is judged by, each with its label: ``ab`` (and ``ba`` with
    ``orders == "both"``) for a pairwise judge, ``response I`` per response for a pointwise
    one. A pairwise judge takes two responses (a :class:`RecordError` otherwise)."""
    if mode == "pointwise":
        return [
            (f"response {i}", builder.pointwise(record, i, criteria))
            for i in range(record.num_responses)
        ]
    if record.num_responses != 2:
        raise RecordError(
            f"pairwise judging takes two responses, this record has {record.num_responses}: "
            "use --mode pointwise (or omnirm bon for rankings)",
            field="responses",
        )
    asked = [("ab", builder.pairwise(record, 0, 1, criteria))]
    if orders == "both":
        asked.append(("ba", builder.pairwise(record, 1, 0, criteria)))
    return asked


def parse_answer(mode: str, text: str) -> Any:
    """A judge's answer read: a pairwise verdict (``A``, ``B``, ``C``) or a pointwise score;
    None when it holds none (or several)."""
    if mode == "pointwise":
        return parse_score(text, *SCORE_RANGE)
    return parse_verdict(text)


def answer_fields(
    mode: str, labels: list[str], parsed: list[Any], rationale: str | None
) -> dict[str, Any]:
    """What a record's parsed text answers (one per label of :func:`judge_conversations`) add
    to it: pointwise ``rewards`` (and ``predicted`` for a pair); pairwise ``predicted`` (the
    orders combined), ``consistent`` and ``rationale`` (the first answer)."""
    if mode == "pointwise":
        out: dict[str, Any] = {"rewards": parsed}
        if len(parsed) == 2:
            out["predicted"] = _from_scores(parsed[0], parsed[1])
        return out
    outcomes = [
        verdict_outcome(verdict, label) for verdict, label in zip(parsed, labels, strict=True)
    ]
    if len(outcomes) == 2:
        predicted, consistent = combine_orders(outcomes[0], outcomes[1])
    else:
        predicted, consistent = outcomes[0], None
    return {"consistent": consistent, "predicted": predicted, "rationale": rationale}


def _from_scores(first: float | None, second: float | None) -> Outcome:
    if first is None or second is None:
        return None
    return 0 if first > second else 1 if second > first else TIE


def judge_provenance(
    spec: str, backend: JudgeBackend, settings: JudgeSettings, template_source: str
) -> dict[str, Any]:
    """The ``scored_by`` block of judged records."""
    from omnirm import __version__

    return {
        "judge": spec,
        "backend": backend.kind,
        "model": backend.model,
        "mode": settings.mode,
        "orders": settings.orders if settings.mode == "pairwise" else None,
        "verdict": settings.verdict,
        "answer_format": settings.answer_format,
        "ties": settings.ties,
        "template": template_source,
        "criteria_override": settings.criteria,
        "sampling": settings.sampling.to_dict(),
        "retries": settings.retries,
        "omnirm": __version__,
    }
