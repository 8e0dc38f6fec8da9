"""Best-of-N: score every candidate of a record, rank them, pick, and export preference pairs.

**Scorers** and their cost for one record with N candidates:

- a reward model (``--model``): one pass over the prompt (with its media) and one short
  continuation per candidate — the prompt is encoded once for all N (shared prefix);
- a judge in pointwise mode (``--judge SPEC --mode pointwise``): N requests, a 1–10 score each;
- a judge in pairwise mode, through a tournament with both orders per match:
  **round-robin** (every pair; used for N ≤ 6 with ``--tournament auto``): N(N−1)/2 matches =
  N(N−1) requests; a win scores 1, a tie or no verdict ½ to each; rewards = points.
  **knockout** (N−1 matches = 2(N−1) requests, in rounds): pairs (0, 1), (2, 3) …, an odd one
  out goes through; a tie or no verdict sends the lower-numbered candidate through (recorded);
  rewards = matches won, so the champion is first and the ranking below it is by round reached.

**Ensembles**: several ``--model``/``--judge`` at once. Each scorer's rewards are standardised
per record (z-scores: mean 0, standard deviation 1 over the candidates; a constant row gives
zeros) and averaged (``--combine zscore``), or every scorer ranks the candidates and ranks are
averaged (``--combine rank``: Borda). Missing scores are left out of the mean. ``agreement`` is
the share of scorers whose own best is the ensemble's best.

**Grouping** (``--group-by FIELD``): records sharing FIELD become one record with all their
responses; each may hold one (the usual sampling layout), as records are grouped before the
two-response rule applies (:func:`group_candidates`).

**Output** adds ``rewards`` (combined), ``best`` (index), ``ranking`` (indices, best first),
``scores`` (per scorer) and ``agreement``. ``--select best|worst`` or ``--top-k K`` keep only the
chosen responses, in rank order, with their original indices in ``selected``; ``rewards``,
``best`` and ``ranking`` still describe all candidates.

Records are scored in chunks (every scorer in turn) and each chunk is written before the next,
with the error records among them in input order (:class:`BestOfN`); ``--resume`` skips the
records the output holds (:mod:`omnirm.resume`).

**Pairs** (``--pairs FILE``): best vs worst, or every pair whose reward gap is at least
``--pair-margin``, as omnirm records (preference 0 = the better first), TRL DPO rows or
LLaMA-Factory ranking rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from omnirm.errors import RecordError, UsageError
from omnirm.jsonl import MAX_RECORD_BYTES, Sink
from omnirm.on_error import ErrorPolicy, OnError
from omnirm.options import JudgeOptions, MediaOptions, ModelOptions, record_bytes
from omnirm.records import InvalidRecord, Record, parse_record
from omnirm.resume import ResumableOutput
from omnirm.scorer import Scorer

if TYPE_CHECKING:
    from omnirm.distributed import World

Scores = list[float | None]


@dataclass
class BonSettings:
    select: Literal["best", "worst", "all"] = "all"
    top_k: int | None = None
    combine: Literal["zscore", "rank"] = "zscore"
    tournament: Literal["auto", "knockout", "round-robin"] = "auto"
    round_robin_max: int = 6
    chunk: int = 8  # records scored by every scorer, then written, at first (see BestOfN)
    max_chunk: int = 256

    def fingerprint(self) -> dict[str, Any]:
        """The settings that change the output (not how it is chunked)."""
        return {k: v for k, v in asdict(self).items() if k not in ("chunk", "max_chunk")}


# -- gathering candidates -----------------------------------------------------------------------


def group_candidates(
    items: Iterable[tuple[int, Record | InvalidRecord]], field: str, policy: ErrorPolicy
) -> list[tuple[int, Record]]:
    """Records that share the value of ``field`` (a top-level key such as ``prompt_id``, or
    ``prompt``) merged into one record whose responses are all theirs, in input order; the
    first record gives the prompt and criterion, and ``candidate_ids`` lists where each
    response came from. Records may hold one response each (read them with
    ``iter_records(..., min_responses=1)``); a group must end up with two."""
    groups: dict[str, tuple[int, Record, list[Any], list[str], list[float]]] = {}
    for line, item in items:
        if isinstance(item, InvalidRecord):
            policy.handle(item)
            continue
        data = item.to_dict()
        if field not in data:
            policy.handle(
                InvalidRecord(
                    line,
                    RecordError(f"has no {field!r} to group by", record_id=item.id, line=line),
                    data,
                )
            )
            continue
        key = str(data[field]) if not isinstance(data[field], str) else data[field]
        entry = groups.setdefault(key, (line, item, [], [], []))
        for index, response in enumerate(item.responses):
            entry[2].append(response)
            entry[3].append(f"{item.id}#{index}" if item.num_responses > 1 else item.id)
            if item.gold_scores is not None:
                entry[4].append(item.gold_scores[index])
    merged = []
    for key, (line, first, responses, sources, gold) in groups.items():
        data = first.to_dict()
        for label in ("preference", "ranking", "gold_scores"):
            data.pop(label, None)
        data.update(id=key, responses=responses, candidate_ids=sources)
        if len(gold) == len(responses):
            data["gold_scores"] = gold
        if len(responses) < 2:
            policy.handle(
                InvalidRecord(
                    line,
                    RecordError(
                        f"group {key!r} has one candidate; best-of-N needs at least two",
                        record_id=key,
                        line=line,
                    ),
                    data,
                )
            )
            continue
        merged.append((line, parse_record(data)))
    return merged


# -- scoring ------------------------------------------------------------------------------------


def score_candidates(
    runner: Scorer,
    records: Sequence[tuple[int, Record]],
    policy: ErrorPolicy,
    settings: BonSettings,
    into: dict[str, Scores] | None = None,
) -> dict[str, Scores]:
    """Rewards per candidate for every record ``runner`` could score, by record id, added to
    ``into`` as they come (so what was scored before an error raised is kept there)."""
    into = {} if into is None else into
    if runner.pairwise:
        into.update(_tournaments(runner, records, policy, settings))
        return into
    for out in runner.score(records, policy):
        into[str(out["id"])] = list(out["rewards"])
    return into


def _pair_record(record: Record, first: int, second: int) -> Record:
    data = record.to_dict()
    for label in ("preference", "ranking", "gold_scores", "candidate_ids"):
        data.pop(label, None)
    data.update(
        id=f"{record.id}::{first}v{second}",
        responses=[record.responses[first], record.responses[second]],
    )
    return parse_record(data)


def _matches(
    runner: Scorer, wanted: list[tuple[int, Record, int, int]], policy: ErrorPolicy
) -> dict[tuple[str, int, int], Any]:
    """Outcomes (0 = first wins, 1 = second, "tie", None) of the wanted matches, by
    (record id, first, second)."""
    items = [(line, _pair_record(record, a, b)) for line, record, a, b in wanted]
    keys = {f"{record.id}::{a}v{b}": (record.id, a, b) for _, record, a, b in wanted}
    return {keys[str(out["id"])]: out.get("predicted") for out in runner.score(items, policy)}


def _tournaments(
    runner: Scorer,
    records: Sequence[tuple[int, Record]],
    policy: ErrorPolicy,
    settings: BonSettings,
) -> dict[str, Scores]:
    small = [
        (line, r)
        for line, r in records
        if settings.tournament == "round-robin"
        or (settings.tournament == "auto" and r.num_responses <= settings.round_robin_max)
    ]
    in_small = {r.id for _, r in small}
    large = [(line, r) for line, r in records if r.id not in in_small]
    rewards: dict[str, Scores] = {}
    if small:
        wanted = [
            (line, r, a, b)
            for line, r in small
            for a in range(r.num_responses)
            for b in range(a + 1, r.num_responses)
        ]
        outcomes = _matches(runner, wanted, policy)
        for _, record in small:
            n = record.num_responses
            points = [0.0] * n
            complete = True
            for a in range(n):
                for b in range(a + 1, n):
                    if (record.id, a, b) not in outcomes:
                        complete = False
                        continue
                    outcome = outcomes[(record.id, a, b)]
                    if outcome == 0:
                        points[a] += 1
                    elif outcome == 1:
                        points[b] += 1
                    else:
                        points[a] += 0.5
                        points[b] += 0.5
            if complete:
                rewards[record.id] = list(points)
    if large:
        rewards.update(_knockout(runner, large, policy))
    return rewards


def _knockout(
    runner: Scorer, records: Sequence[tuple[int, Record]], policy: ErrorPolicy
) -> dict[str, Scores]:
    alive = {record.id: list(range(record.num_responses)) for _, record in records}
    wins = {record.id: [0.0] * record.num_responses for _, record in records}
    failed: set[str] = set()
    by_id = {record.id: (line, record) for line, record in records}
    while any(len(v) > 1 for key, v in alive.items() if key not in failed):
        wanted = []
        for key, left in alive.items():
            if key in failed or len(left) < 2:
                continue
            line, record = by_id[key]
            wanted += [(line, record, left[i], left[i + 1]) for i in range(0, len(left) - 1, 2)]
        outcomes = _matches(runner, wanted, policy)
        for key, left in list(alive.items()):
            if key in failed or len(left) < 2:
                continue
            survivors = []
            for i in range(0, len(left) - 1, 2):
                a, b = left[i], left[i + 1]
                if (key, a, b) not in outcomes:
                    failed.add(key)
                    break
                winner = b if outcomes[(key, a, b)] == 1 else a  # tie / no verdict: a
                wins[key][winner] += 1
                survivors.append(winner)
            if len(left) % 2:
                survivors.append(left[-1])  # a bye
            alive[key] = survivors
    return {key: list(value) for key, value in wins.items() if key not in failed}


# -- combining and selecting ---------------------------------------------------------------------


def ranking_of(rewards: Scores) -> list[int]:
    """Indices best first; missing rewards last; equal rewards keep index order."""
    return sorted(range(len(rewards)), key=lambda i: (rewards[i] is None, -(rewards[i] or 0.0), i))


def zscores(rewards: Scores) -> Scores:
    present = [r for r in rewards if r is not None]
    if not present:
        return list(rewards)
    mean = sum(present) / len(present)
    std = math.sqrt(sum((r - mean) ** 2 for r in present) / len(present))
    return [None if r is None else (0.0 if std == 0 else (r - mean) / std) for r in rewards]


def rank_points(rewards: Scores) -> Scores:
    """Borda points: N−1 for the best … 0 for the worst; equal rewards share the mean points."""
    n = len(rewards)
    present = sorted({r for r in rewards if r is not None}, reverse=True)
    points: dict[float, float] = {}
    position = 0
    for value in present:
        count = sum(1 for r in rewards if r == value)
        points[value] = sum(n - 1 - p for p in range(position, position + count)) / count
        position += count
    return [None if r is None else points[r] for r in rewards]


def combine(scores: dict[str, Scores], method: str) -> tuple[Scores, float | None]:
    """The ensemble's rewards and the share of scorers whose best is the ensemble's best."""
    if len(scores) == 1:
        (only,) = scores.values()
        return list(only), 1.0
    normalise = zscores if method == "zscore" else rank_points
    columns = [normalise(s) for s in scores.values()]
    n = len(next(iter(scores.values())))
    combined: Scores = []
    for i in range(n):
        values = [c[i] for c in columns if c[i] is not None]
        combined.append(sum(values) / len(values) if values else None)  # type: ignore[arg-type]
    best = ranking_of(combined)[0]
    agree = [ranking_of(s)[0] == best for s in scores.values() if any(v is not None for v in s)]
    return combined, (sum(agree) / len(agree) if agree else None)


def annotate(record: Record, scores: dict[str, Scores], settings: BonSettings) -> dict[str, Any]:
    """The output record (see the module docs)."""
    rewards, agreement = combine(scores, settings.combine)
    ranking = ranking_of(rewards)
    out = record.to_dict()
    out["rewards"] = rewards
    out["best"] = ranking[0]
    out["ranking"] = ranking
    out["scores"] = scores
    out["agreement"] = agreement
    chosen: list[int] | None = None
    if settings.top_k is not None:
        chosen = ranking[: settings.top_k]
    elif settings.select == "best":
        chosen = ranking[:1]
    elif settings.select == "worst":
        chosen = ranking[-1:]
    if chosen is not None:
        out["selected"] = chosen
        out["responses"] = [record.responses[i] for i in chosen]
    return out


# -- the run ------------------------------------------------------------------------------------


class OrderedLines:
    """Output lines held until every line before them in the input is known, then written in
    input order: error records (from the error policy, through :meth:`write`) and scored
    records (:meth:`add`) interleave as their records did."""

    def __init__(self, output: ResumableOutput) -> None:
        self.output = output
        self._held: list[tuple[int, int, bool, dict[str, Any]]] = []  # line, seq, error, line
        self._last = 0

    def write(self, obj: Any) -> None:
        """An error record, placed by the input line its error names."""
        line = obj.get("error", {}).get("line") if isinstance(obj, dict) else None
        self._hold(line if isinstance(line, int) else self._last, True, obj)

    def add(self, line: int, obj: dict[str, Any]) -> None:
        self._hold(line, False, obj)

    def _hold(self, line: int, error: bool, obj: dict[str, Any]) -> None:
        self._held.append((line, len(self._held), error, obj))
        self._last = max(self._last, line)

    def release(self, upto: int | None = None) -> None:
        """Write the lines held up to input line ``upto`` (None: all)."""
        self._held.sort(key=lambda held: held[:2])
        count = 0
        for line, _, error, obj in self._held:
            if upto is not None and line > upto:
                break
            count += 1
            if error:
                self.output.write_error(obj)
            else:
                self.output.write(obj)
        del self._held[:count]


#: A chunk of records scored in less than this is followed by one twice as large.
CHUNK_SECONDS = 1.0


class BestOfN:
    """A best-of-N run: records go through in chunks, each scored by every scorer in turn, then
    written with the errors met, in input order, before the next chunk. The first chunk holds
    ``settings.chunk`` records; the next ones double while a chunk takes under
    :data:`CHUNK_SECONDS`, up to ``settings.max_chunk``, so output starts at once and keeps
    coming. Records the output has already (``--resume``) are not scored again."""

    def __init__(
        self,
        scorers: Sequence[tuple[str, Scorer]],
        settings: BonSettings,
        output: ResumableOutput,
        on_error: OnError | str,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        self.scorers = scorers
        self.settings = settings
        self.output = output
        self.provenance = provenance or {}
        self.lines = OrderedLines(output)
        self.policy = ErrorPolicy(on_error, self.lines)
        self._seconds = 0.0  # how long the last chunk took to score

    def run(
        self, items: Iterable[tuple[int, Record | InvalidRecord]]
    ) -> Iterator[tuple[Record, dict[str, Any]]]:
        """``(record, its output line)`` for every record with scores, new or found in the
        output, in input order; bad records go to :attr:`policy`."""
        chunk: list[tuple[int, Record]] = []
        size = self.settings.chunk
        for line, item in items:
            if isinstance(item, InvalidRecord):
                yield from self._chunk(chunk)
                chunk = []
                if not self.output.is_done(line, item):
                    self.policy.handle(item)
                self.lines.release(line)
                continue
            chunk.append((line, item))
            if len(chunk) >= size:
                yield from self._chunk(chunk)
                chunk = []
                if self._seconds < CHUNK_SECONDS:
                    size = min(self.settings.max_chunk, size * 2)
        yield from self._chunk(chunk)
        self.lines.release()

    def _chunk(self, chunk: list[tuple[int, Record]]) -> Iterator[tuple[Record, dict[str, Any]]]:
        if not chunk:
            return
        started = time.monotonic()
        done = {record.id for line, record in chunk if self.output.is_done(line, record)}
        todo = [(line, record) for line, record in chunk if record.id not in done]
        scores: dict[str, dict[str, Scores]] = {}
        try:
            for label, runner in self.scorers:
                part: dict[str, Scores] = {}
                try:
                    score_candidates(runner, todo, self.policy, self.settings, part)
                finally:
                    for record_id, rewards in part.items():
                        scores.setdefault(record_id, {})[label] = rewards
        except RecordError as error:  # --on-error fail: the records before it are written
            yield from self._finish(chunk, done, scores, before=error.line or 0)
            raise
        self._seconds = time.monotonic() - started
        yield from self._finish(chunk, done, scores)

    def _finish(
        self,
        chunk: list[tuple[int, Record]],
        done: set[str],
        scores: dict[str, dict[str, Scores]],
        before: int | None = None,
    ) -> Iterator[tuple[Record, dict[str, Any]]]:
        last = 0
        for line, record in chunk:
            if before is not None and line >= before:
                break
            last = line
            if record.id in done:
                found = self.output.scored_line(record.id)
                if found is not None:
                    yield record, found
                continue
            mine = scores.get(record.id)
            if mine is None or len(mine) < len(self.scorers):
                continue  # a scorer failed on it: reported already
            out = annotate(record, mine, self.settings)
            out["scored_by"] = self.provenance
            self.lines.add(line, out)
            yield record, out
        self.lines.release(last if before is not None else chunk[-1][0])


def bon_fingerprint(
    scorers: Sequence[tuple[str, Scorer]], settings: BonSettings, group_by: str | None
) -> dict[str, Any]:
    """What identifies a best-of-N output: every scorer's fingerprint, the settings, grouping."""
    return {
        "scorers": [[label, runner.fingerprint()] for label, runner in scorers],
        "settings": settings.fingerprint(),
        "group_by": group_by,
    }


