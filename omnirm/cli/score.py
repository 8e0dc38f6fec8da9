"""``omnirm score``: add rewards (a reward model) or verdicts (a generative judge) to records."""

from __future__ import annotations

from typing import Annotated

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
    RewardModelOpt,
    ScoreMaxLengthOpt,
    TrustRemoteCodeOpt,
    given_options,
    media_options,
)
from omnirm.cli.judge_options import (
    JUDGE,
    AnswerFormatOpt,
    ApiKeyEnvOpt,
    BaseUrlOpt,
    CacheOpt,
    ConcurrencyOpt,
    GpuMemoryUtilizationOpt,
    JudgeAnswerFormat,
    JudgeMode,
    JudgeOpt,
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
from omnirm.errors import UsageError
from omnirm.on_error import OnError
from omnirm.options import RAY_DEFAULTS as RAY
from omnirm.options import ModelOptions, RayOptions


def score(
    ctx: typer.Context,
    source: InputArg = "-",
    model: RewardModelOpt = None,
    revision: RevisionOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    max_length: ScoreMaxLengthOpt = None,
    judge: JudgeOpt = None,
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
    criteria: CriteriaOpt = MODEL.criteria,
    output: OutputOpt = None,
    batch_size: BatchSizeOpt = MODEL.batch_size,
    tie_margin: Annotated[
        float, typer.Option(help="Predict 'tie' when |margin| is at most this.")
    ] = MODEL.tie_margin,
    normalize: Annotated[
        bool, typer.Option(help="Standardise rewards with the mean/std stored in the model.")
    ] = MODEL.normalize,
    device: DeviceOpt = MODEL.device,
    dtype: DtypeOpt = Dtype(MODEL.dtype),
    resume: Annotated[
        bool,
        typer.Option(
            help="With -o: skip the records already in the output file and append the rest; "
            "an output scored by another scorer, other settings or from another input is "
            "refused."
        ),
    ] = False,
    share_prefix: Annotated[
        bool,
        typer.Option(
            help="Run each record's criterion and prompt (with its media) once and every "
            "response after it on the cached keys and values; --no-share-prefix runs each "
            "(prompt, response) sequence whole."
        ),
    ] = MODEL.share_prefix,
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
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Score on a Ray cluster: a pool of Ray Data actors, each loading the model or "
            "judge once (pip install 'omnirm[ray]'). FILE is JSONL or Parquet; -o NAME.parquet "
            "writes Parquet (columns id, record). No --resume.",
            rich_help_panel="Scaling out",
        ),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="With --ray: the cluster to join (ray://HOST:10001, auto); default: a local "
            "one started for the run.",
            rich_help_panel="Scaling out",
        ),
    ] = RAY.address,
    ray_concurrency: Annotated[
        int,
        typer.Option(
            help="With --ray: how many scoring actors.", min=1, rich_help_panel="Scaling out"
        ),
    ] = RAY.concurrency,
    ray_num_gpus: Annotated[
        float,
        typer.Option(
            help="With --ray: GPUs per actor (0: CPU; 0.5 shares a GPU between two).",
            min=0.0,
            rich_help_panel="Scaling out",
        ),
    ] = RAY.num_gpus,
) -> int:
    """Score records with a reward model ([bold]--model[/bold]) or a generative judge
    ([bold]--judge[/bold]); with neither, the embedded default reward model scores them
    (SmolLM2-135M-Instruct, a few MB of adapter: for smoke tests, demos and baselines).

    A reward model adds [bold]rewards[/bold] (one per response), for pairs [bold]predicted[/bold]
    (0, 1 or "tie") and [bold]margin[/bold] (reward 0 − reward 1), and [bold]scored_by[/bold].
    Rewards do not depend on the batch size or on record order. Over-long sequences have their
    prompt text truncated from the left (never media, never a response); the count goes to
    stderr.

    A judge reads the criterion, the prompt and the responses, reasons and gives a verdict:
    [bold]predicted[/bold], [bold]rationale[/bold], per-order [bold]judgements[/bold],
    [bold]consistent[/bold] and [bold]usage[/bold] (tokens, seconds). Each pair is judged in both
    orders and the verdicts combined (contradicting orders give a tie). Answers are cached, so a
    rerun or [bold]--resume[/bold] asks nothing twice.

    Media paths resolve against [bold]--media-root[/bold] (default: the input's folder).

    Data-parallel: under [bold]torchrun[/bold] or [bold]accelerate launch[/bold] each process
    scores its share of FILE and the first merges them into one output in input order
    ([bold]--resume[/bold] continues each share); [bold]--ray[/bold] scores on a Ray cluster.
    """
    from omnirm.api import score_file

    _check_ray_options(ray, given_options(ctx))
    console.quiet_libraries()
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
        tie_margin=tie_margin,
        normalize=normalize,
        share_prefix=share_prefix,
    )
    judged = None
    if judge is not None:
        judged = judge_options(
            judge=judge,
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
    run = score_file(
        source,
        model=model,
        judge=judged,
        options=options,
        media=media,
        output=output,
        resume=resume,
        on_error=on_error,
        max_record_bytes=max_record_bytes,
        ray=RayOptions(address=ray_address, concurrency=ray_concurrency, num_gpus=ray_num_gpus)
        if ray
        else None,
    )
    return run.policy.exit_code()


_RAY_ONLY = ("ray_address", "ray_concurrency", "ray_num_gpus")


def _check_ray_options(ray: bool, given: set[str]) -> None:
    """``--ray-*`` options go with ``--ray``: without it they would do nothing."""
    stray = [name for name in _RAY_ONLY if name in given]
    if stray and not ray:
        flags = ", ".join("--" + name.replace("_", "-") for name in stray)
        raise UsageError(f"{flags}: only with --ray (scoring on a Ray cluster)")
