"""``omnirm data pairs``: preference pairs scored with rationales by two teachers.

After Omni-RRM's Omni-Preference: a stronger and a weaker generator answer the same prompt
(with its media) ``n_responses`` times each, the i-th answer of one paired with the i-th of the
other — or the input's own candidates are paired (every two of them). Which candidate is shown
as A is decided by a seeded hash of the record id and the pair, so the better response is not
always in the same position, and the output keeps that order.

Each teacher (two by default) scores both responses from 0 to 10 on five aspects
(:data:`~omnirm.prompts.data.PAIR_ASPECTS`) and gives a verdict and a rationale, as JSON
checked and re-asked when unusable. A pair is kept when every teacher gives the same non-tie
verdict, each verdict agrees with that teacher's scores (the winner's total is higher), and
the score gap — the winner's mean aspect score minus the loser's, averaged over the teachers —
exceeds ``min_gap`` (and, with ``max_gap``, is at most that: hard, low-contrast pairs on
purpose). Kept records carry ``preference``, ``rationale`` (the first teacher's, for
``train r1 --stage sft``), ``teacher_scores`` and ``provenance``; the rest go to the rejects
with the reason.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model, field_validator

from omnirm.data.build import BuildOutput, BuildStats, Built, windows
from omnirm.data.teach import Answer, Caller, answer_schema, check_answer
from omnirm.errors import RecordError
from omnirm.judging.conversations import ConversationBuilder
from omnirm.media.paths import MediaResolver
from omnirm.models.backends.base import Conversation
from omnirm.on_error import ErrorPolicy
from omnirm.prompts.data import DATA_PROMPT_VERSION, PAIR_ASPECTS, PAIR_USER, pair_system
from omnirm.prompts.templates import Template, default_template, render
from omnirm.records import Content, InvalidRecord, Record
from omnirm.resume import value_hash


@dataclass
class PairsSettings:
    n_responses: int = 1
    min_gap: float = 1.0
    max_gap: float | None = None
    seed: int = 0
    window: int = 16


@dataclass(frozen=True)
class TeacherScores:
    """One teacher's checked answer: aspect scores of A and B, verdict ("A", "B", "tie")."""

    a: dict[str, float]
    b: dict[str, float]
    verdict: str
    rationale: str

    def totals(self) -> tuple[float, float]:
        return sum(self.a.values()), sum(self.b.values())

    def consistent(self) -> bool:
        """Whether the verdict agrees with the scores."""
        a, b = self.totals()
        return {"A": a > b, "B": b > a, "tie": a == b}[self.verdict]

    def gap(self) -> float:
        """|mean aspect score of A − of B|."""
        a, b = self.totals()
        return abs(a - b) / len(PAIR_ASPECTS)


#: one aspect's score: any JSON number 0-10 is accepted, a constrained teacher writes integers
Score = Annotated[float, Field(ge=0, le=10, strict=True, json_schema_extra={"type": "integer"})]
#: a rationale's longest (with the scores, a constrained answer fits the default 768 tokens)
MAX_RATIONALE_CHARS = 600
#: a response's scores, one field per aspect
_ASPECT_FIELDS: dict[str, Any] = {aspect: (Score, ...) for aspect in PAIR_ASPECTS}
AspectScores: type[BaseModel] = create_model("AspectScores", **_ASPECT_FIELDS)


class SideScores(BaseModel):
    A: AspectScores  # type: ignore[valid-type]
    B: AspectScores  # type: ignore[valid-type]


class ScoresAnswer(BaseModel):
    """A teacher's answer: both responses' aspect scores, a verdict and a rationale."""

    scores: SideScores
    verdict: Literal["A", "B", "tie"]
    rationale: Annotated[str, Field(min_length=1, max_length=MAX_RATIONALE_CHARS)]

    @field_validator("verdict", mode="before")
    @classmethod
    def _any_case(cls, verdict: Any) -> Any:
        return {"a": "A", "b": "B", "tie": "tie"}.get(str(verdict).strip().lower(), verdict)

    @field_validator("rationale")
    @classmethod
    def _not_blank(cls, rationale: str) -> str:
        if not rationale.strip():
            raise ValueError("must be a non-empty string")
        return rationale.strip()


#: the JSON schema a structured teacher's answers are held to
SCORES_SCHEMA = answer_schema(ScoresAnswer)


