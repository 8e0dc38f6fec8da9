"""Model calls of the data-building pipelines: teachers, verifiers and generators.

Each role is a :class:`Caller` over a judge backend (``hf:``, ``openai:``, ``vllm:``). Calls go
in batches: one ``generate`` call per batch of conversations (an ``hf:`` backend pads and runs
them together, ``vllm:`` schedules them at once, ``openai:`` keeps ``--concurrency`` requests in
flight). Every answer is first looked up in the judge's answer cache (content hash of the
backend's fingerprint, the conversation and the sampling settings), so a repeated or resumed
run asks only what it has not seen.

Structured answers (:meth:`Caller.ask_json`) are parsed and checked by a validator; an answer
that fails is asked again, up to ``retries`` times, with the problem named in a follow-up turn;
after that the item has no answer — never a guessed field. Each answer's fields are defined
once, as a pydantic model: :func:`check_answer` validates a parsed answer against it and
:func:`answer_schema` gives its JSON schema, which a ``structured`` caller hands the backend so
that it constrains decoding to it (``hf:`` through xgrammar, ``vllm:`` through guided decoding,
``openai:`` through ``response_format``); the validation and re-asks stay for servers that
ignore the schema. Verdict answers
(:meth:`Caller.ask_verdicts`) are re-asked like the judge's (sampling moved by the attempt), or,
with ``verdict="probs"`` / ``"rationale-probs"``, read from the model's probabilities of the
verdict letters as ``score --verdict probs`` reads them
(:func:`omnirm.judging.likelihood.read_probabilities`): every request then has a verdict.
:class:`CallStats` counts calls, cache hits, re-asks, tokens and time per role.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from omnirm.errors import UsageError
from omnirm.judging.cache import AnswerCache, answer_key
from omnirm.judging.likelihood import VerdictMode, likeliest, read_probabilities
from omnirm.models.backends.base import (
    Conversation,
    Generation,
    JudgeBackend,
    Sampling,
    VerdictProbabilities,
)
from omnirm.prompts.data import REASK
from omnirm.prompts.verdicts import parse_verdict

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class Invalid(ValueError):
    """A teacher's answer that does not pass its validator (the message names the problem)."""


def check_answer(model: type[M], value: Any) -> M:
    """``value`` validated as ``model``, or :class:`Invalid` naming the first bad field."""
    try:
        return model.model_validate(value)
    except ValidationError as error:
        first = error.errors()[0]
        path = ".".join(str(part) for part in first["loc"])
        cause = first.get("ctx", {}).get("error")
        message = str(cause) if isinstance(cause, ValueError) else first["msg"]
        raise Invalid(f'"{path}": {message}' if path else message) from None


def answer_schema(model: type[BaseModel]) -> str:
    """The JSON schema (canonical JSON text) of ``model``'s answers for constrained decoding:
    every property required and no others (the form OpenAI's strict mode asks for)."""
    schema = model.model_json_schema()

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node["required"] = list(node["properties"])
                node["additionalProperties"] = False
            for child in node.values():
                close(child)
        elif isinstance(node, list):
            for child in node:
                close(child)

    close(schema)
    return json.dumps(schema)


@dataclass
class CallStats:
    """What one role's calls cost."""

    requests: int = 0  # answers wanted (one per item, re-asks not counted)
    calls: int = 0  # generations asked of the backend
    cached: int = 0  # answers taken from the cache
    reasks: int = 0  # follow-up questions after an unusable answer
    unusable: int = 0  # requests still without a usable answer after the re-asks
    failed: int = 0  # requests the backend could not answer
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0  # generation time the backend reported

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["seconds"] = round(self.seconds, 3)
        return out


@dataclass
class Answer(Generic[T]):
    """One request's outcome: ``value`` (None when unusable or failed), the last answer's text,
    attempts, whether every attempt came from the cache, and the last problem; ``reading``
    holds the letter probabilities of a verdict read by likelihood."""

    value: T | None
    text: str | None
    attempts: int
    cached: bool
    problem: str | None = None
    failed: bool = False
    reading: VerdictProbabilities | None = None


