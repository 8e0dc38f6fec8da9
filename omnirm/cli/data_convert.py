"""``omnirm data convert``: other preference formats → omnirm records (``--from``), and omnirm
records → training formats (``--to``). The formats live in :mod:`omnirm.formats`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from omnirm import console
from omnirm.cli.common import OnErrorOpt, OutputOpt
from omnirm.errors import RecordError, UsageError
from omnirm.formats import SOURCE_FORMATS, TARGET_FORMATS, Item, SourceName, TargetName
from omnirm.jsonl import STDIN, JsonlWriter, display_name
from omnirm.on_error import ErrorPolicy, OnError
from omnirm.records import InvalidRecord, Record, iter_records

#: Reader keyword → the option that sets it, for messages about options a format does not take.
_OPTION_FLAGS = {
    "tasks": "--tasks",
    "absolute_paths": "--absolute-paths",
    "extract_dir": "--extract-dir",
    "shuffle_seed": "--shuffle-seed",
    "flip_generation": "--flip-generation",
    "reviewer": "--reviewer",
}


def _formats_help(formats: dict[str, Any]) -> str:
    return "; ".join(f"[bold]{name}[/bold]: {fmt.description}" for name, fmt in formats.items())


def convert(
    source: Annotated[
        str,
        typer.Argument(
            help="With --from: the file or folder to convert (- for stdin with llamafactory or "
            "pairs JSONL). With --to: omnirm records (JSONL), or - for stdin.",
            metavar="SRC|-",
        ),
    ] = STDIN,
    from_format: Annotated[
        Optional[SourceName],  # noqa: UP045  (typer needs the Optional spelling on py3.10)
        typer.Option(
            "--from",
            metavar="FORMAT",
            help="Convert SRC from this format into omnirm records. "
            + _formats_help(SOURCE_FORMATS),
            case_sensitive=False,
        ),
    ] = None,
    to_format: Annotated[
        Optional[TargetName],  # noqa: UP045
        typer.Option(
            "--to",
            metavar="FORMAT",
            help="Export the omnirm records in SRC to this format. "
            + _formats_help(TARGET_FORMATS),
            case_sensitive=False,
        ),
    ] = None,
    output: OutputOpt = None,
    on_error: OnErrorOpt = OnError.FAIL,
    tasks: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--tasks",
            help="omni-rewardbench: the tasks to convert, comma-separated, by abbreviation "
            "(T2T, TI2T, TV2T, TA2T, T2I, T2V, T2A, T23D, TI2I) or config name \\[default: all].",
            metavar="T2T,TI2T,...",
        ),
    ] = None,
    absolute_paths: Annotated[
        bool,
        typer.Option(
            "--absolute-paths",
            help="omni-rewardbench: write absolute media paths instead of paths relative to the "
            "benchmark folder (readers then need --allow-outside-root).",
        ),
    ] = False,
    extract_dir: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--extract-dir",
            help="omni-rewardbench: where media that parquet files embed as bytes are written "
            "(once, named by content hash) \\[default: SRC/media_extracted].",
            metavar="DIR",
            file_okay=False,
        ),
    ] = None,
    shuffle_seed: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--shuffle-seed",
            help="llamafactory, pairs: put the rejected response first in about half of the "
            "records, chosen by a hash of (seed, id), so the label is not always 0 "
            "\\[default: no shuffling, chosen first as in the file].",
            metavar="N",
        ),
    ] = None,
    flip_generation: Annotated[
        bool,
        typer.Option(
            "--flip-generation",
            help="llamafactory: in the generation layout (both candidate media in the user "
            "turn), take the second candidate as the chosen one \\[default: the first].",
        ),
    ] = False,
    reviewer: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--reviewer",
            help="prd-vicuna80: whose ratings to read, the X in ratings-X/ \\[default: human].",
            metavar="NAME",
        ),
    ] = None,
) -> int:
    """Convert preference data into omnirm records ([bold]--from[/bold]), or export omnirm
    records for training ([bold]--to[/bold]); give exactly one of the two.

    Records go to stdout (or -o) as JSONL, in input order; a summary goes to stderr. A source row
    that cannot be converted (or a record that cannot be exported, such as a tie for
    chosen/rejected pairs) is an error naming file, line, id and field, handled by
    [bold]--on-error[/bold]; the exit code is 1 when any occurred.

    Ids: a source id is kept (made unique, e.g. text_to_text-123), else derived from the file
    name and line. Omni-RewardBench media paths are relative to the benchmark folder
    (media_data/...): pass [bold]--media-root BENCH_DIR[/bold] to the commands that read them, or
    use [bold]--absolute-paths[/bold]. Chosen/rejected sources keep chosen first (preference 0)
    unless [bold]--shuffle-seed[/bold] is given.
    """
    if (from_format is None) == (to_format is None):
        raise UsageError(
            "give exactly one of --from FORMAT (convert into omnirm records) or --to FORMAT "
            "(export omnirm records)"
        )
    options: dict[str, Any] = {
        "tasks": tasks,
        "absolute_paths": absolute_paths or None,
        "extract_dir": extract_dir,
        "shuffle_seed": shuffle_seed,
        "flip_generation": flip_generation or None,
        "reviewer": reviewer,
    }
    given = {name: value for name, value in options.items() if value is not None}
    if from_format is not None:
        items = _open_source(from_format.value, source, given)  # checks the source up front
        with JsonlWriter(output, inputs=[source]) as writer:
            policy = ErrorPolicy(on_error, writer)
            written = _write_items(items, writer, policy)
        summary = f"{written} records written ({from_format.value} → omnirm)"
    else:
        assert to_format is not None
        if given:
            flags = ", ".join(_OPTION_FLAGS[name] for name in given)
            raise UsageError(f"{flags}: only for --from (reading a source format)")
        if source != STDIN and not Path(source).is_file():
            raise UsageError(f"{source}: no such file")
        with JsonlWriter(output, inputs=[source]) as writer:
            policy = ErrorPolicy(on_error, writer)
            written = _export(to_format.value, source, writer, policy)
        summary = f"{written} rows written (omnirm → {to_format.value})"
    errors = ""
    if policy.count:
        plural = "s" if policy.count != 1 else ""
        errors = (
            f", {policy.count} skipped"
            if policy.mode is OnError.SKIP
            else f", {policy.count} error{plural}"
        )
    console.info(summary + errors)
    return policy.exit_code()


def _open_source(name: str, source: str, options: dict[str, Any]) -> Iterator[Item]:
    """The reader's stream for ``--from NAME``, after checking the options apply to it."""
    fmt = SOURCE_FORMATS[name]
    unsupported = [_OPTION_FLAGS[option] for option in options if option not in fmt.options]
    if unsupported:
        takers = sorted(
            other.name
            for other in SOURCE_FORMATS.values()
            if any(_OPTION_FLAGS[o] in unsupported for o in other.options)
        )
        raise UsageError(
            f"{', '.join(unsupported)} does not apply to --from {name}"
            + (f" (only to: {', '.join(takers)})" if takers else "")
        )
    if source == STDIN and not fmt.reads_stdin:
        raise UsageError(f"--from {name} reads a file or folder, not standard input")
    return fmt.reader(Path(source), **options)


def _write_items(items: Iterator[Item], writer: JsonlWriter, policy: ErrorPolicy) -> int:
    written = 0
    for item in console.progress(items, "converting"):
        if isinstance(item, RecordError):
            policy.handle(item, {"id": item.record_id})
        else:
            writer.write(item)
            written += 1
    return written


def _export(name: str, source: str, writer: JsonlWriter, policy: ErrorPolicy) -> int:
    export = TARGET_FORMATS[name].writer
    shown = display_name(source)
    current_line = 0

    def valid_records() -> Iterator[Record]:
        # Bad input records are handled here, in order; the writer sees only valid ones and
        # yields exactly one row or error for each, so the last line handed out locates it.
        nonlocal current_line
        for line, item in iter_records(source):
            if isinstance(item, InvalidRecord):
                policy.handle(item)
                continue
            current_line = line
            yield item

    written = 0
    for row in console.progress(export(valid_records()), "exporting"):
        if isinstance(row, RecordError):
            policy.handle(row.located(source=shown, line=current_line), {"id": row.record_id})
        else:
            writer.write(row)
            written += 1
    return written
