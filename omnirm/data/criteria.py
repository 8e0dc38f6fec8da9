"""``omnirm data criteria``: criteria-labelled pairs written by a teacher, checked by verifiers.

After Omni-RewardData: for each labelled pair a teacher model writes a free-form criterion
under which the labelled response is better — with ``contrastive``, also one under which the
other response is (the same pair under opposite criteria). The teacher answers in JSON
(``{"criterion": …, "reason": …}``), checked and re-asked when unusable (:mod:`omnirm.data.teach`).

Each criterion is then checked by K verifiers, ordinary pairwise judges reading the judge
prompt with that criterion, in both orders (the target response shown as A, then as B). How a
verdict is read is ``verdict`` (``--verifier-verdict``): ``text`` parses the verdict the
verifier writes (re-asked when it has none), and the verifier agrees when both orders pick the
target response; ``probs`` / ``rationale-probs`` read its probabilities of the letters A and B
at the verdict position (:mod:`omnirm.judging.likelihood`, as ``score --verdict probs``), so
every call has a verdict, and the verifier agrees when the probability that the target is
better, averaged over both orders, is the higher (a position bias averages away). ``accept``
decides: ``unanimous`` (all K agree) or ``majority`` (more than half). Kept criteria become
records with ``criteria`` set and ``preference`` the target; the rest go to the rejects with the
reason. Every line's ``provenance`` names the teacher, the verifiers, how their verdicts were
read, each verifier's verdicts (with ``probs``: each order's letter probabilities and mass, and
the margin p(response 0) − p(response 1)), the acceptance rule and the prompt version.

Input records that are not labelled pairs (ties, no label, more than two responses) are
rejected as such; records whose requests fail (a server down, media the model cannot read) are
handled by ``--on-error`` and built again by ``--resume``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from omnirm.data.build import BuildOutput, BuildStats, Built, windows
from omnirm.data.teach import Answer, Caller, answer_schema, check_answer
from omnirm.errors import RecordError
from omnirm.judging.conversations import ConversationBuilder
from omnirm.judging.judge import verdict_outcome
from omnirm.judging.likelihood import VerdictMode, check_reads_probabilities, combine_probabilities
from omnirm.media.paths import MediaResolver
from omnirm.models.backends.base import Conversation, VerdictProbabilities
from omnirm.on_error import ErrorPolicy
from omnirm.prompts.data import (
    CRITERION_SYSTEM,
    CRITERION_USER,
    DATA_PROMPT_VERSION,
    criterion_system,
)
from omnirm.prompts.templates import (
    PAIRWISE_SYSTEM,
    PAIRWISE_USER,
    Template,
    default_template,
    render,
)
from omnirm.records import InvalidRecord, Record
from omnirm.resume import value_hash

Accept = Literal["unanimous", "majority"]
MAX_CRITERION_CHARS = 300
#: the reason's longest (with the criterion's, a constrained answer fits the default 512 tokens)
MAX_REASON_CHARS = 180
_POSITIONAL = ("response a", "response b", "the first response", "the second response")


@dataclass
class CriteriaSettings:
    contrastive: bool = False
    accept: Accept = "majority"
    verdict: VerdictMode = "text"  # how the verifiers' verdicts are read
    window: int = 16  # input records whose requests go to the models together


class CriterionAnswer(BaseModel):
    """The teacher's answer: a criterion that stands on its own, and its reason."""

    criterion: Annotated[str, Field(min_length=1, max_length=MAX_CRITERION_CHARS)]
    reason: Annotated[str, Field(max_length=MAX_REASON_CHARS)] = ""

    @field_validator("criterion")
    @classmethod
    def _stands_alone(cls, criterion: str) -> str:
        criterion = " ".join(criterion.split())
        if not criterion:
            raise ValueError("must be a non-empty string")
        lowered = criterion.lower()
        named = next((word for word in _POSITIONAL if word in lowered), None)
        if named is not None:
            raise ValueError(f"names a position ({named!r}); it must stand on its own")
        return criterion

    @field_validator("reason", mode="before")
    @classmethod
    def _optional_reason(cls, reason: Any) -> str:
        # an unconstrained teacher's missing or overlong reason costs it nothing
        return reason.strip()[:MAX_REASON_CHARS] if isinstance(reason, str) else ""


