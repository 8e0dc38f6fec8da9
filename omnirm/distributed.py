"""Data-parallel ``score``, ``bench``, ``bon`` and the ``data`` builders under ``torchrun`` or ``accelerate launch``.

A launcher starts one process per GPU (or per CPU share) and sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``; one process (no such variables, or ``WORLD_SIZE=1``) runs as it always has.

- **Shards.** The input's items (every non-blank line, valid or not) are dealt round-robin:
  the item at position ``p`` goes to rank ``p % world_size``. Inputs are often sorted (by
  length, task or source); contiguous blocks would hand one rank all the long records, while
  dealing them out keeps the ranks equally busy and needs no count of the input first.
- **Shard files.** Each rank scores its share through the usual seam (:func:`load_scorer`, the
  windowed loop, stamped lines of :class:`~omnirm.resume.ResumableOutput`) into its own file,
  ``.OUT.shards/rank-00001-of-00002.jsonl`` beside ``-o OUT`` (a hidden folder in the working
  directory without ``-o``), appended line by line so that a killed rank keeps what it wrote.
- **Merge.** After a barrier, rank 0 walks the input again and takes each item's line from
  the shard that owns it (the ``data`` builders: each item's lines, kept and rejected, from
  the two shards of its rank): the output is in input order, written through a temporary file
  renamed into place, and every input record is checked to appear exactly once (a record
  missing from its shard is an error unless ``--on-error skip`` dropped it). The shards are
  then removed; on failure they stay, for ``--resume``.
- **Resume.** ``--resume`` continues each shard from its own file with the usual fingerprint
  checks (a shard never mixes models or settings), under the same number of processes.

Devices: ``--device auto`` (or ``cuda``) becomes ``cuda:LOCAL_RANK`` (modulo the GPUs there
are). The process group is initialised here when the launcher has not: NCCL with a GPU per
process, else gloo (CPUs, or several processes sharing a GPU).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson

from omnirm.errors import UsageError
from omnirm.jsonl import Sink, complete_lines
from omnirm.records import InvalidRecord, Record
from omnirm.resume import item_hash, item_key, line_key

T = TypeVar("T")
R = TypeVar("R")
Item = tuple[int, Record | InvalidRecord]

#: How long a rank waits for the others at a barrier (ranks may finish far apart).
BARRIER_TIMEOUT = timedelta(hours=24)


@dataclass(frozen=True)
class World:
    """The processes a launcher started: how many, which one this is, its GPU on the node."""

    size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_size: int = 1  # processes on this node

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> World:
        """From ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (torchrun, accelerate launch)."""
        try:
            size = int(environ.get("WORLD_SIZE", "1"))
            rank = int(environ.get("RANK", "0"))
            local = int(environ.get("LOCAL_RANK", str(rank)))
            local_size = int(environ.get("LOCAL_WORLD_SIZE", str(size)))
        except ValueError:
            raise UsageError(
                "WORLD_SIZE, RANK and LOCAL_RANK must be whole numbers (set by torchrun or "
                "accelerate launch)"
            ) from None
        if size < 1 or not 0 <= rank < size:
            raise UsageError(f"RANK {rank} is not within WORLD_SIZE {size}")
        return cls(size, rank, local, local_size)

    @property
    def sharded(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def take(self, items: Iterable[T]) -> Iterator[T]:
        """This rank's share of ``items``: every ``size``-th, from position ``rank``."""
        for position, item in enumerate(items):
            if position % self.size == self.rank:
                yield item

    def label(self, description: str) -> str:
        """``description`` naming this rank when there are several (their progress lines)."""
        return f"{description} (rank {self.rank} of {self.size})" if self.sharded else description

    def share(self, count: int) -> int:
        """How many of ``count`` items this rank takes."""
        return len(range(self.rank, count, self.size))

    def device(self, device: str | None) -> str | None:
        """``--device`` for this rank: ``auto``/``cuda`` become ``cuda:LOCAL_RANK`` on GPUs."""
        import torch

        if device in (None, "auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return device

    def shard_name(self, rank: int | None = None, suffix: str = "") -> str:
        """``rank-R-of-N{suffix}.jsonl``: a rank's shard of an output (``suffix`` tells apart
        the outputs of one command, e.g. ``.rejected``)."""
        rank = self.rank if rank is None else rank
        return f"rank-{rank:05d}-of-{self.size:05d}{suffix}.jsonl"


def records_to_read(source: str | Path, world: World | None) -> int | None:
    """A progress bar's total: the records of ``source`` (its non-blank lines; None for standard
    input), or ``world``'s share of them."""
    from omnirm.jsonl import count_lines

    lines = count_lines(source)
    return lines if lines is None or world is None else world.share(lines)


class ProcessGroup:
    """The torch.distributed group of a :class:`World` (initialised here when the launcher has
    not: NCCL on GPUs, gloo on CPUs; destroyed on exit if made here). Barriers, and small
    objects sent from rank 0 or gathered to it."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._owned = False
        self._nccl = False

    def __enter__(self) -> ProcessGroup:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
            # NCCL needs a GPU of its own per process; more processes than GPUs share them
            # (each scores on cuda:LOCAL_RANK mod GPUs) and talk over gloo
            nccl = 0 < self.world.local_size <= gpus
            if gpus:
                torch.cuda.set_device(self.world.local_rank % gpus)
            dist.init_process_group("nccl" if nccl else "gloo", timeout=BARRIER_TIMEOUT)
            self._owned = True
        self._nccl = dist.get_backend() == "nccl"
        return self

    def __exit__(self, *exc: object) -> None:
        import torch.distributed as dist

        if self._owned and dist.is_initialized():
            dist.destroy_process_group()

    def barrier(self) -> None:
        import torch.distributed as dist

        if self._nccl:
            import torch

            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value``, on every rank."""
        import torch.distributed as dist

        box: list[Any] = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: T) -> list[T] | None:
        """Every rank's ``value``, in rank order, on rank 0 (None on the others)."""
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world.size if self.world.main else None
        dist.gather_object(value, out, dst=0)
        return out


