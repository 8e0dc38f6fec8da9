"""``omnirm serve``: a reward model or a generative judge behind HTTP, for RL trainers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from omnirm import console
from omnirm.cli.common import (
    MEDIA_LIMITS,
    MODEL,
    AllowOutsideRootOpt,
    AllowUrlsOpt,
    BatchSizeOpt,
    CriteriaOpt,
    DeviceOpt,
    Dtype,
    DtypeOpt,
    MaxAudioBytesOpt,
    MaxAudioSecondsOpt,
    MaxFileBytesOpt,
    MaxFramePixelsOpt,
    MaxImagePixelsOpt,
    MaxMeshFacesOpt,
    MaxMeshRenderWorkOpt,
    MaxMeshSecondsOpt,
    MaxVideoFramesOpt,
    MaxVideoSecondsOpt,
    RevisionOpt,
    RewardModelOpt,
    ScoreMaxLengthOpt,
    TrustRemoteCodeOpt,
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
from omnirm.options import SERVE_DEFAULTS, ModelOptions, ServeOptions

SERVER = SERVE_DEFAULTS
PANEL = "Server"

HostOpt = Annotated[
    str,
    typer.Option(help="Address to listen on (0.0.0.0: every interface).", rich_help_panel=PANEL),
]
PortOpt = Annotated[
    int, typer.Option(help="Port to listen on (0: any free port).", rich_help_panel=PANEL)
]
MaxBatchSizeOpt = Annotated[
    int,
    typer.Option(
        help="Most records (or texts) gathered from waiting requests into one scorer call.",
        rich_help_panel=PANEL,
    ),
]
MaxWaitMsOpt = Annotated[
    float,
    typer.Option(
        help="How long the first waiting record waits for others to share its scorer call.",
        rich_help_panel=PANEL,
    ),
]
MaxQueueOpt = Annotated[
    int,
    typer.Option(
        help="Most records waiting for the scorer; a request that does not fit is answered 429 "
        "with Retry-After.",
        rich_help_panel=PANEL,
    ),
]
MaxRequestBytesOpt = Annotated[
    int,
    typer.Option(help="Largest request body, in bytes (larger: 413).", rich_help_panel=PANEL),
]
AuthKeyEnvOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        help="Ask every request (but GET /health) for 'Authorization: Bearer KEY', KEY read "
        "from this environment variable \\[default: no key].",
        metavar="NAME",
        rich_help_panel=PANEL,
    ),
]
DrainSecondsOpt = Annotated[
    float,
    typer.Option(
        help="On SIGTERM, how long requests in flight may take to be answered before the "
        "server exits.",
        rich_help_panel=PANEL,
    ),
]


def serve(
    model: RewardModelOpt = None,
    revision: RevisionOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    max_length: ScoreMaxLengthOpt = None,
    host: HostOpt = SERVER.host,
    port: PortOpt = SERVER.port,
    max_batch_size: MaxBatchSizeOpt = SERVER.max_batch_size,
    max_wait_ms: MaxWaitMsOpt = SERVER.max_wait_ms,
    max_queue: MaxQueueOpt = SERVER.max_queue,
    max_request_bytes: MaxRequestBytesOpt = SERVER.max_request_bytes,
    auth_key_env: AuthKeyEnvOpt = SERVER.auth_key_env,
    drain_seconds: DrainSecondsOpt = SERVER.drain_seconds,
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
    batch_size: BatchSizeOpt = MODEL.batch_size,
    tie_margin: Annotated[
        float, typer.Option(help="Predict 'tie' when |margin| is at most this.")
    ] = MODEL.tie_margin,
    normalize: Annotated[
        bool, typer.Option(help="Standardise rewards with the mean/std stored in the model.")
    ] = MODEL.normalize,
    device: DeviceOpt = MODEL.device,
    dtype: DtypeOpt = Dtype(MODEL.dtype),
    share_prefix: Annotated[
        bool,
        typer.Option(
            help="Run each record's criterion and prompt (with its media) once and every "
            "response after it on the cached keys and values, as omnirm score does.",
        ),
    ] = MODEL.share_prefix,
    media_root: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--media-root",
            help="Folder that relative media paths in requests resolve against "
            "\\[default: the working directory].",
            metavar="DIR",
            file_okay=False,
        ),
    ] = None,
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
) -> int:
    """Serve rewards over HTTP from a reward model ([bold]--model[/bold]) or a generative judge
    ([bold]--judge[/bold]), loaded and scoring exactly as [bold]omnirm score[/bold] does, for RL
    trainers and other clients. The URL goes to stderr once requests are taken.

    [bold]POST /score[/bold]: omnirm records (a list, or {"records": [...]}) in, scored records
    out. [bold]POST /openrlhf[/bold]: OpenRLHF's remote reward protocol (--reward.remote_url).
    [bold]POST /classify[/bold]: vLLM's classification API (verl's reward model path).
    [bold]GET /health[/bold], [bold]GET /metrics[/bold] (Prometheus).

    Records from concurrent requests are scored together, up to [bold]--max-batch-size[/bold]
    per call after at most [bold]--max-wait-ms[/bold]; past [bold]--max-queue[/bold] waiting
    records a request is answered 429. SIGTERM stops taking requests, answers those in flight
    and exits 0.
    """
    from omnirm.serve.app import serve as run_server

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
    server = ServeOptions(
        host=host,
        port=port,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        max_request_bytes=max_request_bytes,
        auth_key_env=auth_key_env,
        drain_seconds=drain_seconds,
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
    return run_server(model, judged, options=options, media=media, server=server)
