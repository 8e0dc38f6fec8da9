"""``omnirm bon``: best-of-N selection, ranking, ensembles and preference-pair export."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

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
    RevisionOpt,
    ScoreMaxLengthOpt,
    TrustRemoteCodeOpt,
    default_media_root,
    media_resolver,
    record_bytes,
)
from omnirm.cli.judge_options import (
    PANEL,
    ApiKeyEnvOpt,
    BaseUrlOpt,
    CacheOpt,
    ConcurrencyOpt,
    GpuMemoryUtilizationOpt,
    JudgeMode,
    JudgeOrders,
    MaxNewTokensOpt,
    ModeOpt,
    NoCacheOpt,
    OrdersOpt,
    PromptTemplateOpt,
    RetriesOpt,
    SeedOpt,
    TemperatureOpt,
    TensorParallelSizeOpt,
    TiesOpt,
    TimeoutOpt,
    judge_options,
)
from omnirm.errors import UsageError
from omnirm.on_error import OnError


class Select(str, Enum):
    BEST = "best"
    WORST = "worst"
    ALL = "all"


class Combine(str, Enum):
    ZSCORE = "zscore"
    RANK = "rank"


class Tournament(str, Enum):
    AUTO = "auto"
    KNOCKOUT = "knockout"
    ROUND_ROBIN = "round-robin"


class PairMode(str, Enum):
    BEST_WORST = "best-worst"
    MARGIN = "margin"


class PairFormat(str, Enum):
    OMNIRM = "omnirm"
    TRL = "trl"
    LLAMAFACTORY = "llamafactory"


_PAIRS = "Pair export"


def bon(
    source: InputArg = "-",
    model: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--model",
            "-m",
            help="A reward model: a folder or a hub id ORG/NAME (repeat for an ensemble) "
            "\\[default: the embedded omnirm-default model, unless --judge is given].",
            metavar="DIR|ORG/NAME",
        ),
    ] = None,
    revision: RevisionOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    max_length: ScoreMaxLengthOpt = None,
    judge: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            help="A judge: hf:PATH, openai:MODEL or vllm:PATH (repeat for an ensemble). "
            "Pointwise: a score per candidate; pairwise: a tournament.",
            metavar="SPEC",
            rich_help_panel=PANEL,
        ),
    ] = None,
    select: Annotated[
        Select, typer.Option(help="Keep only the best or the worst response, or all.")
    ] = Select.ALL,
    top_k: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(help="Keep the K best responses, best first."),
    ] = None,
    group_by: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="Gather candidates from records sharing this field (e.g. prompt_id); a record "
            "may hold one response (the usual sampling layout)."
        ),
    ] = None,
    criteria: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Criterion for every record, overriding the records' own."),
    ] = None,
    combine: Annotated[
        Combine, typer.Option(help="Ensembles: mean of per-record z-scores, or of ranks (Borda).")
    ] = Combine.ZSCORE,
    tournament: Annotated[
        Tournament,
        typer.Option(
            help="Pairwise judges: round-robin (N(N-1) requests), knockout (2(N-1)), or auto "
            "(round-robin up to 6 candidates).",
            rich_help_panel=PANEL,
        ),
    ] = Tournament.AUTO,
    pairs: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Also write preference pairs here.", dir_okay=False, rich_help_panel=_PAIRS
        ),
    ] = None,
    pair_mode: Annotated[
        PairMode,
        typer.Option(
            help="best-worst: one pair per record; margin: every pair at least --pair-margin apart.",
            rich_help_panel=_PAIRS,
        ),
    ] = PairMode.BEST_WORST,
    pair_margin: Annotated[
        float, typer.Option(help="Smallest reward gap for a pair.", rich_help_panel=_PAIRS)
    ] = 0.0,
    pairs_format: Annotated[
        PairFormat,
        typer.Option(
            help="omnirm records, TRL DPO rows (prompt/chosen/rejected; prompt images as TRL's "
            "'images' list of absolute paths) or LLaMA-Factory ranking rows.",
            rich_help_panel=_PAIRS,
        ),
    ] = PairFormat.OMNIRM,
    output: OutputOpt = None,
    mode: ModeOpt = JudgeMode.PAIRWISE,
    orders: OrdersOpt = JudgeOrders.BOTH,
    ties: TiesOpt = False,
    retries: RetriesOpt = 3,
    prompt_template: PromptTemplateOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = "OPENAI_API_KEY",
    concurrency: ConcurrencyOpt = 4,
    timeout: TimeoutOpt = 120.0,
    tensor_parallel_size: TensorParallelSizeOpt = 1,
    gpu_memory_utilization: GpuMemoryUtilizationOpt = 0.9,
    temperature: TemperatureOpt = 0.0,
    seed: SeedOpt = 0,
    max_new_tokens: MaxNewTokensOpt = 1024,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    batch_size: Annotated[
        int, typer.Option(help="Sequences per forward pass (hf: judge requests per batch).")
    ] = 8,
    device: Annotated[
        str, typer.Option(help="cpu, cuda, cuda:1 … [default: cuda if available]")
    ] = "auto",
    resume: Annotated[
        bool,
        typer.Option(
            help="With -o: skip the records already in the output file and append the rest; "
            "an output scored by other scorers, other settings or from another input is "
            "refused. --pairs is written anew, for all records."
        ),
    ] = False,
    on_error: OnErrorOpt = OnError.FAIL,
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
    """Best-of-N: score every candidate response, rank them and pick.

    Adds [bold]rewards[/bold], [bold]best[/bold] (index), [bold]ranking[/bold] (best first),
    [bold]scores[/bold] (per scorer) and [bold]agreement[/bold]. Scorers: reward models (the
    prompt and its media encoded once for all candidates), judges in pointwise mode (N requests)
    or pairwise mode through a tournament with both orders (round-robin N(N-1) requests,
    knockout 2(N-1)). Several scorers form an ensemble (per-record z-scores or ranks averaged).
    [bold]--pairs[/bold] exports preference pairs; candidates with [bold]gold_scores[/bold] get
    a selection-quality report on stderr. Records are written as they are scored;
    [bold]--resume[/bold] continues an interrupted run.
    """
    from omnirm.bon import (
        BestOfN,
        BonSettings,
        PairWriter,
        Quality,
        bon_fingerprint,
        bon_provenance,
        group_candidates,
    )
    from omnirm.jsonl import STDIN, JsonlWriter, display_name
    from omnirm.records import iter_records
    from omnirm.resume import ResumableOutput
    from omnirm.runners import JudgeRunner, ModelRunner, Runner, fingerprint_digest

    console.quiet_libraries()
    if top_k is not None and top_k < 1:
        raise UsageError("--top-k must be at least 1")
    if top_k is not None and select is not Select.ALL:
        raise UsageError("give --select or --top-k, not both")
    if pair_margin < 0:
        raise UsageError("--pair-margin must be at least 0")
    if resume and output is None:
        raise UsageError("--resume needs -o FILE (the output to continue)")
    settings = BonSettings(
        select=select.value,
        top_k=top_k,
        combine=combine.value,
        tournament=tournament.value,
    )
    resolver = media_resolver(locals(), default_media_root(source, media_root))
    name = display_name(source)
    specs: list[tuple[str, str | None]] = [("model", m) for m in model or []]
    specs += [("judge", j) for j in judge or []]
    if not specs:  # the embedded default reward model
        specs = [("model", None)]
    template = judge_options({**locals(), "judge": (judge or ["-"])[0]})
    quality = Quality()
    with contextlib.ExitStack() as stack:
        # Outputs are locked (and checked against the input) before any model loads.
        writer = stack.enter_context(
            JsonlWriter(output, append=resume, inputs=[source], flush_seconds=0)
        )
        pair_writer = None
        if pairs is not None:
            pair_file = stack.enter_context(
                JsonlWriter(pairs, inputs=[source, output], option="--pairs")
            )
            pair_writer = PairWriter(
                pair_file,
                pairs_format.value,
                mode=pair_mode.value,
                margin=pair_margin,
                media_root=resolver.root,
            )
        scorers: list[tuple[str, Runner]] = []
        for kind, spec in specs:
            if kind == "model":
                model_runner = ModelRunner(
                    spec, resolver, name, device=device, batch_size=batch_size,
                    criteria=criteria, revision=revision,
                    trust_remote_code=trust_remote_code, max_length=max_length,
                )  # fmt: skip
                scorers.append((f"model:{model_runner.name}", model_runner))
            else:
                assert spec is not None
                runner = JudgeRunner(replace(template, spec=spec), resolver, name)
                scorers.append((f"judge:{spec}", runner))
            stack.callback(scorers[-1][1].close)
        provenance = bon_provenance(scorers, settings, group_by)
        out = ResumableOutput(
            writer,
            fingerprint_digest(bon_fingerprint(scorers, settings, group_by)),
            path=writer.file.path if resume and writer.file else None,
            source=name,
            provenance=provenance,
        )
        run = BestOfN(scorers, settings, out, on_error, provenance)
        max_bytes = record_bytes(max_record_bytes)
        if group_by is not None:  # one candidate a record is the usual layout: group first
            items: Any = iter_records(source, max_bytes=max_bytes, min_responses=1)
            items = group_candidates(items, group_by, run.policy)
        else:
            items = iter_records(source, max_bytes=max_bytes)
        if resume and (group_by is not None or source != STDIN):
            out.check_input(
                items if group_by is not None else iter_records(source, max_bytes=max_bytes)
            )
        for record, line in run.run(items):
            if record.gold_scores is not None:
                quality.add(record.gold_scores, line["best"])
            if pair_writer is not None:
                pair_writer.add(record, line["rewards"])
        if resume and source == STDIN and group_by is None:
            out.check_all_matched()
    for label, scorer in scorers:
        for text in scorer.summary():
            console.info(f"{label}: {text}")
    if out.skipped:
        console.info(f"resumed: {out.skipped} records were already in {output}")
    if pair_writer is not None:
        for problem in pair_writer.problems:
            console.warn(f"pair {problem}")
        console.info(
            f"{pair_writer.count} preference pairs written to {pairs} ({pairs_format.value})"
        )
    if quality.records:
        console.info(quality.summary())
    return run.policy.exit_code()