@dataclass
class _Pending:
    index: int
    conversation: Conversation
    attempts: int = 0
    cached: bool = True
    text: str | None = None
    problem: str | None = None
    failed: bool = False
    value: Any = None
    done: bool = False


@dataclass
class Caller:
    """One role's model: a backend, the cache, sampling and the re-ask budget."""

    role: str
    spec: str
    backend: JudgeBackend
    sampling: Sampling = field(default_factory=Sampling)
    cache: AnswerCache | None = None
    retries: int = 2
    retry_temperature: float = 0.7
    stats: CallStats = field(default_factory=CallStats)
    #: hand JSON answers' schemas to the backend (None: where the backend can constrain them)
    structured: bool | None = None

    def __post_init__(self) -> None:
        self.fingerprint = self.backend.fingerprint()
        supported = self.backend.constrains_json
        if self.structured and not supported:
            raise UsageError(
                f"--structured: the {self.role}'s backend ({self.spec}) cannot constrain its "
                "answers to a JSON schema (use --no-structured)"
            )
        self.structured = supported if self.structured is None else self.structured

    def provenance(self) -> dict[str, Any]:
        return {"spec": self.spec, "backend": self.backend.kind, "model": self.backend.model}

    def generate(
        self,
        conversations: list[Conversation],
        attempt: int = 0,
        sample: int = 0,
        json_schema: str | None = None,
    ) -> list[tuple[Generation, bool]]:
        """Answers (and whether each came from the cache) in order: cached ones looked up, the
        rest asked of the backend in one call. ``sample`` tells apart several answers wanted
        from one conversation (generators' N responses): it moves the seed and the cache key.
        ``json_schema`` constrains the answers to it (part of the sampling and the key)."""
        sampling = replace(self._sampling(attempt, sample), json_schema=json_schema)
        settings = {**sampling.to_dict(), "attempt": attempt}
        if sample:
            settings["sample"] = sample
        keys = [answer_key(self.fingerprint, c, settings) for c in conversations]
        found = [self.cache.get(k) if self.cache is not None else None for k in keys]
        ask = [i for i, hit in enumerate(found) if hit is None]
        fresh = self.backend.generate([conversations[i] for i in ask], sampling) if ask else []
        self.stats.calls += len(ask)
        self.stats.cached += len(conversations) - len(ask)
        answers: list[Generation | None] = list(found)
        for i, generated in zip(ask, fresh, strict=True):
            answers[i] = generated
            if self.cache is not None:
                self.cache.put(keys[i], generated)
        out = []
        for i, answer in enumerate(answers):
            assert answer is not None
            self.stats.prompt_tokens += answer.prompt_tokens or 0
            self.stats.completion_tokens += answer.completion_tokens or 0
            self.stats.seconds += answer.seconds
            out.append((answer, found[i] is not None))
        return out

    def _sampling(self, attempt: int, sample: int) -> Sampling:
        base = self.sampling
        seed = None if base.seed is None else base.seed + attempt + 1000 * sample
        if attempt == 0:
            return replace(base, seed=seed)
        return replace(base, temperature=max(base.temperature, self.retry_temperature), seed=seed)

    def ask_json(
        self,
        conversations: list[Conversation],
        validate: Callable[[Any], T],
        schema: str | None = None,
    ) -> list[Answer[T]]:
        """Structured answers: each answer's JSON object passed to ``validate`` (which returns
        the checked value or raises :class:`Invalid`); unusable answers are asked again with
        the problem named, up to ``retries`` times. A ``structured`` caller hands ``schema``
        (from :func:`answer_schema`) to the backend to constrain decoding."""
        json_schema = schema if self.structured else None
        items = [_Pending(i, list(c)) for i, c in enumerate(conversations)]
        self.stats.requests += len(items)
        for attempt in range(self.retries + 1):
            pending = [item for item in items if not item.done]
            if not pending:
                break
            if attempt:
                self.stats.reasks += len(pending)
            answers = self.generate(
                [item.conversation for item in pending], attempt, json_schema=json_schema
            )
            for item, (answer, cached) in zip(pending, answers, strict=True):
                self._take(item, answer, cached)
                if item.done:
                    continue
                try:
                    item.value = validate(extract_json(item.text or ""))
                    item.done = True
                except Invalid as problem:
                    item.problem = str(problem)
                    item.conversation = [
                        *item.conversation,
                        {"role": "assistant", "content": item.text or ""},
                        {"role": "user", "content": REASK.format(problem=problem)},
                    ]
        return [self._answer(item) for item in items]

    def ask_verdicts(
        self, conversations: list[Conversation], verdict: VerdictMode = "text"
    ) -> list[Answer[str]]:
        """Pairwise verdicts (A, B or C) from judge conversations. ``text``: parsed from the
        answer; one without a single verdict is asked again (the same conversation, sampling
        moved by the attempt). ``probs`` / ``rationale-probs``: the likelier letter of A and B
        at the verdict position (see :mod:`omnirm.judging.likelihood`), with its reading."""
        if verdict != "text":
            return self._read_verdicts(conversations, verdict)
        items = [_Pending(i, c) for i, c in enumerate(conversations)]
        self.stats.requests += len(items)
        for attempt in range(self.retries + 1):
            pending = [item for item in items if not item.done]
            if not pending:
                break
            if attempt:
                self.stats.reasks += len(pending)
            answers = self.generate([item.conversation for item in pending], attempt)
            for item, (answer, cached) in zip(pending, answers, strict=True):
                self._take(item, answer, cached)
                if item.done:
                    continue
                item.value = parse_verdict(item.text or "")
                item.done = item.value is not None
                item.problem = None if item.done else "no single verdict ([[A]] or [[B]])"
        return [self._answer(item) for item in items]

    def _read_verdicts(
        self, conversations: list[Conversation], verdict: VerdictMode
    ) -> list[Answer[str]]:
        readings = read_probabilities(
            self.backend, self.fingerprint, self.cache, conversations, verdict=verdict,
            letters=("A", "B"), sampling=self._sampling(0, 0),
        )  # fmt: skip
        self.stats.requests += len(readings)
        out: list[Answer[str]] = []
        for reading, cached in readings:
            self.stats.calls += 0 if cached else 1
            self.stats.cached += 1 if cached else 0
            self.stats.prompt_tokens += reading.prompt_tokens
            self.stats.completion_tokens += reading.completion_tokens
            self.stats.seconds += reading.seconds
            out.append(Answer(likeliest(reading), reading.rationale, 1, cached, reading=reading))
        return out

    def _take(self, item: _Pending, answer: Generation, cached: bool) -> None:
        item.attempts += 1
        item.cached = item.cached and cached
        item.text = answer.text
        if answer.text is None:
            item.failed, item.done = True, True
            item.problem = f"request failed: {answer.error}"

    def _answer(self, item: _Pending) -> Answer[Any]:
        if item.failed:
            self.stats.failed += 1
        elif item.value is None:
            self.stats.unusable += 1
        value = None if item.failed else item.value
        return Answer(value, item.text, item.attempts, item.cached, item.problem, item.failed)


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_json(text: str) -> dict[str, Any]:
    """The one JSON object an answer holds: the whole answer, a fenced block, or the span from
    its first ``{`` to its last ``}``. Raises :class:`Invalid` otherwise."""
    candidates = [text.strip(), *(m.strip() for m in _FENCE.findall(text))]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise Invalid("no JSON object found in the reply")


class Timer:
    """Wall-clock seconds since it was made."""

    def __init__(self) -> None:
        self.began = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.began