def bon_provenance(
    scorers: Sequence[tuple[str, Scorer]], settings: BonSettings, group_by: str | None
) -> dict[str, Any]:
    """The ``scored_by`` block of best-of-N records: the scorers by label, the settings."""
    return {"scorers": [label for label, _ in scorers], **settings.fingerprint(),
            "group_by": group_by}  # fmt: skip


# -- pairs and quality ------------------------------------------------------------------------------


def preference_pairs(
    record: Record, rewards: Scores, *, mode: str = "best-worst", margin: float = 0.0
) -> Iterator[dict[str, Any]]:
    """Preference pairs from one scored record, as omnirm records (the better response first,
    ``preference`` 0, the reward gap as ``margin``)."""
    order = [i for i in ranking_of(rewards) if rewards[i] is not None]
    if len(order) < 2:
        return
    if mode == "best-worst":
        candidates = [(order[0], order[-1])]
    else:
        candidates = [(a, b) for x, a in enumerate(order) for b in order[x + 1 :]]
    base = record.to_dict()
    for label in ("preference", "ranking", "gold_scores", "candidate_ids", "rewards", "scores"):
        base.pop(label, None)
    for better, worse in candidates:
        gap = float(rewards[better]) - float(rewards[worse])  # type: ignore[arg-type]
        if gap <= 0 or gap < margin:
            continue
        yield {
            **base,
            "id": f"{record.id}::{better}>{worse}",
            "responses": [record.responses[better], record.responses[worse]],
            "preference": 0,
            "margin": gap,
            "source_id": record.id,
        }


