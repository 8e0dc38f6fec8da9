"""Converters between omnirm records and other preference-data formats.

Each source format has a reader ``read_<format>(source: Path, **options)`` that yields omnirm
record dicts (each valid under :func:`omnirm.records.parse_record`) or, for a source row that
cannot be converted, a :class:`~omnirm.errors.RecordError` naming the file, line (or row), id
and field, so the caller's ``--on-error`` policy applies and the stream goes on. Each target
format has a writer ``write_<format>(records)`` that yields one row (or one error saying why
the record cannot be exported) per record, in order.

:data:`SOURCE_FORMATS` and :data:`TARGET_FORMATS` name them for ``omnirm data convert
--from/--to``. Importing this package is light: no torch, and pyarrow only when a parquet file
is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum

from omnirm.formats._common import Item
from omnirm.formats.llamafactory import read_llamafactory, write_llamafactory
from omnirm.formats.omni_rewardbench import BENCH_TASKS, read_omni_rewardbench, select_tasks
from omnirm.formats.pairs import read_pairs, write_pairs
from omnirm.formats.prd import read_prd_lfqa, read_prd_vicuna80
from omnirm.records import Record


@dataclass(frozen=True)
class SourceFormat:
    """A format omnirm converts from: its reader, a one-line description, the keyword options
    the reader takes, and whether it can read standard input (``-``)."""

    name: str
    reader: Callable[..., Iterator[Item]]
    description: str
    options: tuple[str, ...] = ()
    reads_stdin: bool = False


@dataclass(frozen=True)
class TargetFormat:
    """A format omnirm exports to: its writer and a one-line description."""

    name: str
    writer: Callable[[Iterable[Record]], Iterator[Item]]
    description: str


class SourceName(str, Enum):
    """The names of :data:`SOURCE_FORMATS` (the choices of ``--from``)."""

    OMNI_REWARDBENCH = "omni-rewardbench"
    LLAMAFACTORY = "llamafactory"
    PAIRS = "pairs"
    PRD_LFQA = "prd-lfqa"
    PRD_VICUNA80 = "prd-vicuna80"


class TargetName(str, Enum):
    """The names of :data:`TARGET_FORMATS` (the choices of ``--to``)."""

    LLAMAFACTORY = "llamafactory"
    PAIRS = "pairs"


SOURCE_FORMATS: dict[str, SourceFormat] = {
    fmt.name: fmt
    for fmt in (
        SourceFormat(
            SourceName.OMNI_REWARDBENCH.value,
            read_omni_rewardbench,
            "a local Omni-RewardBench copy (folder of per-task parquet or JSON files), nine tasks",
            options=("tasks", "absolute_paths", "extract_dir"),
        ),
        SourceFormat(
            SourceName.LLAMAFACTORY.value,
            read_llamafactory,
            "LLaMA-Factory sharegpt ranking data (JSON array or JSONL), incl. Omni-RewardData",
            options=("shuffle_seed", "flip_generation"),
            reads_stdin=True,
        ),
        SourceFormat(
            SourceName.PAIRS.value,
            read_pairs,
            "prompt/chosen/rejected JSONL: plain, HH-RLHF transcripts, or TRL conversational",
            options=("shuffle_seed",),
            reads_stdin=True,
        ),
        SourceFormat(
            SourceName.PRD_LFQA.value,
            read_prd_lfqa,
            "PRD's LFQA expert preferences (experts_pairwise_human_preferences.jsonl)",
        ),
        SourceFormat(
            SourceName.PRD_VICUNA80.value,
            read_prd_vicuna80,
            "PRD's Vicuna80 folder: questions, answers and three-way human ratings",
            options=("reviewer",),
        ),
    )
}

TARGET_FORMATS: dict[str, TargetFormat] = {
    fmt.name: fmt
    for fmt in (
        TargetFormat(
            TargetName.LLAMAFACTORY.value,
            write_llamafactory,
            "LLaMA-Factory sharegpt ranking rows (media responses in the generation layout)",
        ),
        TargetFormat(
            TargetName.PAIRS.value,
            write_pairs,
            "TRL-style prompt/chosen/rejected rows (strings, or message lists)",
        ),
    )
}


__all__ = [
    "BENCH_TASKS",
    "SOURCE_FORMATS",
    "TARGET_FORMATS",
    "Item",
    "SourceFormat",
    "SourceName",
    "TargetFormat",
    "TargetName",
    "read_llamafactory",
    "read_omni_rewardbench",
    "read_pairs",
    "read_prd_lfqa",
    "read_prd_vicuna80",
    "select_tasks",
    "write_llamafactory",
    "write_pairs",
]