def shard_folder(output: Path | None, group: ProcessGroup) -> Path:
    """Where the ranks write their shards: ``.OUT.shards`` beside ``output``, else a fresh
    hidden folder in the working directory (named by rank 0). On several nodes it must be on
    a file system they share."""
    if output is not None:
        return output.resolve().parent / f".{output.name}.shards"
    name = group.broadcast(uuid.uuid4().hex[:12] if group.world.main else "")
    return Path.cwd() / f".omnirm-shards-{name}"


def prepare_shards(
    folder: Path,
    world: World,
    *,
    output: Path | None,
    resume: bool,
    suffixes: Iterable[str] = ("",),
) -> None:
    """Rank 0, before any rank writes: a fresh run removes stale shards; ``--resume`` needs the
    shards of the same number of processes (or none yet, and no finished output)."""
    folder.mkdir(parents=True, exist_ok=True)
    present = sorted(folder.glob("rank-*-of-*.jsonl"))
    if not resume:
        for path in present:
            path.unlink()
        return
    ours = {world.shard_name(rank, suffix) for rank in range(world.size) for suffix in suffixes}
    other = [path.name for path in present if path.name not in ours]
    if other:
        raise UsageError(
            f"{folder}: holds shards of another number of processes ({other[0]}); --resume "
            f"continues them only under the same number ({world.size} now): relaunch with that "
            "many, or score anew without --resume"
        )
    if not present and output is not None and output.exists() and output.stat().st_size > 0:
        raise UsageError(
            f"-o {output}: exists but {folder} holds no shards: it is complete (or was written "
            "by one process: --resume it with one process); write to a new file"
        )


def _shard_lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    for number, raw in complete_lines(path):
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            line = None
        if not isinstance(line, dict):
            raise UsageError(f"{path}:{number}: not a JSON object; the shards are kept")
        yield line


def _input_stamp(line: dict[str, Any]) -> str | None:
    for field in ("scored_by", "error"):
        block = line.get(field)
        if isinstance(block, dict) and "input" in block:
            return block["input"]
    return None


def scored_line_key(line: dict[str, Any]) -> tuple[str | None, str | None]:
    """The record a scored (or error) line was written for: its key and, when stamped, the hash
    of the input it was scored from."""
    return line_key(line), _input_stamp(line)


