"""What the data-building pipelines share: their outputs (kept and rejected), ``--resume``, and
the run's statistics.

A pipeline reads input records and writes, for each, some lines to the output (records it
keeps) and some to the rejects file (what it dropped, with the reason). Every line carries a
``provenance`` block stamped with ``fingerprint`` (a digest of the models and settings),
``input`` (a hash of the input record), ``source_id`` (its id), ``part`` and ``of`` (the line's
place among that input's lines).

``--resume`` reads both files back and refuses lines stamped by other models or settings, or
written from another version of an input record; an input record is done when all of its
``of`` lines are there. A record cut off half-way (an interruption between its lines) is built
again — from the cache — and only its missing lines are written.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import orjson

from omnirm import console
from omnirm.data.teach import Caller, CallStats, Timer
from omnirm.distributed import Item, World
from omnirm.errors import RecordError, UsageError
from omnirm.jsonl import JsonlWriter, complete_lines, count_lines
from omnirm.models.backends.base import JudgeBackend, Sampling
from omnirm.on_error import ErrorPolicy, OnError
from omnirm.records import InvalidRecord, Record
from omnirm.resume import item_hash


@dataclass
class Built:
    """One line a pipeline wants written: ``kept`` goes to the output, else to the rejects."""

    record: dict[str, Any]
    kept: bool


def default_rejects(output: Path | None) -> Path | None:
    """``OUT.rejected.jsonl`` beside ``-o OUT`` (nothing when writing to stdout)."""
    if output is None or str(output) == "-":
        return None
    name = output.name.removesuffix(".jsonl")
    return output.with_name(f"{name}.rejected.jsonl")


class BuildOutput:
    """The output and rejects files of one run (see the module docs)."""

    def __init__(
        self,
        output: Path | None,
        rejects: Path | None,
        fingerprint: str,
        *,
        resume: bool,
        source: str,
        append: bool | None = None,
    ) -> None:
        """``append`` (default: ``resume`` on files that exist) writes in place, line by line,
        rather than through a temporary file (a rank's shards, kept if the rank is killed)."""
        if resume and output is None:
            raise UsageError("--resume needs -o FILE (the output to continue)")
        self.fingerprint = fingerprint
        self.source = source
        self.done: dict[str, dict[str, set[tuple[bool, int]]]] = {}  # key → hash → lines
        self.written: set[tuple[bool, str]] = set()
        self.skipped = 0
        self._of: dict[tuple[str, str], int] = {}  # (key, hash) → lines the record has
        if resume:
            for path, kept in ((output, True), (rejects, False)):
                if path is not None and path.exists():
                    self._load(path, kept)

        def appended(path: Path | None) -> bool:
            if append is not None:
                return append
            return resume and path is not None and path.exists()

        self._stack = contextlib.ExitStack()
        self.kept = self._stack.enter_context(
            JsonlWriter(output, append=appended(output), inputs=[source])
        )
        self.rejected: JsonlWriter | None = None
        if rejects is not None:
            self.rejected = self._stack.enter_context(
                JsonlWriter(rejects, append=appended(rejects), inputs=[source],
                            option="--rejects")
            )  # fmt: skip

    def __enter__(self) -> BuildOutput:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.__exit__(*exc)

    def _load(self, path: Path, kept: bool) -> None:
        for number, raw in complete_lines(path):
            if not raw.strip():
                continue
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                line = None
            stamp = line.get("provenance") if isinstance(line, dict) else None
            where = f"{path}:{number}"
            if not isinstance(stamp, dict) or "fingerprint" not in stamp:
                raise UsageError(
                    f"{where}: no provenance.fingerprint: not written by this command; "
                    "--resume cannot continue it; write to a new file"
                )
            if stamp["fingerprint"] != self.fingerprint:
                raise UsageError(
                    f"{where}: written with other models, prompts or settings; --resume "
                    "continues only the same run; write to a new file"
                )
            key, digest = str(stamp.get("source_id")), str(stamp.get("input"))
            part = int(stamp.get("part", 0))
            self.done.setdefault(key, {}).setdefault(digest, set()).add((kept, part))
            self.written.add((kept, str(line.get("id"))))
            self._of[(key, digest)] = int(stamp.get("of", 1))

    def complete_records(self) -> int:
        """How many input records have all their lines written already (``--resume``)."""
        return sum(
            len(parts) >= self._of.get((key, digest), 1)
            for key, versions in self.done.items()
            for digest, parts in versions.items()
        )

    def is_done(self, line: int, record: Record) -> bool:
        """Whether all of the record's lines are written already (refused when the files were
        written from another version of it)."""
        versions = self.done.get(record.id)
        if versions is None:
            return False
        digest = item_hash(record)
        if digest not in versions:
            raise UsageError(
                f"{self.source}:{line}: record {record.id!r} differs from the one the output "
                "was built from: --resume continues the output of the same input; write to a "
                "new file"
            )
        complete = len(versions[digest]) >= self._of.get((record.id, digest), 1)
        self.skipped += complete
        return complete

    def write(self, record: Record, lines: list[Built], provenance: dict[str, Any]) -> None:
        """Stamp and write one input record's lines (those not written already)."""
        digest = item_hash(record)
        for part, built in enumerate(lines):
            stamp = {
                **provenance,
                **(built.record.get("provenance") or {}),
                "source_id": record.id,
                "fingerprint": self.fingerprint,
                "input": digest,
                "part": part,
                "of": len(lines),
            }
            out = {**built.record, "provenance": stamp}
            if (built.kept, str(out.get("id"))) in self.written:
                continue
            if built.kept:
                self.kept.write(out)
            elif self.rejected is not None:
                self.rejected.write(out)


@dataclass
class BuildStats:
    """A run's figures: inputs, kept and rejected lines (by reason), each role's calls, and the
    pipeline's rates as (count, out of) so that the ranks of a sharded run add up."""

    pipeline: str
    inputs: int = 0
    resumed: int = 0  # input records found done
    kept: int = 0
    rejected: int = 0
    failed: int = 0  # input records that failed (bad records, failed requests)
    reasons: dict[str, int] = field(default_factory=dict)
    ratios: dict[str, tuple[int, int]] = field(default_factory=dict)
    roles: dict[str, Caller] = field(default_factory=dict)
    timer: Timer = field(default_factory=Timer)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        roles = {
            role: {**caller.provenance(), **caller.stats.to_dict()}
            for role, caller in self.roles.items()
        }
        return _figures(
            pipeline=self.pipeline, inputs=self.inputs, resumed=self.resumed, kept=self.kept,
            rejected=self.rejected, failed=self.failed, reasons=self.reasons,
            ratios=self.ratios, roles=roles, seconds=self.timer.seconds(),
        )  # fmt: skip

    def summary(self) -> str:
        return summary(self.to_dict())

    def report(self, stats_file: Path | None, figures: dict[str, Any] | None = None) -> None:
        """The summary on stderr, and the figures (default: this run's) as JSON in
        ``stats_file``."""
        figures = self.to_dict() if figures is None else figures
        console.info(summary(figures))
        if stats_file is not None:
            try:
                stats_file.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2) + b"\n")
            except OSError as error:
                raise UsageError(f"--stats {stats_file}: {error.strerror or error}") from None


