"""A bench run: records in, scored records (cached per record and scorer), metrics out.

Three ways in: a suite read from the folder a user downloaded, any records file with gold
labels scored here, or records already scored elsewhere (``omnirm score … | omnirm bench -``).
:func:`run_bench` is the whole run (``omnirm bench`` prints what it returns).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from omnirm import console
from omnirm.bench.items import BenchItem, bench_item
from omnirm.bench.store import ScoreStore
from omnirm.distributed import ProcessGroup, World, merge, refuse_stdin
from omnirm.errors import RecordError, UsageError
from omnirm.jsonl import MAX_RECORD_BYTES, Sink, count_lines
from omnirm.on_error import ErrorPolicy, OnError
from omnirm.options import JudgeOptions, MediaOptions, ModelOptions, record_bytes
from omnirm.records import InvalidRecord, Record
from omnirm.scorer import Scorer

if TYPE_CHECKING:
    from omnirm.bench.metrics import BenchResult


def scored_records(
    items: Iterable[tuple[int, Record | InvalidRecord]],
    runner: Scorer | None,
    store: ScoreStore | None,
    policy: ErrorPolicy,
    counts: dict[str, int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Scored records: from ``store`` when the same input was scored before by the same
    scorer, else scored by ``runner`` (and added to ``store`` at once); without a runner the
    records must carry their scores. ``counts`` gets ``reused`` and ``scored``."""
    counts = counts if counts is not None else {}
    counts.setdefault("reused", 0)
    counts.setdefault("scored", 0)
    if runner is None:
        for _, item in items:
            if isinstance(item, InvalidRecord):
                policy.handle(item)
                continue
            yield item.to_dict()
        return
    # Records come out in input order (metrics such as cross-validation folds depend on it):
    # stored ones wait for the scored records before them.
    todo: list[tuple[int, Record | InvalidRecord]] = []
    waiting: list[tuple[int, dict[str, Any]]] = []  # (input position, stored record)
    by_id: dict[str, tuple[int, Record]] = {}
    for position, (line, item) in enumerate(items):
        found = store.get(item) if store is not None and isinstance(item, Record) else None
        if found is not None:
            counts["reused"] += 1
            waiting.append((position, found))
        else:
            todo.append((line, item))
            if isinstance(item, Record):
                by_id[item.id] = (position, item)
    waiting.reverse()
    for scored in runner.score(todo, policy):
        counts["scored"] += 1
        position, record = by_id[str(scored["id"])]
        if store is not None:
            store.add(record, scored)
        while waiting and waiting[-1][0] < position:
            yield waiting.pop()[1]
        yield scored
    while waiting:
        yield waiting.pop()[1]


def bench_items(
    records: Iterable[dict[str, Any]], policy: ErrorPolicy, source: str | None = None
) -> list[BenchItem]:
    """Scored records as :class:`BenchItem` s; a record without a gold label or scores is a
    located error handed to ``policy``."""
    items = []
    for position, record in enumerate(records, start=1):
        try:
            items.append(bench_item(record))
        except (KeyError, ValueError) as problem:
            error = RecordError(f"cannot be benchmarked: {problem}", source=source)
            error.located(record_id=str(record.get("id")), line=position if source else None)
            policy.handle(InvalidRecord(position, error, record))
    return items


@dataclass
class BenchRun:
    """What :func:`run_bench` found: the metrics, the suite's official score (RewardBench's
    rules, or None), the protocol printed with them, and how the records were handled."""

    name: str  # the input, as the report's title names it
    result: BenchResult
    official: dict[str, Any] | None
    protocol: dict[str, str]
    policy: ErrorPolicy  # its exit_code() ends the command
    reused: int = 0  # records whose scores came from the score cache
    shown: bool = True  # this process prints the report (False: a rank other than 0)

    @property
    def title(self) -> str:
        return f"omnirm bench — {self.name}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the metrics, the official score when there is one, and the protocol."""
        out = self.result.to_dict()
        if self.official is not None:
            out["official"] = self.official
        return {**out, "protocol": self.protocol}