#: the JSON schema a structured teacher's answers are held to
CRITERION_SCHEMA = answer_schema(CriterionAnswer)


def validate_criterion(value: dict[str, Any]) -> tuple[str, str | None]:
    """The criterion (and the teacher's reason) of a teacher's JSON answer, or :class:`Invalid`."""
    answer = check_answer(CriterionAnswer, value)
    return answer.criterion, answer.reason or None


def accepted(agree: int, verifiers: int, rule: Accept) -> bool:
    """Whether ``agree`` of ``verifiers`` agreeing passes the rule."""
    if rule == "unanimous":
        return agree == verifiers
    return agree * 2 > verifiers


@dataclass
class _Job:
    """One criterion wanted: a record, the response it must favour, its place in the output."""

    slot: int
    record: Record
    target: int
    part: int  # 0: the labelled response wins; 1: the contrastive one
    answer: Answer[tuple[str, str | None]] | None = None
    verdicts: list[dict[str, Any]] | None = None


class CriteriaPipeline:
    """Teacher + verifiers over record streams (see the module docs)."""

    def __init__(
        self,
        teacher: Caller,
        verifiers: list[Caller],
        resolver: MediaResolver,
        settings: CriteriaSettings,
        stats: BuildStats,
        source: str = "the input",
    ) -> None:
        if not verifiers:
            raise ValueError("at least one verifier")
        for verifier in verifiers:
            check_reads_probabilities(
                verifier.backend, settings.verdict, "--verifier-verdict", "verifier"
            )
        self.teacher = teacher
        self.verifiers = verifiers
        self.settings = settings
        self.stats = stats
        self.source = source
        self.judge_template = default_template("pairwise")
        self.teacher_view = ConversationBuilder(
            self.judge_template, resolver, teacher.backend.modalities
        )
        self.views = [
            ConversationBuilder(self.judge_template, resolver, v.backend.modalities)
            for v in verifiers
        ]
        stats.roles["teacher"] = teacher
        for index, verifier in enumerate(verifiers):
            stats.roles[f"verifier {index + 1}"] = verifier
        self.written = 0
        self.agreements = [0] * len(verifiers)
        self.verified = 0

    def fingerprint(self) -> str:
        """A digest of the models, prompts and settings (``--resume`` continues only these)."""
        return value_hash(
            {
                "pipeline": "criteria",
                "prompt_version": DATA_PROMPT_VERSION,
                "prompts": [CRITERION_SYSTEM, CRITERION_USER, PAIRWISE_SYSTEM, PAIRWISE_USER],
                "teacher": [self.teacher.fingerprint, self.teacher.sampling.to_dict()],
                "verifiers": [[v.fingerprint, v.sampling.to_dict()] for v in self.verifiers],
                "retries": [self.teacher.retries, *(v.retries for v in self.verifiers)],
                "contrastive": self.settings.contrastive,
                "accept": self.settings.accept,
                "structured": self.teacher.structured,
                # absent for text, so that outputs written before the option stay resumable
                **({} if self.settings.verdict == "text" else {"verdict": self.settings.verdict}),
            }
        )

    def provenance(self) -> dict[str, Any]:
        from omnirm import __version__

        return {
            "pipeline": "criteria",
            "prompt_version": DATA_PROMPT_VERSION,
            "teacher": self.teacher.provenance(),
            "verifiers": [v.provenance() for v in self.verifiers],
            "verifier_verdict": self.settings.verdict,
            "accept": self.settings.accept,
            "omnirm": __version__,
        }

    def run(
        self,
        items: Iterable[tuple[int, Record | InvalidRecord]],
        output: BuildOutput,
        policy: ErrorPolicy,
    ) -> Iterator[int]:
        """Build criteria for every pending record, write the lines in input order and yield
        each record's input line once it is done."""
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
                    output.write(item, result or [], base)
                yield line
        self.stats.ratios = self.ratios()

    def ratios(self) -> dict[str, tuple[int, int]]:
        """The rates as (count, out of): criteria usable, each verifier's agreement."""
        ratios = {"teacher criteria usable": (self.verified, self.teacher.stats.requests)}
        for index, agree in enumerate(self.agreements):
            ratios[f"verifier {index + 1} agreement"] = (agree, self.verified)
        return ratios

    def _window(
        self, window: list[tuple[int, Record | InvalidRecord]]
    ) -> Iterator[tuple[int, Record | InvalidRecord, list[Built] | RecordError | None]]:
        results: dict[int, list[Built] | RecordError] = {}
        jobs: list[_Job] = []
        conversations: list[Conversation] = []
        for slot, (_, item) in enumerate(window):
            if isinstance(item, InvalidRecord):
                continue
            self.stats.inputs += 1
            reason = _not_a_pair(item)
            if reason is not None:
                results[slot] = [
                    self._rejected(item, None, "input", reason, key=f"input: {reason}")
                ]
                continue
            assert isinstance(item.preference, int)
            targets = [item.preference] + (
                [1 - item.preference] if self.settings.contrastive else []
            )
            try:
                mine = [(_Job(slot, item, t, part), self._teacher_conversation(item, t))
                        for part, t in enumerate(targets)]  # fmt: skip
            except RecordError as error:
                results[slot] = error
                continue
            jobs += [job for job, _ in mine]
            conversations += [conversation for _, conversation in mine]
        for job, answer in zip(
            jobs,
            self.teacher.ask_json(conversations, validate_criterion, CRITERION_SCHEMA),
            strict=True,
        ):
            job.answer = answer
        self._verify(
            [j for j in jobs if j.answer is not None and j.answer.value is not None], results
        )
        for job in jobs:
            if job.slot in results and isinstance(results[job.slot], RecordError):
                continue
            assert job.answer is not None
            if job.answer.failed:
                results[job.slot] = RecordError(f"teacher {job.answer.problem}")
                continue
            results.setdefault(job.slot, [])
            built = results[job.slot]
            assert isinstance(built, list)
            built.append(self._line(job))
        for slot, (line, item) in enumerate(window):
            yield line, item, results.get(slot)

    def _teacher_conversation(self, record: Record, target: int) -> Conversation:
        letter = "AB"[target]
        view = self.teacher_view
        slots = {
            "prompt": view.prompt_content(record),
            "response_a": view.response_content(record, 0),
            "response_b": view.response_content(record, 1),
        }
        user_text = CRITERION_USER.replace("{target}", letter)
        _, user = render(Template("", user_text), task=record.resolved_task, criteria="",
                         ties=False, slots=slots)  # fmt: skip
        return [
            {"role": "system", "content": criterion_system(letter)},
            {"role": "user", "content": user},
        ]

    def _verify(self, jobs: list[_Job], results: dict[int, list[Built] | RecordError]) -> None:
        """Each verifier judges every written criterion in both orders (one batch each)."""
        for job in jobs:
            job.verdicts = []
        for index, (verifier, view) in enumerate(zip(self.verifiers, self.views, strict=True)):
            asked: list[_Job] = []
            conversations: list[Conversation] = []
            for job in jobs:
                if isinstance(results.get(job.slot), RecordError):
                    continue
                assert job.answer is not None and job.answer.value is not None
                criterion = job.answer.value[0]
                try:
                    pair = [
                        view.pairwise(job.record, 0, 1, criterion),
                        view.pairwise(job.record, 1, 0, criterion),
                    ]
                except RecordError as error:
                    results[job.slot] = error
                    continue
                asked.append(job)
                conversations += pair
            answers = verifier.ask_verdicts(conversations, self.settings.verdict)
            for position, job in enumerate(asked):
                ab, ba = answers[2 * position], answers[2 * position + 1]
                failed = ab if ab.failed else ba if ba.failed else None
                if failed is not None:
                    results[job.slot] = RecordError(f"verifier {index + 1} {failed.problem}")
                    continue
                verdict: dict[str, Any] = {
                    "verifier": index + 1, "spec": verifier.spec,
                    "ab": verdict_outcome(ab.value, "ab"), "ba": verdict_outcome(ba.value, "ba"),
                }  # fmt: skip
                if ab.reading is not None and ba.reading is not None:
                    verdict.update(_read_verdict(ab.reading, ba.reading))
                    agrees = verdict["predicted"] == job.target
                else:
                    agrees = verdict["ab"] == job.target and verdict["ba"] == job.target
                verdict.update(agrees=agrees, attempts=ab.attempts + ba.attempts)
                assert job.verdicts is not None
                job.verdicts.append(verdict)

    def _line(self, job: _Job) -> Built:
        assert job.answer is not None
        answer = job.answer
        if answer.value is None:
            reason = (
                f"teacher: no usable criterion after {answer.attempts} attempts ({answer.problem})"
            )
            key = "teacher: no usable criterion"
            return self._rejected(job.record, job, "teacher", reason, key=key, text=answer.text)
        criterion, why = answer.value
        verdicts = job.verdicts or []
        agree = sum(v["agrees"] for v in verdicts)
        self.verified += 1
        for v in verdicts:
            self.agreements[v["verifier"] - 1] += v["agrees"]
        out = self._record(job, criterion)
        out["provenance"] = {
            "target": job.target,
            "contrastive": job.part == 1,
            "teacher_reason": why,
            "teacher_attempts": answer.attempts,
            "verdicts": verdicts,
            "agree": agree,
        }
        if accepted(agree, len(self.verifiers), self.settings.accept):
            self.stats.kept += 1
            return Built(out, True)
        reason = (
            f"verifiers: {agree} of {len(self.verifiers)} agree ({self.settings.accept} needed)"
        )
        self.stats.reject("verifiers disagree")
        out["rejected"] = {"stage": "verify", "reason": reason}
        return Built(out, False)

    def _record(self, job: _Job, criterion: str | None) -> dict[str, Any]:
        out = job.record.to_dict()
        if job.record.criteria is not None:
            out["original_criteria"] = job.record.criteria
        out["id"] = f"{job.record.id}:c{job.part}"
        out["criteria"] = criterion
        out["preference"] = job.target
        out.pop("ranking", None)
        out.pop("gold_scores", None)
        return out

    def _rejected(
        self,
        record: Record,
        job: _Job | None,
        stage: str,
        reason: str,
        *,
        key: str,
        text: str | None = None,
    ) -> Built:
        self.stats.reject(key)
        out = (
            self._record(job, None)
            if job is not None
            else {**record.to_dict(), "id": f"{record.id}:input"}
        )
        if job is not None:
            out.pop("criteria", None)
            out["provenance"] = {"target": job.target, "contrastive": job.part == 1}
        out["rejected"] = {"stage": stage, "reason": reason}
        if text is not None:
            out["rejected"]["answer"] = text
        return Built(out, False)


def _read_verdict(ab: VerdictProbabilities, ba: VerdictProbabilities) -> dict[str, Any]:
    """A verifier's verdict by likelihood, for the provenance: both orders' letter
    probabilities and mass, their average's pick and margin p(response 0) − p(response 1)."""
    combined = combine_probabilities(ab, ba)
    out: dict[str, Any] = {
        "predicted": combined.predicted,
        "margin": round(combined.margin, 6),
        "probabilities": {
            order: {k: round(v, 6) for k, v in reading.probabilities.items()}
            for order, reading in (("ab", ab), ("ba", ba))
        },
        "mass": {"ab": round(ab.mass, 6), "ba": round(ba.mass, 6)},
    }
    if ab.rationale is not None or ba.rationale is not None:
        out["rationales"] = {"ab": ab.rationale, "ba": ba.rationale}
    return out


def _not_a_pair(record: Record) -> str | None:
    if record.num_responses != 2:
        return f"needs exactly two responses, has {record.num_responses}"
    if record.preference is None:
        return "no preference label"
    if record.is_tie:
        return "a tie: neither response is better"
    return None