_CALL_FIELDS = tuple(CallStats().to_dict())


def _figures(
    *,
    pipeline: str,
    inputs: int,
    resumed: int,
    kept: int,
    rejected: int,
    failed: int,
    reasons: dict[str, int],
    ratios: dict[str, tuple[int, int]],
    roles: dict[str, dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    """The ``--stats`` JSON of a run (rates and acceptance worked out from the counts)."""
    lines = kept + rejected
    calls = {name: sum(role[name] for role in roles.values()) for name in _CALL_FIELDS}
    calls["seconds"] = round(calls["seconds"], 3)
    return {
        "pipeline": pipeline,
        "inputs": inputs,
        "resumed": resumed,
        "kept": kept,
        "rejected": rejected,
        "failed": failed,
        "acceptance": round(kept / lines, 4) if lines else None,
        "rates": {name: (n / d if d else None) for name, (n, d) in ratios.items()},
        "ratios": {name: [n, d] for name, (n, d) in ratios.items()},
        "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "calls": calls,
        "roles": roles,
        "seconds": round(seconds, 3),
    }


def summed_figures(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of one run made of ``parts`` (the ranks of a sharded run, each a
    :meth:`BuildStats.to_dict`): counts and calls added up, rates and acceptance worked out
    from the sums, the wall time the longest rank's."""
    first = parts[0]
    reasons: dict[str, int] = {}
    ratios: dict[str, tuple[int, int]] = {}
    for part in parts:
        for name, count in part["reasons"].items():
            reasons[name] = reasons.get(name, 0) + count
        for name, (n, d) in part["ratios"].items():
            was = ratios.get(name, (0, 0))
            ratios[name] = (was[0] + n, was[1] + d)
    roles = {
        role: {
            **described,
            **{name: sum(part["roles"][role][name] for part in parts) for name in _CALL_FIELDS},
        }
        for role, described in first["roles"].items()
    }
    for described in roles.values():
        described["seconds"] = round(described["seconds"], 3)
    return _figures(
        pipeline=first["pipeline"],
        **{name: sum(part[name] for part in parts)
           for name in ("inputs", "resumed", "kept", "rejected", "failed")},
        reasons=reasons, ratios=ratios, roles=roles,
        seconds=max(part["seconds"] for part in parts),
    )  # fmt: skip


def summary(figures: dict[str, Any]) -> str:
    """One line of a run's figures (:meth:`BuildStats.to_dict`), for stderr."""
    total = figures["calls"]
    kept, rejected = figures["kept"], figures["rejected"]
    lines = kept + rejected
    rate = f" ({kept / lines:.1%} accepted)" if lines else ""
    resumed = figures["resumed"]
    parts = [
        f"{figures['inputs']} records read"
        + (f" ({resumed} done before, skipped)" if resumed else ""),
        f"{kept} kept, {rejected} rejected{rate}",
    ]
    parts += [
        f"{name} {value:.1%}" for name, value in figures["rates"].items() if value is not None
    ]
    parts.append(
        f"{total['calls']} calls ({total['cached']} from the cache, {total['reasks']} re-asks), "
        f"tokens {total['prompt_tokens']} in / {total['completion_tokens']} out"
    )
    if figures["failed"]:
        parts.append(f"{figures['failed']} failed")
    parts.append(f"{figures['seconds']:.1f} s")
    return ", ".join(parts)


@dataclass
class ModelOptions:
    """How the pipelines' models are opened and asked (the command's backend options)."""

    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    timeout: float = 120.0
    batch_size: int = 16
    device: str | None = None
    trust_remote_code: bool = False
    temperature: float = 0.0
    seed: int = 0
    max_new_tokens: int = 512
    retries: int = 2
    structured: bool | None = None  # JSON answers constrained to their schema (None: if able)
    cache: Path | None = None
    use_cache: bool = True


class Models:
    """The backends a run uses, each spec opened once (a teacher may also verify), and the
    answer cache they share."""

    def __init__(self, options: ModelOptions) -> None:
        from omnirm.judging.cache import AnswerCache, default_cache_path

        if options.retries < 0:
            raise UsageError("--retries must be at least 0")
        if options.max_new_tokens < 1:
            raise UsageError("--max-new-tokens must be at least 1")
        if options.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        world = World.from_env()
        if world.sharded:  # one GPU a rank (cuda:LOCAL_RANK)
            options = replace(options, device=world.device(options.device) or options.device)
        self.options = options
        self.backends: dict[str, JudgeBackend] = {}
        self.cache = (
            AnswerCache(options.cache or default_cache_path()) if options.use_cache else None
        )

    def backend(self, spec: str) -> JudgeBackend:
        from omnirm.models.backends.base import open_backend

        if spec not in self.backends:
            o = self.options
            with console.status(f"opening {spec}"):
                self.backends[spec] = open_backend(
                    spec, base_url=o.base_url, api_key_env=o.api_key_env,
                    concurrency=o.concurrency, timeout=o.timeout, batch_size=o.batch_size,
                    device=o.device, seed=o.seed, trust_remote_code=o.trust_remote_code,
                )  # fmt: skip
        return self.backends[spec]

    def caller(
        self,
        role: str,
        spec: str,
        *,
        temperature: float | None = None,
        max_new_tokens: int | None = None,
    ) -> Caller:
        o = self.options
        sampling = Sampling(
            max_new_tokens=max_new_tokens or o.max_new_tokens,
            temperature=o.temperature if temperature is None else temperature,
            seed=o.seed,
        )
        return Caller(
            role,
            spec,
            self.backend(spec),
            sampling,
            self.cache,
            o.retries,
            structured=o.structured,
        )

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()
        if self.cache is not None:
            self.cache.close()


def windows(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    window: list[Any] = []
    for item in items:
        window.append(item)
        if len(window) >= size:
            yield window
            window = []
    if window:
        yield window


def located(error: RecordError, source: str, line: int, record_id: str | None) -> RecordError:
    return error.located(source=source, line=line, record_id=record_id)


class Pipeline(Protocol):
    def fingerprint(self) -> str: ...

    def run(
        self,
        items: Iterable[tuple[int, Record | InvalidRecord]],
        output: BuildOutput,
        policy: ErrorPolicy,
    ) -> Iterator[int]:
        """Build every item, writing its lines to ``output``; yield each item's input line
        once it is done (the caller drives the run by consuming them)."""
        ...


def run_build(
    pipeline: Pipeline,
    read: Callable[[], Iterable[Item]],
    stats: BuildStats,
    *,
    output: Path | None,
    rejects: Path | None,
    resume: bool,
    source: str,
    on_error: OnError,
    limit: int | None = None,
    stats_file: Path | None = None,
) -> int:
    """Run a pipeline over the first ``limit`` records that ``read()`` yields (the pending ones
    with ``resume``), write its lines, report, and return the exit code. Launched by
    ``torchrun``/``accelerate launch``, each process builds its share and the first merges
    them (:func:`run_build_sharded`)."""
    if on_error is OnError.RECORD:
        raise UsageError(
            "--on-error record: rejected items already go to --rejects; use fail or skip "
            "(a failed record is built again by --resume)"
        )
    if limit is not None and limit < 0:
        raise UsageError(f"--limit must be at least 0, got {limit}")
    if resume and output is None:
        raise UsageError("--resume needs -o FILE (the output to continue)")
    rejects = rejects if rejects is not None else default_rejects(output)
    world = World.from_env()
    if rejects is None and world.main:
        console.warn("rejected items are only counted: pass --rejects FILE (or -o) to keep them")

    def selected() -> Iterable[Item]:
        items = read()
        return itertools.islice(items, limit) if limit is not None else items

    lines = count_lines(source)
    if lines is not None and limit is not None:
        lines = min(lines, limit)
    policy = ErrorPolicy(on_error)
    if world.sharded:
        return run_build_sharded(
            pipeline, world, selected, stats, policy, output=output, rejects=rejects,
            resume=resume, source=source, stats_file=stats_file,
            lines=None if lines is None else world.share(lines),
        )  # fmt: skip
    _build(pipeline, selected(), stats, policy, output, rejects, resume=resume, source=source,
           lines=lines)  # fmt: skip
    stats.report(stats_file)
    return policy.exit_code()


def _build(
    pipeline: Pipeline,
    items: Iterable[Item],
    stats: BuildStats,
    policy: ErrorPolicy,
    output: Path | None,
    rejects: Path | None,
    *,
    resume: bool,
    source: str,
    append: bool | None = None,
    lines: int | None = None,
) -> None:
    """Build ``items`` (``lines`` of them, when known: progress's total)."""
    fingerprint = pipeline.fingerprint()
    with BuildOutput(
        output, rejects, fingerprint, resume=resume, source=source, append=append
    ) as out:
        pending = (
            (line, item)
            for line, item in items
            if isinstance(item, InvalidRecord) or not out.is_done(line, item)
        )
        total = None if lines is None else max(0, lines - out.complete_records())
        built = pipeline.run(pending, out, policy)
        for _ in console.progress(built, World.from_env().label("building"), total):
            pass
        stats.resumed = out.skipped


def run_build_sharded(
    pipeline: Pipeline,
    world: World,
    read: Callable[[], Iterable[Item]],
    stats: BuildStats,
    policy: ErrorPolicy,
    *,
    output: Path | None,
    rejects: Path | None,
    resume: bool,
    source: str,
    stats_file: Path | None,
    lines: int | None = None,
) -> int:
    """One rank of a sharded build (:mod:`omnirm.distributed`): the rank builds its share of
    ``read()`` into its own kept and rejects shards (``rank-R-of-N.jsonl`` and
    ``rank-R-of-N.rejected.jsonl`` in ``.OUT.shards/``), resumed from them with ``resume``;
    rank 0 merges each file in input order (all the lines of an input together, checked to
    be its parts, once) and reports the ranks' figures added up."""
    from omnirm.distributed import Target, run_sharded_outputs

    targets = [Target(output)]
    if rejects is not None:
        targets.append(Target(rejects, ".rejected", "--rejects"))

    def work(shards: list[Path], resume_shard: bool) -> tuple[dict[str, Any], int, str | None]:
        kept, rejected = shards[0], shards[1] if len(shards) > 1 else None
        _build(pipeline, world.take(read()), stats, policy, kept, rejected,
               resume=resume_shard, source=source, append=True, lines=lines)  # fmt: skip
        return stats.to_dict(), policy.count, policy.first

    def gathered(ranks: list[tuple[dict[str, Any], int, str | None]]) -> None:
        policy.count = sum(count for _, count, _ in ranks)
        policy.first = next((first for *_, first in ranks if first is not None), None)
        stats.report(stats_file, summed_figures([figures for figures, *_ in ranks]))

    run_sharded_outputs(
        world, source, targets, work, items=read, command=f"data {stats.pipeline}",
        resume=resume, may_drop=policy.mode is OnError.SKIP, several=True, key=_built_key,
        check=_all_parts, gathered=gathered,
    )  # fmt: skip
    return policy.exit_code() if world.main else int(policy.failed)


def _built_key(line: dict[str, Any]) -> tuple[str | None, str | None]:
    stamp = line.get("provenance")
    if not isinstance(stamp, dict):
        return None, None
    return str(stamp.get("source_id")), stamp.get("input")


def _all_parts(lines: list[dict[str, Any]]) -> str | None:
    """Whether an input's merged lines are its parts 0..of-1, each once."""
    parts = sorted(int(line["provenance"].get("part", 0)) for line in lines)
    of = int(lines[0]["provenance"].get("of", 1))
    if parts != list(range(of)):
        return f"lines {parts} of its {of} (a line lost or written twice)"
    return None
