"""``omnirm data``: validate, inspect, convert and split preference data."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from omnirm import console
from omnirm.cli.common import (
    MAX_RECORD_BYTES,
    MEDIA_LIMITS,
    AllowOutsideRootOpt,
    AllowUrlsOpt,
    InputArg,
    MaxAudioBytesOpt,
    MaxAudioSecondsOpt,
    MaxFileBytesOpt,
    MaxFramePixelsOpt,
    MaxImagePixelsOpt,
    MaxMeshFacesOpt,
    MaxMeshRenderWorkOpt,
    MaxMeshSecondsOpt,
    MaxRecordBytesOpt,
    MaxVideoFramesOpt,
    MaxVideoSecondsOpt,
    MediaRootOpt,
    OnErrorOpt,
    OutputOpt,
    media_options,
    record_bytes,
)
from omnirm.cli.data_convert import convert
from omnirm.errors import UsageError
from omnirm.on_error import OnError

if TYPE_CHECKING:
    from omnirm.records import Record

app = typer.Typer(
    help="Validate, inspect, convert and split preference data.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@app.command()
def validate(
    source: InputArg = "-",
    on_error: OnErrorOpt = OnError.SKIP,
    output: OutputOpt = None,
    check_media: Annotated[
        bool,
        typer.Option(
            "--check-media",
            help="Also open every media file (header level) and check it against the limits.",
        ),
    ] = False,
    media_root: MediaRootOpt = None,
    allow_outside_root: AllowOutsideRootOpt = False,
    allow_urls: AllowUrlsOpt = False,
    max_file_bytes: MaxFileBytesOpt = MEDIA_LIMITS.max_file_bytes,
    max_image_pixels: MaxImagePixelsOpt = MEDIA_LIMITS.max_image_pixels,
    max_video_seconds: MaxVideoSecondsOpt = MEDIA_LIMITS.max_video_seconds,
    max_video_frames: MaxVideoFramesOpt = MEDIA_LIMITS.max_video_frames,
    max_frame_pixels: MaxFramePixelsOpt = MEDIA_LIMITS.max_frame_pixels,
    max_audio_seconds: MaxAudioSecondsOpt = MEDIA_LIMITS.max_audio_seconds,
    max_audio_bytes: MaxAudioBytesOpt = MEDIA_LIMITS.max_audio_bytes,
    max_mesh_faces: MaxMeshFacesOpt = MEDIA_LIMITS.max_mesh_faces,
    max_mesh_render_work: MaxMeshRenderWorkOpt = MEDIA_LIMITS.max_mesh_render_work,
    max_mesh_seconds: MaxMeshSecondsOpt = MEDIA_LIMITS.max_mesh_seconds,
    max_record_bytes: MaxRecordBytesOpt = MAX_RECORD_BYTES,
) -> int:
    """Check records: schema, unique ids, labels consistent with the responses, and with
    [bold]--check-media[/bold] that every media file exists, opens, and is within the limits.

    Prints a summary on stderr and exits 1 when anything is wrong. With [bold]--on-error
    record[/bold] each bad record is written to stdout (or -o) with an 'error' key.
    """
    from omnirm.data.validate import MediaCheck, validate_records
    from omnirm.jsonl import JsonlWriter
    from omnirm.on_error import ErrorPolicy

    media = media_options(
        media_root=media_root,
        allow_outside_root=allow_outside_root,
        allow_urls=allow_urls,
        max_file_bytes=max_file_bytes,
        max_image_pixels=max_image_pixels,
        max_video_seconds=max_video_seconds,
        max_video_frames=max_video_frames,
        max_frame_pixels=max_frame_pixels,
        max_audio_seconds=max_audio_seconds,
        max_audio_bytes=max_audio_bytes,
        max_mesh_faces=max_mesh_faces,
        max_mesh_render_work=max_mesh_render_work,
        max_mesh_seconds=max_mesh_seconds,
    )
    max_bytes = record_bytes(max_record_bytes)
    with contextlib.ExitStack() as stack:
        media_check: MediaCheck | None = None
        if check_media:
            from omnirm.media import check_record_media

            resolver = stack.enter_context(media.resolver(source))

            def media_check(record: Record) -> int:
                return check_record_media(record, resolver)

        writer = stack.enter_context(JsonlWriter(output, inputs=[source]))
        policy = ErrorPolicy(on_error, writer, list_skipped=True)  # the problems are the report
        report = validate_records(source, policy, media_check=media_check, max_bytes=max_bytes)
    console.info(report.summary())
    return 0 if report.ok else 1


@app.command()
def stats(
    source: InputArg = "-",
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the statistics as one JSON object on stdout.")
    ] = False,
    on_error: OnErrorOpt = OnError.SKIP,
    max_record_bytes: MaxRecordBytesOpt = MAX_RECORD_BYTES,
) -> int:
    """Counts per task, modality, number of responses and label (ties too), criteria present, and
    length distributions of prompts, responses and criteria.

    A table goes to stderr; with [bold]--json[/bold] the same figures go to stdout instead.
    """
    from omnirm.data.stats import DataStats, render_stats
    from omnirm.jsonl import JsonlWriter, display_name
    from omnirm.on_error import ErrorPolicy
    from omnirm.records import InvalidRecord, iter_records

    if on_error is OnError.RECORD:
        raise UsageError("--on-error record makes no sense for stats: use skip or fail")
    policy = ErrorPolicy(on_error)
    collected = DataStats()
    records = iter_records(source, max_bytes=record_bytes(max_record_bytes))
    for _, item in console.progress(records, "reading"):
        if isinstance(item, InvalidRecord):
            collected.invalid += 1
            policy.handle(item)
        else:
            collected.add(item)
    report = collected.to_dict()
    if json_output:
        with JsonlWriter() as writer:
            writer.write(report)
    elif console.verbosity() >= 0:
        console.stderr_console().print(render_stats(report, display_name(source)))
    return policy.exit_code()


@app.command()
def split(
    source: InputArg = "-",
    ratios: Annotated[
        str, typer.Option(help="Shares of the splits, comma-separated (normalised to sum to 1).")
    ] = "0.8,0.1,0.1",
    names: Annotated[
        str | None,
        typer.Option(help="Split names, comma-separated \\[default: train,validation,test]."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the prompt hash.")] = 0,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir", "-d", help="Write one NAME.jsonl per split here.", file_okay=False
        ),
    ] = None,
    only: Annotated[
        str | None,
        typer.Option("--split", help="Write only this split, to stdout (or -o)."),
    ] = None,
    output: OutputOpt = None,
    force: Annotated[bool, typer.Option(help="Overwrite split files that exist.")] = False,
    on_error: OnErrorOpt = OnError.FAIL,
    max_record_bytes: MaxRecordBytesOpt = MAX_RECORD_BYTES,
) -> int:
    """Deterministic train/validation/test split keyed on a hash of the prompt.

    Records that share a prompt always land in the same split (so the same pair under several
    criteria never leaks across splits), whatever the file order. Either write every split to
    [bold]--output-dir[/bold], or one split ([bold]--split NAME[/bold]) to stdout for a pipe.
    """
    from omnirm.data.split import SplitSpec, assign_split, check_names, prompt_key
    from omnirm.jsonl import JsonlWriter
    from omnirm.on_error import ErrorPolicy
    from omnirm.records import InvalidRecord, iter_records

    spec = SplitSpec.parse(ratios, names, seed)
    if (output_dir is None) == (only is None):
        raise UsageError("give either --output-dir DIR (all splits) or --split NAME (one split)")
    if output_dir is not None and output is not None:
        raise UsageError("-o goes with --split; --output-dir writes one file per split")
    counts = {name: 0 for name in spec.names}
    prompts: dict[str, set[str]] = {name: set() for name in spec.names}
    with contextlib.ExitStack() as stack:
        # Each split goes through its own temporary file; all are renamed into place at the end.
        if only is not None:
            check_names([only], spec)
            writers = {only: stack.enter_context(JsonlWriter(output, inputs=[source]))}
        else:
            assert output_dir is not None
            output_dir.mkdir(parents=True, exist_ok=True)
            targets = {name: output_dir / f"{name}.jsonl" for name in spec.names}
            existing = [str(p) for p in targets.values() if p.exists()]
            if existing and not force:
                raise UsageError(f"{existing[0]} exists; pass --force to overwrite")
            writers = {
                name: stack.enter_context(JsonlWriter(path, inputs=[source], option="--output-dir"))
                for name, path in targets.items()
            }
        policy = ErrorPolicy(on_error, next(iter(writers.values())) if only else None)
        records = iter_records(source, max_bytes=record_bytes(max_record_bytes))
        for _, item in console.progress(records, "splitting"):
            if isinstance(item, InvalidRecord):
                policy.handle(item)
                continue
            key = prompt_key(item)
            name = assign_split(key, spec)
            counts[name] += 1
            prompts[name].add(key)
            if name in writers:
                writers[name].write(item.to_dict())
    summary = ", ".join(
        f"{name}: {counts[name]} records / {len(prompts[name])} prompts" for name in spec.names
    )
    console.info(summary)
    return policy.exit_code()


app.command("convert")(convert)