class PairWriter:
    """Preference pairs of each scored record, written as it comes in one of the ``--pairs``
    formats (omnirm records, TRL rows, LLaMA-Factory rows); :attr:`count` counts them."""

    def __init__(
        self,
        sink: Sink,
        fmt: str,
        *,
        mode: str,
        margin: float,
        media_root: Path | None = None,
    ) -> None:
        self.sink = sink
        self.fmt = fmt
        self.mode = mode
        self.margin = margin
        self.media_root = media_root  # TRL rows name their images by absolute path
        self.count = 0
        self.problems: list[RecordError] = []  # pairs the format cannot hold

    def add(self, record: Record, rewards: Scores) -> None:
        rows = list(preference_pairs(record, rewards, mode=self.mode, margin=self.margin))
        if self.fmt == "omnirm":
            for row in rows:
                self.sink.write(row)
            self.count += len(rows)
            return
        pairs = (parse_record(row) for row in rows)
        if self.fmt == "trl":
            from omnirm.formats.pairs import write_pairs

            items = write_pairs(pairs, media_root=self.media_root)
        else:
            from omnirm.formats.llamafactory import write_llamafactory

            items = write_llamafactory(pairs)
        for item in items:
            if isinstance(item, RecordError):
                self.problems.append(item)  # e.g. media LLaMA-Factory cannot place
                continue
            self.sink.write(item)
            self.count += 1