def validate_scores(value: dict[str, Any]) -> TeacherScores:
    """A teacher's JSON answer checked field by field, or :class:`Invalid` naming the field."""
    answer = check_answer(ScoresAnswer, value)
    sides = answer.model_dump()["scores"]
    return TeacherScores(sides["A"], sides["B"], answer.verdict, answer.rationale)


def swapped(seed: int, record_id: str, pair: int) -> bool:
    """Whether the pair's candidates are shown (and written) in reverse order."""
    digest = hashlib.sha256(f"{seed}\x00{record_id}\x00{pair}".encode()).digest()
    return bool(digest[0] & 1)


@dataclass
class _Pair:
    slot: int
    record: Record  # the candidate record: the input's prompt, the two responses shown
    index: int
    models: list[str | None]
    answers: list[Answer[TeacherScores]] | None = None
    problem: str | None = None  # rejected before the teachers (an empty response)


class PairsPipeline:
    """Generators (optional) and teachers over record streams (see the module docs)."""

    def __init__(
        self,
        teachers: list[Caller],
        resolver: MediaResolver,
        settings: PairsSettings,
        stats: BuildStats,
        *,
        strong: Caller | None = None,
        weak: Caller | None = None,
        source: str = "the input",
    ) -> None:
        if not teachers:
            raise ValueError("at least one teacher")
        if (strong is None) != (weak is None):
            raise ValueError("both generators or neither")
        self.teachers = teachers
        self.strong, self.weak = strong, weak
        self.settings = settings
        self.stats = stats
        self.source = source
        template = default_template("pairwise")
        self.views = [
            ConversationBuilder(template, resolver, t.backend.modalities) for t in teachers
        ]
        self.generator_views = {
            role: ConversationBuilder(template, resolver, caller.backend.modalities)
            for role, caller in (("strong", strong), ("weak", weak))
            if caller is not None
        }
        if strong is not None and weak is not None:
            stats.roles["strong generator"] = strong
            stats.roles["weak generator"] = weak
        for index, teacher in enumerate(teachers):
            stats.roles[f"teacher {index + 1}"] = teacher
        self.candidates = 0
        self.scored = 0

    def fingerprint(self) -> str:
        settings = self.settings
        return value_hash(
            {
                "pipeline": "pairs",
                "prompt_version": DATA_PROMPT_VERSION,
                "prompts": [pair_system(), PAIR_USER],
                "teachers": [
                    [t.fingerprint, t.sampling.to_dict(), t.retries, t.structured]
                    for t in self.teachers
                ],
                "generators": [
                    [g.fingerprint, g.sampling.to_dict()]
                    for g in (self.strong, self.weak)
                    if g is not None
                ],
                "n_responses": settings.n_responses,
                "min_gap": settings.min_gap,
                "max_gap": settings.max_gap,
                "seed": settings.seed,
            }
        )

    def provenance(self) -> dict[str, Any]:
        from omnirm import __version__

        generators = (
            None
            if self.strong is None or self.weak is None
            else {"strong": self.strong.provenance(), "weak": self.weak.provenance()}
        )
        return {
            "pipeline": "pairs",
            "prompt_version": DATA_PROMPT_VERSION,
            "teachers": [t.provenance() for t in self.teachers],
            "generators": generators,
            "min_gap": self.settings.min_gap,
            "max_gap": self.settings.max_gap,
            "omnirm": __version__,
        }

    def run(
        self,
        items: Iterable[tuple[int, Record | InvalidRecord]],
        output: BuildOutput,
        policy: ErrorPolicy,
    ) -> Iterator[int]:
        base = self.provenance()
        for window in windows(iter(items), self.settings.window):
            for line, item, result in self._window(window):
                if isinstance(item, InvalidRecord):
                    self.stats.failed += 1
                    policy.handle(item)
                elif isinstance(result, RecordError):
                    self.stats.failed += 1
                    error = result.located(source=self.source, line=line, record_id=item.id)
                    policy.handle(InvalidRecord(line, error, item.to_dict()))
                else:
                    output.write(item, result, base)
                yield line
        self.stats.ratios = {"pairs scored usable": (self.scored, self.candidates)}

    # -- one window -----------------------------------------------------------------------------

    def _window(
        self, window: list[tuple[int, Record | InvalidRecord]]
    ) -> Iterator[tuple[int, Record | InvalidRecord, list[Built] | RecordError]]:
        results: dict[int, list[Built] | RecordError] = {}
        records = {s: item for s, (_, item) in enumerate(window) if isinstance(item, Record)}
        self.stats.inputs += len(records)
        candidates = self._candidates(records, results)
        pairs: list[_Pair] = []
        for slot, options in candidates.items():
            pairs += self._pairs(slot, records[slot], options)
        self._score([p for p in pairs if p.problem is None], results)
        for pair in pairs:
            if not isinstance(results.get(pair.slot), RecordError):
                built = results.setdefault(pair.slot, [])
                assert isinstance(built, list)
                built.append(self._line(pair))
        for slot, (line, item) in enumerate(window):
            yield line, item, results.get(slot, [])

    def _candidates(
        self, records: dict[int, Record], results: dict[int, list[Built] | RecordError]
    ) -> dict[int, list[tuple[list[Content], list[str | None]]]]:
        """Per record, the pairs to score: (two responses, the models that wrote them)."""
        out: dict[int, list[tuple[list[Content], list[str | None]]]] = {}
        if self.strong is None or self.weak is None:
            for slot, record in records.items():
                if record.num_responses < 2:
                    reason = "needs two or more responses, or --strong and --weak generators"
                    results[slot] = [self._input_rejected(record, reason)]
                    continue
                out[slot] = [
                    ([record.responses[i], record.responses[j]], [None, None])
                    for i, j in itertools.combinations(range(record.num_responses), 2)
                ]
            return out
        answers: dict[str, dict[int, list[str | None]]] = {}
        for role, caller in (("strong", self.strong), ("weak", self.weak)):
            view = self.generator_views[role]
            conversations: dict[int, Conversation] = {}
            for slot, record in records.items():
                if slot in results:
                    continue
                try:
                    conversations[slot] = [{"role": "user", "content": view.prompt_content(record)}]
                except RecordError as error:
                    results[slot] = error
            answers[role] = {slot: [] for slot in conversations}
            for sample in range(self.settings.n_responses):
                got = caller.generate(list(conversations.values()), sample=sample)
                for slot, (generation, _) in zip(conversations, got, strict=True):
                    if generation.text is None:
                        results[slot] = RecordError(
                            f"{role} generator request failed: {generation.error}"
                        )
                    answers[role][slot].append(generation.text)
        for slot in records:
            if slot in results:
                continue
            strong, weak = answers["strong"][slot], answers["weak"][slot]
            models = [self.strong.spec, self.weak.spec]
            out[slot] = [
                ([s or "", w or ""], list(models)) for s, w in zip(strong, weak, strict=True)
            ]
        return out

    def _pairs(
        self, slot: int, record: Record, options: list[tuple[list[Content], list[str | None]]]
    ) -> list[_Pair]:
        pairs = []
        for index, (responses, models) in enumerate(options):
            if swapped(self.settings.seed, record.id, index):
                responses, models = responses[::-1], models[::-1]
            candidate = Record(
                id=f"{record.id}:p{index}",
                responses=list(responses),
                prompt=record.prompt,
                messages=record.messages,
                task=record.task,
                extra={k: v for k, v in record.extra.items() if k != "provenance"},
            )
            pair = _Pair(slot, candidate, index, list(models))
            if any(isinstance(r, str) and not r.strip() for r in responses):
                pair.problem = "a generator gave an empty response"
            pairs.append(pair)
        return pairs

    def _score(self, pairs: list[_Pair], results: dict[int, list[Built] | RecordError]) -> None:
        """Every teacher scores every pair (one batch per teacher)."""
        for pair in pairs:
            pair.answers = []
        for index, (teacher, view) in enumerate(zip(self.teachers, self.views, strict=True)):
            asked: list[_Pair] = []
            conversations: list[Conversation] = []
            for pair in pairs:
                if isinstance(results.get(pair.slot), RecordError):
                    continue
                try:
                    conversations.append(self._conversation(view, pair.record))
                except RecordError as error:
                    results[pair.slot] = error
                    continue
                asked.append(pair)
            for pair, answer in zip(
                asked, teacher.ask_json(conversations, validate_scores, SCORES_SCHEMA), strict=True
            ):
                if answer.failed:
                    results[pair.slot] = RecordError(f"teacher {index + 1} {answer.problem}")
                assert pair.answers is not None
                pair.answers.append(answer)

    @staticmethod
    def _conversation(view: ConversationBuilder, record: Record) -> Conversation:
        slots = {
            "prompt": view.prompt_content(record),
            "response_a": view.response_content(record, 0),
            "response_b": view.response_content(record, 1),
        }
        _, user = render(Template("", PAIR_USER), task=record.resolved_task, criteria="",
                         ties=False, slots=slots)  # fmt: skip
        return [{"role": "system", "content": pair_system()}, {"role": "user", "content": user}]

    # -- decisions ------------------------------------------------------------------------------

    def _line(self, pair: _Pair) -> Built:
        self.candidates += 1
        out = pair.record.to_dict()
        provenance: dict[str, Any] = {"pair": pair.index, "models": pair.models}
        out["provenance"] = provenance
        if pair.problem is not None:
            return self._reject(out, "generate", pair.problem, "generator: empty response")
        answers = pair.answers or []
        unusable = next(((i, a) for i, a in enumerate(answers) if a.value is None), None)
        if unusable is not None:
            i, answer = unusable
            reason = f"teacher {i + 1}: no usable scores after {answer.attempts} attempts ({answer.problem})"
            out["rejected_answer"] = answer.text
            return self._reject(out, "teacher", reason, "teacher: unusable answer")
        self.scored += 1
        judged = [a.value for a in answers if a.value is not None]
        out["teacher_scores"] = [
            {
                "teacher": i + 1,
                "spec": teacher.spec,
                "scores": [j.a, j.b],
                "verdict": {"A": 0, "B": 1, "tie": "tie"}[j.verdict],
                "consistent": j.consistent(),
                "gap": round(j.gap(), 4),
            }
            for i, (teacher, j) in enumerate(zip(self.teachers, judged, strict=True))
        ]
        gap = sum(j.gap() for j in judged) / len(judged)
        provenance["gap"] = round(gap, 4)
        verdicts = {j.verdict for j in judged}
        decision = self._decide(judged, verdicts, gap)
        if decision is not None:
            stage_reason, key = decision
            return self._reject(out, "agree", stage_reason, key)
        verdict = verdicts.pop()
        out["preference"] = 0 if verdict == "A" else 1
        out["rationale"] = judged[0].rationale
        self.stats.kept += 1
        return Built(out, True)

    def _decide(
        self, judged: list[TeacherScores], verdicts: set[str], gap: float
    ) -> tuple[str, str] | None:
        """Why the pair is dropped (reason, counted key), or None to keep it."""
        inconsistent = [i + 1 for i, j in enumerate(judged) if not j.consistent()]
        if inconsistent:
            return (
                f"teacher {inconsistent[0]}'s verdict disagrees with its scores",
                "verdict vs scores",
            )
        if "tie" in verdicts:
            return "a teacher judged a tie", "tie"
        if len(verdicts) > 1:
            return "the teachers prefer different responses", "teachers disagree"
        if gap <= self.settings.min_gap:
            return (
                f"score gap {gap:.2f} is not above --min-gap {self.settings.min_gap}",
                "gap too small",
            )
        if self.settings.max_gap is not None and gap > self.settings.max_gap:
            return (
                f"score gap {gap:.2f} is above --max-gap {self.settings.max_gap}",
                "gap too large",
            )
        return None

    def _reject(self, out: dict[str, Any], stage: str, reason: str, key: str) -> Built:
        self.stats.reject(key)
        out["rejected"] = {"stage": stage, "reason": reason}
        return Built(out, False)

    def _input_rejected(self, record: Record, reason: str) -> Built:
        self.stats.reject(f"input: {reason}")
        out = {**record.to_dict(), "id": f"{record.id}:input"}
        out["rejected"] = {"stage": "input", "reason": reason}
        return Built(out, False)


def iter_prompts(
    source: str, *, max_bytes: int | None
) -> Iterator[tuple[int, Record | InvalidRecord]]:
    """Records read for ``data pairs``: a line without ``responses`` is a prompt to answer
    (read as a record with none); the rest are read as usual."""
    from omnirm.jsonl import display_name, iter_json_lines
    from omnirm.records import parse_record

    shown = display_name(source)
    for line, value in iter_json_lines(source, name=shown, max_bytes=max_bytes):
        if isinstance(value, RecordError):
            yield line, InvalidRecord(line, value)
            continue
        obj = (
            {**value, "responses": []}
            if isinstance(value, dict) and "responses" not in value
            else value
        )
        try:
            record = parse_record(obj, min_responses=0)
        except RecordError as error:
            yield line, InvalidRecord(line, error.located(source=shown, line=line), value)
            continue
        yield line, record