def run_bench(
    source: str | Path | None = None,
    *,
    suite: str | None = None,
    data: Path | None = None,
    tasks: str | None = None,
    scorer: Scorer | None = None,
    model: str | None = None,
    judge: str | JudgeOptions | None = None,
    options: ModelOptions | None = None,
    media: MediaOptions | None = None,
    calibrate: Path | None = None,
    bootstrap: int = 1000,
    bootstrap_seed: int = 0,
    scores: Path | None = None,
    on_error: OnError | str = OnError.FAIL,
    errors: Sink | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> BenchRun:
    """Benchmark records with gold labels: a records file ``source`` (or ``-``), or ``suite``
    read from its folder ``data``. They are scored by ``scorer``, else by the reward model
    ``model`` or the judge ``judge`` (loaded here, and closed), else taken as scored already —
    unless none carries scores, when the embedded default model scores them. Scores are cached
    per record and scorer (``scores``, default under ``~/.cache/omnirm/bench/``). Bad records
    go to ``on_error`` (``record`` writes them to ``errors``).

    >>> run = run_bench("scored.jsonl", bootstrap=100)  # doctest: +SKIP
    >>> run.result.overall["accuracy_without_ties"]  # doctest: +SKIP
    0.75
    """
    from omnirm.bench.store import default_store_path
    from omnirm.bench.suites import get_suite
    from omnirm.jsonl import display_name
    from omnirm.scorer import fingerprint_digest, load_scorer

    if suite is None and source is None:
        raise UsageError("give a records FILE (or -), or --suite NAME with --data DIR or a FILE")
    if source is not None and data is not None:
        raise UsageError("give a records FILE or --data DIR, not both")
    official_rule = None
    if suite is not None:
        found = get_suite(suite)  # an unknown name is refused before anything loads
        suite, official_rule = found.name, found.official
        if source is None and data is None:
            raise UsageError(
                f"--suite {suite} needs --data DIR (the folder you downloaded) or a FILE of its "
                "records"
            )
    if model is not None and judge is not None:
        raise UsageError("give --model or --judge, not both")
    if bootstrap < 0:
        raise UsageError("--bootstrap must be at least 0")
    where = data if data is not None else source
    name = f"{suite} ({data})" if data is not None else display_name(str(source))
    owned = scorer is None
    items: Any = None
    if scorer is None and judge is not None:
        scorer = load_scorer(judge=judge, media=media, source=where, name=name)
    elif scorer is None:
        items = list(_records(suite, data, tasks, source, max_record_bytes))
        if model is not None or _unscored(items):
            # records without any scores and no scorer: the embedded default model
            scorer = load_scorer(model, media=media, source=where, name=name, options=options)
    if items is None:
        items = _records(suite, data, tasks, source, max_record_bytes)
    world = World.from_env()
    sharded = world.sharded and scorer is not None
    if sharded and source is not None:
        refuse_stdin(source, world, "bench")
    store = None
    if scorer is not None:
        digest = fingerprint_digest(scorer.fingerprint())
        path = Path(scores or default_store_path(digest))
        if sharded:  # one store a rank: a store is locked by the process writing it
            path = path.with_name(f"{path.stem}.{world.shard_name()}")
        store = ScoreStore(
            path, digest, inputs=[source, data if data is not None and data.is_file() else None]
        )
    counts: dict[str, int] = {}
    policy = ErrorPolicy(on_error, errors)
    with ProcessGroup(world) if sharded else contextlib.nullcontext() as group:
        try:
            scored: Iterable[dict[str, Any]] | None
            total = _record_count(items, source)
            if isinstance(group, ProcessGroup):
                again = lambda: _records(suite, data, tasks, source, max_record_bytes)  # noqa: E731
                share = None if total is None else group.world.share(total)
                scored = _scored_by_ranks(group, items, again, scorer, store, policy, counts, share)
                total = None if scored is None else len(scored)
            else:
                scored = scored_records(items, scorer, store, policy, counts)
            bench_records: list[BenchItem] = []
            if scored is not None:
                verb = scorer.verb if scorer else "reading"
                progress = console.progress(scored, verb, total)
                bench_records = bench_items(progress, policy, None if scorer else name)
        finally:
            if store is not None:
                store.close()
            if scorer is not None and owned:
                scorer.close()
        if scorer is not None:
            for line in scorer.summary():
                console.info(line)
            if counts.get("reused"):
                console.info(
                    f"{counts['reused']} records reused from {store.path if store else ''}"
                )
        if isinstance(group, ProcessGroup) and not world.main:
            run = cast(BenchRun, group.broadcast(None))  # rank 0's report
            return replace(run, policy=ErrorPolicy(on_error), shown=False)
        if not bench_records:
            raise UsageError(f"{name}: no record to benchmark")
        result = _evaluate(bench_records, calibrate, bootstrap, bootstrap_seed)
        from omnirm.bench.metrics import official_score

        official = official_score(official_rule, bench_records)
        protocol = bench_protocol(suite, tasks, scorer, result, official, calibrate, bootstrap)
        run = BenchRun(name, result, official, protocol, policy, counts.get("reused", 0))
        run.shown = world.main
        if isinstance(group, ProcessGroup):
            group.broadcast(replace(run, policy=ErrorPolicy(on_error)))
        return run


def _scored_by_ranks(
    group: ProcessGroup,
    items: Iterable[tuple[int, Record | InvalidRecord]],
    again: Callable[[], Iterable[tuple[int, Record | InvalidRecord]]],
    scorer: Scorer | None,
    store: ScoreStore | None,
    policy: ErrorPolicy,
    counts: dict[str, int],
    share: int | None,
) -> list[dict[str, Any]] | None:
    """This rank's share of ``items`` scored (``share`` records, where known: its progress
    bar's total); on rank 0, every rank's records gathered in input
    order (read ``again``), the error records of ``--on-error record`` written to ``policy``'s
    writer and its counts summed; None on the other ranks."""
    stream: list[dict[str, Any]] = []
    errors: list[int] = []  # positions of error records in ``stream``

    class Lines:
        def write(self, obj: Any) -> None:
            errors.append(len(stream))
            stream.append(obj)

    local = ErrorPolicy(policy.mode, Lines())
    for record in console.progress(
        scored_records(group.world.take(items), scorer, store, local, counts),
        group.world.label(scorer.verb if scorer else "reading"),
        share,
    ):
        stream.append(record)
    gathered = group.gather((stream, errors, local.count, local.first, counts))
    if gathered is None:
        return None
    error_lines = {id(lines[i]) for lines, positions, *_ in gathered for i in positions}
    policy.count = sum(count for _, _, count, _, _ in gathered)
    policy.first = next((first for *_, first, _ in gathered if first is not None), None)
    for key in ("reused", "scored"):
        counts[key] = sum(rank_counts.get(key, 0) for *_, rank_counts in gathered)
    merged: list[dict[str, Any]] = []

    class Split:
        def write(self, obj: Any) -> None:
            if id(obj) not in error_lines:
                merged.append(obj)
            elif policy.writer is not None:
                policy.writer.write(obj)

    merge(again(), [iter(lines) for lines, *_ in gathered], Split(),
          may_drop=policy.mode is OnError.SKIP)  # fmt: skip
    return merged


def _unscored(items: list[Any]) -> bool:
    """Whether the valid records of ``items`` (``(line, record)`` pairs) all carry neither
    rewards nor a verdict (a file scored in part is read as scored: the rest are errors)."""
    records = [item for _, item in items if isinstance(item, Record)]
    return bool(records) and not any({"rewards", "predicted"} & r.extra.keys() for r in records)


def _records(
    suite: str | None,
    data: Path | None,
    tasks: str | None,
    source: str | Path | None,
    max_bytes: int,
) -> Any:
    from omnirm.records import iter_records

    if source is not None:
        return iter_records(source, max_bytes=record_bytes(max_bytes))
    from omnirm.bench.suites import read_suite

    assert suite is not None and data is not None
    return read_suite(suite, data, tasks=tasks)


def _record_count(items: Any, source: str | Path | None) -> int | None:
    """How many records the run reads (a progress bar's total), where that is known without
    reading them twice: records already in a list, or the lines of a records file."""
    if isinstance(items, list):
        return len(items)
    return None if source is None else count_lines(source)


def _evaluate(
    items: list[BenchItem], calibrate: Path | None, bootstrap: int, seed: int
) -> BenchResult:
    from omnirm.bench.metrics import evaluate
    from omnirm.jsonl import iter_json_lines

    calibration = None
    if calibrate is not None:
        rows = []
        for _, value in iter_json_lines(calibrate):
            if isinstance(value, RecordError):
                raise value
            rows.append(value)
        calibration = bench_items(rows, ErrorPolicy("fail"), str(calibrate))
    return evaluate(items, calibration=calibration, bootstrap=bootstrap, seed=seed)


def bench_protocol(
    suite: str | None,
    tasks: str | None,
    scorer: Scorer | None,
    result: BenchResult,
    official: dict[str, Any] | None,
    calibrate: Path | None,
    bootstrap: int,
) -> dict[str, str]:
    """What a reader needs to compare these numbers with others (printed with every report);
    the scorer's own lines come from its :meth:`~omnirm.scorer.Scorer.describe`."""
    kinds = {task.kind for task in result.tasks}
    protocol = {
        "suite": suite or "records file",
        "tasks": tasks or f"all present ({len(result.tasks)})",
        "overall": "unweighted mean over the tasks run (7- and 9-task overalls differ)",
        "without ties": "tie-labelled records dropped; a tie or missing prediction is wrong",
    }
    if official is not None:
        protocol["official score"] = (
            f"{official['rule']}, in the table 'Official'; the task rows are omnirm's "
            "plain accuracies (not weighted by subset, ties counted as above)"
        )
    if "scalar" in kinds:
        calibration = f"on {calibrate}" if calibrate else "5-fold cross-validation on these records"
        protocol["with ties"] = (
            "three-way; 'tie' when |margin| <= eps: eps chosen per task on these records "
            f"(oracle, as the paper) and, honestly, {calibration}"
        )
        protocol["margin"] = "reward(response 0) - reward(response 1); 0 counts wrong"
    if "judge" in kinds:
        protocol["with ties"] = "three-way; the judge's own [[C]] verdict"
    if scorer is not None:
        protocol.update(scorer.describe())
    protocol["intervals"] = f"bootstrap 95% percentile, {bootstrap} resamples"
    return protocol