@dataclass
class Quality:
    """How good the picks are where candidates carry ``gold_scores``."""

    records: int = 0
    picked: float = 0.0  # sum of the gold score of the pick
    best: float = 0.0  # sum of the best gold score available
    random: float = 0.0  # sum of the mean gold score (a random pick's expectation)
    hits: int = 0  # picks whose gold score is the best available

    def add(self, gold: Sequence[float], pick: int) -> None:
        self.records += 1
        self.picked += gold[pick]
        self.best += max(gold)
        self.random += sum(gold) / len(gold)
        self.hits += 1 if gold[pick] == max(gold) else 0

    def to_dict(self) -> dict[str, Any]:
        n = self.records or 1
        return {
            "records": self.records,
            "gold_of_pick": self.picked / n,
            "gold_of_best": self.best / n,
            "gold_of_random_pick": self.random / n,
            "best_picked": self.hits / n,
        }

    def summary(self) -> str:
        q = self.to_dict()
        return (
            f"selection quality on {self.records} records with gold scores: mean gold of the "
            f"pick {q['gold_of_pick']:.3f}, of the best candidate {q['gold_of_best']:.3f}, of a "
            f"random pick {q['gold_of_random_pick']:.3f}; best picked {q['best_picked']:.1%}"
        )


# -- the pipeline -------------------------------------------------------------------------------


