"""``omnirm bon``: best-of-N selection, ranking, ensembles and preference-pair export."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from omnirm import console
from omnirm.cli.common import (
    MAX_RECORD_BYTES,
    MEDIA_LIMITS,
    MODEL,
    AllowOutsideRootOpt,
    AllowUrlsOpt,
    BatchSizeOpt,
    CriteriaOpt,
    DeviceOpt,
    Dtype,
    DtypeOpt,
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
    media_options,
)
from omnirm.cli.judge_options import (
    JUDGE,
    PANEL,
    AnswerFormatOpt,
    ApiKeyEnvOpt,
    BaseUrlOpt,
    CacheOpt,
    ConcurrencyOpt,
    GpuMemoryUtilizationOpt,
    JudgeAnswerFormat,
    JudgeMode,
    JudgeOrders,
    JudgeVerdict,
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
    VerdictOpt,
    judge_options,
)
from omnirm.on_error import OnError
from omnirm.options import ModelOptions


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
    criteria: CriteriaOpt = MODEL.criteria,
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
    verdict: VerdictOpt = JudgeVerdict.TEXT,
    answer_format: AnswerFormatOpt = JudgeAnswerFormat.MARKS,
    ties: TiesOpt = False,
    retries: RetriesOpt = JUDGE.retries,
    prompt_template: PromptTemplateOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = JUDGE.api_key_env,
    concurrency: ConcurrencyOpt = JUDGE.concurrency,
    timeout: TimeoutOpt = JUDGE.timeout,
    tensor_parallel_size: TensorParallelSizeOpt = JUDGE.tensor_parallel_size,
    gpu_memory_utilization: GpuMemoryUtilizationOpt = JUDGE.gpu_memory_utilization,
    temperature: TemperatureOpt = JUDGE.sampling.temperature,
    seed: SeedOpt = JUDGE.sampling.seed,
    max_new_tokens: MaxNewTokensOpt = JUDGE.sampling.max_new_tokens,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    batch_size: BatchSizeOpt = MODEL.batch_size,
    device: DeviceOpt = MODEL.device,
    dtype: DtypeOpt = Dtype(MODEL.dtype),
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
    from omnirm.bon import BonSettings, best_of_n

    console.quiet_libraries()
    settings = BonSettings(
        select=select.value,
        top_k=top_k,
        combine=combine.value,
        tournament=tournament.value,
    )
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
    options = ModelOptions(
        device=device,
        dtype=dtype.value,
        revision=revision,
        trust_remote_code=trust_remote_code,
        max_length=max_length,
        batch_size=batch_size,
        criteria=criteria,
    )
    judged = judge_options(  # every --judge SPEC runs with these settings
        judge=(judge or ["-"])[0],
        revision=revision,
        mode=mode,
        orders=orders,
        verdict=verdict,
        answer_format=answer_format,
        ties=ties,
        retries=retries,
        prompt_template=prompt_template,
        criteria=criteria,
        base_url=base_url,
        api_key_env=api_key_env,
        concurrency=concurrency,
        timeout=timeout,
        batch_size=batch_size,
        device=device,
        tensor_parallel_size=tensor_parallel_size,
        gpu_memory_utilization=gpu_memory_utilization,
        temperature=temperature,
        seed=seed,
        max_new_tokens=max_new_tokens,
        cache=cache,
        no_cache=no_cache,
        trust_remote_code=trust_remote_code,
    )
    run = best_of_n(
        source,
        models=model or [],
        judges=judge or [],
        judge_options=judged,
        options=options,
        media=media,
        settings=settings,
        group_by=group_by,
        output=output,
        resume=resume,
        pairs=pairs,
        pairs_format=pairs_format.value,
        pair_mode=pair_mode.value,
        pair_margin=pair_margin,
        on_error=on_error,
        max_record_bytes=max_record_bytes,
    )
    return run.policy.exit_code()