LineKey = Callable[[dict[str, Any]], tuple[str | None, str | None]]


@dataclass
class ShardedOutput:
    """One output of a sharded merge: each rank's shard lines (in that rank's input order), the
    shards' names (for messages), and where the merged lines go."""

    shards: list[Iterator[dict[str, Any]]]
    sink: Sink
    names: list[str]


def merge(
    items: Iterable[Item],
    shards: list[Iterator[dict[str, Any]]],
    sink: Sink,
    *,
    names: list[str] | None = None,
    source: str = "the input",
    may_drop: bool = False,
) -> tuple[int, int]:
    """Write the lines of ``shards`` (one iterator per rank, each in its input order) to
    ``sink`` in the order of ``items`` (the whole input, dealt as :meth:`World.take` deals
    it): one line per item (see :func:`merge_outputs`). Returns (lines written, items without
    a line)."""
    names = names or [f"shard {rank}" for rank in range(len(shards))]
    return merge_outputs(
        items, [ShardedOutput(shards, sink, names)], source=source, may_drop=may_drop
    )


def merge_outputs(
    items: Iterable[Item],
    outputs: list[ShardedOutput],
    *,
    source: str = "the input",
    may_drop: bool = False,
    several: bool = False,
    key: LineKey = scored_line_key,
    check: Callable[[list[dict[str, Any]]], str | None] | None = None,
) -> tuple[int, int]:
    """Merge each output's shards in the order of ``items``. An item takes, from each output,
    the next line of its rank's shard when that line carries its key (and was written from
    this very input) — with ``several``, every such line in a row (a builder writes several
    lines per input, some kept, some rejected). Checked: every line is used once, each item
    has a line in some output unless ``may_drop`` (``--on-error skip``), and ``check`` finds
    no problem with an item's lines. Returns (lines written, items without a line)."""
    size = len(outputs[0].shards)
    heads = [[next(shard, None) for shard in output.shards] for output in outputs]
    written = dropped = 0
    for position, (line, item) in enumerate(items):
        rank = position % size
        wanted, digest = item_key(item), item_hash(item)
        taken: list[dict[str, Any]] = []
        for index, output in enumerate(outputs):
            while True:
                head = heads[index][rank]
                if head is None:
                    break
                found, stamp = key(head)
                if found != wanted or stamp not in (None, digest):
                    break
                output.sink.write(head)
                taken.append(head)
                heads[index][rank] = next(output.shards[rank], None)
                if not several:
                    break
        if not taken:
            if not may_drop:
                names = " or ".join(output.names[rank] for output in outputs)
                raise UsageError(
                    f"{source}:{line}: record {wanted!r} has no line in {names} (a record "
                    "lost); the shards are kept: run again with --resume"
                )
            dropped += 1
            continue
        problem = check(taken) if check is not None else None
        if problem is not None:
            raise UsageError(f"{source}:{line}: record {wanted!r}: {problem}; the shards are kept")
        written += len(taken)
    for output, rank_heads in zip(outputs, heads, strict=True):
        for rank, head in enumerate(rank_heads):
            if head is not None:
                raise UsageError(
                    f"{output.names[rank]}: line of record {key(head)[0]!r} matches no record "
                    f"of {source} in order (a duplicate, or a line of another input); the "
                    "shards are kept"
                )
    return written, dropped


@dataclass(frozen=True)
class Target:
    """A file a sharded command writes: ``path`` (None: standard output), the ``suffix`` of its
    shards' names, and the option that names it (for messages)."""

    path: Path | None
    suffix: str = ""
    option: str = "-o"