@dataclass
class BonRun:
    """What :func:`best_of_n` did: how bad records were handled, the selection quality (records
    with ``gold_scores``), the pairs written, and the records found done (``resume``)."""

    policy: ErrorPolicy  # its exit_code() ends the command
    quality: Quality
    pairs: int = 0
    skipped: int = 0


def best_of_n(
    source: str | Path = "-",
    *,
    models: Sequence[str | None] = (),
    judges: Sequence[str] = (),
    judge_options: JudgeOptions | None = None,
    scorers: Sequence[Scorer] = (),
    options: ModelOptions | None = None,
    media: MediaOptions | None = None,
    settings: BonSettings | None = None,
    group_by: str | None = None,
    output: Path | None = None,
    resume: bool = False,
    pairs: Path | None = None,
    pairs_format: str = "omnirm",
    pair_mode: str = "best-worst",
    pair_margin: float = 0.0,
    on_error: OnError | str = OnError.FAIL,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> BonRun:
    """Best-of-N over the records of ``source`` (a JSONL file or ``-``), written to ``output``
    (None: standard output) as they are scored; see the module docs. The scorers are the open
    ``scorers``, then the reward ``models`` and the ``judges`` (specs, each with the other
    settings of ``judge_options``), loaded here after the outputs are locked and closed at the
    end; with none at all, the embedded default reward model. ``pairs`` also writes preference
    pairs (``pairs_format``: omnirm, trl or llamafactory). Progress and summaries go to stderr.

    >>> run = best_of_n("candidates.jsonl", output=Path("ranked.jsonl"))  # doctest: +SKIP
    >>> run.policy.exit_code()  # doctest: +SKIP
    0
    """
    from dataclasses import replace

    from omnirm.distributed import World, run_sharded

    world = World.from_env()
    if not world.sharded:
        return _best_of_n(
            source,
            models=models,
            judges=judges,
            judge_options=judge_options,
            scorers=scorers,
            options=options,
            media=media,
            settings=settings,
            group_by=group_by,
            output=output,
            resume=resume,
            pairs=pairs,
            pairs_format=pairs_format,
            pair_mode=pair_mode,
            pair_margin=pair_margin,
            on_error=on_error,
            max_record_bytes=max_record_bytes,
        )
    if group_by is not None or pairs is not None:
        raise UsageError(
            f"bon under {world.size} processes: --group-by and --pairs run in one process only "
            "(group the candidates, or write pairs from the output, in a run of one process)"
        )
    if resume and output is None:
        raise UsageError("--resume needs -o FILE (the output to continue)")
    options = options or ModelOptions()
    options = replace(options, device=world.device(options.device) or options.device)
    if judge_options is not None:
        judge_options = replace(judge_options, device=world.device(judge_options.device))
    quality = Quality()

    def merged(line: dict[str, Any]) -> None:
        gold, best = line.get("gold_scores"), line.get("best")
        if isinstance(gold, list) and isinstance(best, int):
            quality.add(gold, best)

    run = run_sharded(
        world,
        source,
        output,
        lambda shard, resume_shard: _best_of_n(
            source,
            models=models,
            judges=judges,
            judge_options=judge_options,
            scorers=scorers,
            options=options,
            media=media,
            settings=settings,
            group_by=group_by,
            output=shard,
            resume=resume_shard,
            pairs=pairs,
            pairs_format=pairs_format,
            pair_mode=pair_mode,
            pair_margin=pair_margin,
            on_error=on_error,
            max_record_bytes=max_record_bytes,
            append=True,
            world=world,
        ),
        command="bon",
        resume=resume,
        may_drop=OnError(on_error) == OnError.SKIP,
        max_bytes=record_bytes(max_record_bytes),
        merged=merged if world.main else None,
    )
    if quality.records:
        from omnirm import console

        console.info(quality.summary())
    return replace(run, quality=quality) if world.main else run


def _best_of_n(
    source: str | Path = "-",
    *,
    models: Sequence[str | None] = (),
    judges: Sequence[str] = (),
    judge_options: JudgeOptions | None = None,
    scorers: Sequence[Scorer] = (),
    options: ModelOptions | None = None,
    media: MediaOptions | None = None,
    settings: BonSettings | None = None,
    group_by: str | None = None,
    output: Path | None = None,
    resume: bool = False,
    pairs: Path | None = None,
    pairs_format: str = "omnirm",
    pair_mode: str = "best-worst",
    pair_margin: float = 0.0,
    on_error: OnError | str = OnError.FAIL,
    max_record_bytes: int = MAX_RECORD_BYTES,
    append: bool | None = None,
    world: World | None = None,
) -> BonRun:
    """:func:`best_of_n` into ``output``, appending with ``append`` (default: ``resume``); with
    ``world``, only its share of the input (one rank of a sharded run)."""
    import contextlib
    from dataclasses import replace

    from omnirm import console
    from omnirm.distributed import records_to_read
    from omnirm.jsonl import STDIN, JsonlWriter, display_name
    from omnirm.records import iter_records
    from omnirm.scorer import fingerprint_digest, open_scorer

    settings = settings or BonSettings()
    if settings.top_k is not None and settings.top_k < 1:
        raise UsageError("--top-k must be at least 1")
    if settings.top_k is not None and settings.select != "all":
        raise UsageError("give --select or --top-k, not both")
    if pair_margin < 0:
        raise UsageError("--pair-margin must be at least 0")
    if resume and output is None:
        raise UsageError("--resume needs -o FILE (the output to continue)")
    resolver = (media or MediaOptions()).resolver(source)
    name = display_name(source)
    specs: list[tuple[str | None, str | None]] = [(m, None) for m in models]
    specs += [(None, j) for j in judges]
    if not specs and not scorers:  # the embedded default reward model
        specs = [(None, None)]
    template = judge_options or JudgeOptions(spec="-")
    quality = Quality()
    with contextlib.ExitStack() as stack:
        # Outputs are locked (and checked against the input) before any model loads.
        writer = stack.enter_context(
            JsonlWriter(
                output,
                append=resume if append is None else append,
                inputs=[source],
            )
        )
        pair_writer = None
        if pairs is not None:
            pair_file = stack.enter_context(
                JsonlWriter(pairs, inputs=[source, output], option="--pairs")
            )
            pair_writer = PairWriter(
                pair_file, pairs_format, mode=pair_mode, margin=pair_margin,
                media_root=resolver.root,
            )  # fmt: skip
        opened: list[Scorer] = list(scorers)
        for model, judge in specs:
            spec = replace(template, spec=judge) if judge is not None else None
            scorer = open_scorer(model, spec, resolver=resolver, name=name, options=options)
            stack.callback(scorer.close)
            opened.append(scorer)
        labelled = [(scorer.label, scorer) for scorer in opened]
        provenance = bon_provenance(labelled, settings, group_by)
        out = ResumableOutput(
            writer,
            fingerprint_digest(bon_fingerprint(labelled, settings, group_by)),
            path=writer.file.path if resume and writer.file else None,
            source=name,
            provenance=provenance,
        )
        run = BestOfN(labelled, settings, out, on_error, provenance)
        max_bytes = record_bytes(max_record_bytes)
        items: Any
        if group_by is not None:  # one candidate a record is the usual layout: group first
            items = iter_records(source, max_bytes=max_bytes, min_responses=1)
            items = group_candidates(items, group_by, run.policy)
        else:
            items = iter_records(source, max_bytes=max_bytes)
            items = world.take(items) if world is not None else items
        if resume and (group_by is not None or source != STDIN):
            again = iter_records(source, max_bytes=max_bytes)
            out.check_input(
                items
                if group_by is not None
                else (world.take(again) if world is not None else again)
            )
        # one candidate a record (--group-by): how many groups is not known before reading
        total = None if group_by is not None else records_to_read(source, world)
        verb = "best-of-N" if world is None else world.label("best-of-N")
        for record, line in console.progress(run.run(items), verb, total):
            if record.gold_scores is not None:
                quality.add(record.gold_scores, line["best"])
            if pair_writer is not None:
                pair_writer.add(record, line["rewards"])
        if resume and source == STDIN and group_by is None:
            out.check_all_matched()
    for label, scorer in labelled:
        for text in scorer.summary():
            console.info(f"{label}: {text}")
    if out.skipped:
        console.info(f"resumed: {out.skipped} records were already in {output}")
    if pair_writer is not None:
        for problem in pair_writer.problems:
            console.warn(f"pair {problem}")
        console.info(f"{pair_writer.count} preference pairs written to {pairs} ({pairs_format})")
    if quality.records and world is None:  # a sharded run: rank 0 sums the merged lines
        console.info(quality.summary())
    count = pair_writer.count if pair_writer is not None else 0
    return BonRun(run.policy, quality, count, out.skipped)
