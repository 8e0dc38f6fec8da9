"""The public Python functions (``import omnirm``): score records, read and write them.

The command line runs the same functions: ``omnirm score`` is :func:`score_file`; ``bench`` is
:func:`omnirm.bench.run_bench`; ``bon`` is :func:`omnirm.bon.best_of_n`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnirm import console
from omnirm.errors import RecordError, UsageError
from omnirm.jsonl import MAX_RECORD_BYTES
from omnirm.on_error import ErrorPolicy, OnError
from omnirm.options import JudgeOptions, MediaOptions, ModelOptions, RayOptions, record_bytes
from omnirm.records import InvalidRecord, Record, parse_record
from omnirm.scorer import Item, Scorer, load_scorer

if TYPE_CHECKING:
    from omnirm.distributed import World


def _items(records: Iterable[Record | dict[str, Any]]) -> Iterator[Item]:
    for line, record in enumerate(records, start=1):
        if isinstance(record, Record):
            yield line, record
            continue
        try:
            yield line, parse_record(record, min_responses=1)
        except RecordError as error:  # handled by the error policy, as a file's bad line
            yield line, InvalidRecord(line, error.located(line=line), record)


def score(
    records: Iterable[Record | dict[str, Any]],
    scorer: Scorer | None = None,
    *,
    model: str | Path | None = None,
    judge: str | JudgeOptions | None = None,
    options: ModelOptions | None = None,
    media: MediaOptions | None = None,
    on_error: OnError | str = OnError.FAIL,
) -> list[dict[str, Any]]:
    """The records (dicts or :class:`~omnirm.records.Record` s) scored, in order, as dicts with
    ``rewards`` (and for pairs ``predicted``, ``margin``) and ``scored_by`` — by ``scorer``, else
    by the ``model`` or ``judge`` loaded here (the embedded default model with neither). A
    record with one response gets that response's reward (pointwise: a reward model or a
    ``pointwise`` judge; a pairwise judge refuses it as a bad record). Media
    resolve against ``media.root`` (default: the working directory). A bad record raises its
    :class:`~omnirm.errors.RecordError` unless ``on_error`` is ``skip``.

    >>> scored = score([{"id": "a", "prompt": "2+2?", "responses": ["4", "5"]}])  # doctest: +SKIP
    >>> scored[0]["predicted"]  # doctest: +SKIP
    0
    """
    owned = scorer is None
    if scorer is None:
        scorer = load_scorer(model, judge, media=media, options=options)
    try:
        return list(scorer.score(_items(records), ErrorPolicy(on_error)))
    finally:
        if owned:
            scorer.close()


@dataclass
class ScoreRun:
    """What :func:`score_file` did: how bad records were handled, records found done."""

    policy: ErrorPolicy  # its exit_code() ends the command
    skipped: int = 0


def score_file(
    source: str | Path = "-",
    *,
    model: str | Path | None = None,
    judge: str | JudgeOptions | None = None,
    options: ModelOptions | None = None,
    media: MediaOptions | None = None,
    output: Path | None = None,
    resume: bool = False,
    on_error: OnError | str = OnError.FAIL,
    max_record_bytes: int = MAX_RECORD_BYTES,
    ray: RayOptions | None = None,
) -> ScoreRun:
    """``omnirm score``: the records of ``source`` (a JSONL file or ``-``) scored into ``output``
    (None: standard output) as they come. ``resume`` skips the records ``output`` holds (scored
    by the same scorer, settings and input) and appends the rest. The output is locked before
    the scorer loads; summaries go to stderr. Launched by ``torchrun``/``accelerate launch``,
    each process scores its share and the first merges them (:mod:`omnirm.distributed`);
    with ``ray``, a Ray Data actor pool scores (:mod:`omnirm.integrations.ray`).

    >>> score_file("pairs.jsonl", output=Path("scored.jsonl"))  # doctest: +SKIP
    """
    from omnirm.distributed import World

    if model is not None and judge is not None:
        raise UsageError(
            "give either --model (a reward model) or --judge SPEC (a generative judge), not both"
        )
    if resume and output is None:
        raise UsageError("--resume needs -o FILE (the output to continue)")
    if options is not None and options.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if ray is not None:
        return _score_on_ray(
            source, ray, model=model, judge=judge, options=options, media=media, output=output,
            resume=resume, on_error=on_error,
        )  # fmt: skip
    world = World.from_env()
    scoring = _Scoring(model, judge, options, media, on_error, record_bytes(max_record_bytes))
    if world.sharded:
        return _score_sharded(scoring, world, source, output=output, resume=resume)
    return scoring.run(source, output, resume=resume)


def _score_on_ray(
    source: str | Path,
    ray: RayOptions,
    *,
    model: str | Path | None,
    judge: str | JudgeOptions | None,
    options: ModelOptions | None,
    media: MediaOptions | None,
    output: Path | None,
    resume: bool,
    on_error: OnError | str,
) -> ScoreRun:
    from omnirm.integrations.ray import score_with_ray

    if resume:
        raise UsageError(
            "--resume does not work with --ray (Ray Data has no per-record resume): score "
            "anew, or resume without --ray"
        )
    if isinstance(judge, str):
        judge = JudgeOptions(spec=judge)
    run = score_with_ray(
        source, output=output, model=None if model is None else str(model), judge=judge,
        options=options, media=media, on_error=on_error, address=ray.address,
        concurrency=ray.concurrency, num_gpus=ray.num_gpus, batch_size=ray.batch_size,
    )  # fmt: skip
    policy = ErrorPolicy(on_error)
    policy.count = run.errors
    console.info(f"{run.lines} lines written by {ray.concurrency} Ray actor(s)")
    return ScoreRun(policy)


@dataclass
class _Scoring:
    """What :func:`score_file` scores with (the same on every rank of a sharded run)."""

    model: str | Path | None
    judge: str | JudgeOptions | None
    options: ModelOptions | None
    media: MediaOptions | None
    on_error: OnError | str
    max_bytes: int

    def run(
        self,
        source: str | Path,
        output: Path | None,
        *,
        resume: bool,
        append: bool | None = None,
        world: World | None = None,
    ) -> ScoreRun:
        """Score ``source`` (``world``'s share of it, when given) into ``output``; ``append``
        (default: ``resume``) adds to the file in place."""
        from omnirm.distributed import records_to_read
        from omnirm.jsonl import STDIN, JsonlWriter, display_name
        from omnirm.records import iter_records
        from omnirm.resume import ResumableOutput
        from omnirm.scorer import fingerprint_digest

        def records() -> Iterator[Item]:
            items = iter_records(source, max_bytes=self.max_bytes)
            return items if world is None else world.take(items)

        name = display_name(source)
        append = resume if append is None else append
        # The output is locked (and checked against the input) before the model loads.
        with JsonlWriter(output, append=append, inputs=[source]) as writer:
            scorer = load_scorer(
                self.model, self.judge, media=self.media, source=source, options=self.options
            )
            try:
                out = ResumableOutput(
                    writer,
                    fingerprint_digest(scorer.fingerprint()),
                    path=writer.file.path if resume and writer.file else None,
                    source=name,
                    provenance=scorer.provenance(),
                )
                if resume and source != STDIN:
                    out.check_input(records())
                policy = ErrorPolicy(self.on_error, out.errors)
                items = out.pending(records())
                lines = records_to_read(source, world)
                total = None if lines is None else max(0, lines - len(out))
                verb = scorer.verb if world is None else world.label(scorer.verb)
                for record in console.progress(scorer.score(items, policy), verb, total):
                    out.write(record)
                if resume and source == STDIN:
                    out.check_all_matched()
            finally:
                scorer.close()
        if out.skipped:
            console.info(f"resumed: {out.skipped} records were already scored")
        for line in scorer.summary():
            console.info(line)
        return ScoreRun(policy, out.skipped)


def _score_sharded(
    scoring: _Scoring, world: World, source: str | Path, *, output: Path | None, resume: bool
) -> ScoreRun:
    """:func:`score_file` as one rank of several (see :mod:`omnirm.distributed`)."""
    from dataclasses import replace

    from omnirm.distributed import run_sharded

    options = scoring.options or ModelOptions()
    options = replace(options, device=world.device(options.device) or options.device)
    scoring = replace(scoring, options=options)
    if isinstance(scoring.judge, JudgeOptions):
        scoring.judge = replace(scoring.judge, device=world.device(scoring.judge.device))
    return run_sharded(
        world,
        source,
        output,
        lambda shard, resume_shard: scoring.run(
            source, shard, resume=resume_shard, append=True, world=world
        ),
        command="score",
        resume=resume,
        may_drop=OnError(scoring.on_error) == OnError.SKIP,
        max_bytes=scoring.max_bytes,
    )


def write_records(records: Iterable[Record | dict[str, Any]], path: str | Path) -> int:
    """Write records (dicts or :class:`~omnirm.records.Record` s) as JSONL to ``path`` (``-``:
    standard output), atomically; returns how many. Read them back with
    :func:`~omnirm.records.read_records`.

    >>> write_records([{"id": "a", "prompt": "hi", "responses": ["x", "y"]}], "a.jsonl")  # doctest: +SKIP
    1
    """
    from omnirm.jsonl import JsonlWriter

    count = 0
    with JsonlWriter(None if str(path) == "-" else Path(path)) as writer:
        for record in records:
            writer.write(record.to_dict() if isinstance(record, Record) else record)
            count += 1
    return count


__all__ = ["ScoreRun", "score", "score_file", "write_records"]