def run_sharded(
    world: World,
    source: str | Path,
    output: Path | None,
    work: Callable[[Path, bool], R],
    *,
    command: str,
    resume: bool = False,
    may_drop: bool = False,
    max_bytes: int | None = None,
    merged: Callable[[dict[str, Any]], None] | None = None,
) -> R:
    """One rank of a sharded run: ``work(shard, resume_shard)`` writes this rank's share of
    ``source`` (dealt by :meth:`World.take`) to its shard file, appending; then rank 0 merges
    the shards into ``output`` (None: standard output) in input order, each line also handed
    to ``merged``. Rank 0 locks ``output`` first, as one process does, and clears stale shards
    (``resume``: checks them). Returns what ``work`` returned on this rank."""
    from omnirm.records import iter_records

    return run_sharded_outputs(
        world,
        source,
        [Target(output)],
        lambda shards, resume_shard: work(shards[0], resume_shard),
        items=lambda: iter_records(source, max_bytes=max_bytes),
        command=command,
        resume=resume,
        may_drop=may_drop,
        merged=merged,
    )


def run_sharded_outputs(
    world: World,
    source: str | Path,
    targets: list[Target],
    work: Callable[[list[Path], bool], R],
    *,
    items: Callable[[], Iterable[Item]],
    command: str,
    resume: bool = False,
    may_drop: bool = False,
    several: bool = False,
    key: LineKey = scored_line_key,
    check: Callable[[list[dict[str, Any]]], str | None] | None = None,
    merged: Callable[[dict[str, Any]], None] | None = None,
    gathered: Callable[[list[R]], None] | None = None,
) -> R:
    """:func:`run_sharded` for a command that writes several files (``targets``, the first the
    main output): ``work(shards, resume_shard)`` writes this rank's share to one shard per
    target; rank 0 merges each target's shards in the order of ``items()`` (the whole input
    read again, see :func:`merge_outputs`) and, with ``gathered``, is handed what ``work``
    returned on every rank, in rank order."""
    from omnirm import console
    from omnirm.jsonl import JsonlWriter, display_name

    refuse_stdin(source, world, command)
    main = targets[0].path
    with ProcessGroup(world) as group:
        folder = shard_folder(main, group)
        finals: list[JsonlWriter] = []
        try:
            if world.main:  # locked (and checked against the input) before any work
                for target in targets:
                    finals.append(JsonlWriter(target.path, inputs=[source], option=target.option))
                prepare_shards(
                    folder, world, output=main, resume=resume,
                    suffixes=[target.suffix for target in targets],
                )  # fmt: skip
            group.barrier()
            shards = [folder / world.shard_name(suffix=target.suffix) for target in targets]
            result = work(shards, resume and any(shard.exists() for shard in shards))
            group.barrier()  # every shard complete
            results = group.gather(result) if gathered is not None else None
            if world.main:
                outputs = []
                for index, (target, final) in enumerate(zip(targets, finals, strict=True)):
                    paths = [
                        folder / world.shard_name(rank, target.suffix) for rank in range(world.size)
                    ]
                    sink: Sink = final if merged is None or index else _Tee(final, merged)
                    outputs.append(
                        ShardedOutput(
                            [_shard_lines(p) for p in paths], sink, [str(p) for p in paths]
                        )
                    )
                written, dropped = merge_outputs(
                    items(), outputs, source=display_name(source), may_drop=may_drop,
                    several=several, key=key, check=check,
                )  # fmt: skip
                shutil.rmtree(folder, ignore_errors=True)
                skipped = f", {dropped} records skipped" if dropped else ""
                console.info(
                    f"{written} lines of {world.size} shards merged in input order{skipped}"
                )
                if gathered is not None and results is not None:
                    gathered(results)
        except BaseException as error:
            for final in finals:
                final.__exit__(type(error), error, None)
            raise
        for final in finals:
            final.close()
    return result


class _Tee:
    def __init__(self, sink: Sink, also: Callable[[dict[str, Any]], None]) -> None:
        self.sink = sink
        self.also = also

    def write(self, obj: Any) -> None:
        self.sink.write(obj)
        self.also(obj)


def refuse_stdin(source: str | Path, world: World, command: str) -> None:
    from omnirm.jsonl import STDIN

    if str(source) == STDIN:
        raise UsageError(
            f"{command} under {world.size} processes reads a FILE, not standard input (each "
            "process reads its share of the file; standard input reaches one process only)"
        )


__all__ = [
    "ProcessGroup",
    "Target",
    "World",
    "merge",
    "merge_outputs",
    "prepare_shards",
    "refuse_stdin",
    "run_sharded",
    "run_sharded_outputs",
    "shard_folder",
]
