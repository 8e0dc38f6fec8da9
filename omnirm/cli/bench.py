"""``omnirm bench``: accuracy of a reward model or judge on a benchmark, with intervals."""

from __future__ import annotations

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
from omnirm.on_error import OnError
from omnirm.options import ModelOptions

_REPORT = "Report"


def bench(
    source: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(
            help="Records with gold labels (scored already, or scored here with --model/--judge); "
            "- for standard input. With --suite: that suite's records (e.g. scored already), "
            "in place of --data.",
            metavar="[FILE|-]",
        ),
    ] = None,
    suite: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="omni-rewardbench, vl-rewardbench, multimodal-rewardbench, rewardbench, "
            "rewardbench2 or jsonl: read from --data, or from FILE (records of that suite, "
            "scored or not) to apply its official rule.",
        ),
    ] = None,
    data: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="The suite's folder, laid out as published (see docs/bench-suites.md)."),
    ] = None,
    tasks: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Only these tasks, comma-separated (e.g. T2T,TI2T,T2I)."),
    ] = None,
    model: RewardModelOpt = None,
    revision: RevisionOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    max_length: ScoreMaxLengthOpt = None,
    criteria: CriteriaOpt = MODEL.criteria,
    calibrate: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Scored records (not the test records) to choose a scalar model's tie threshold "
            "on \\[default: 5-fold cross-validation on the test records].",
            dir_okay=False,
        ),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples for the 95% intervals.")
    ] = 1000,
    bootstrap_seed: Annotated[int, typer.Option(help="Seed of the bootstrap and the folds.")] = 0,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="Write the report as one JSON line on standard output."),
    ] = False,
    markdown: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Write the report as a Markdown table here.",
            dir_okay=False,
            rich_help_panel=_REPORT,
        ),
    ] = None,
    plot: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Draw per-task accuracy (PNG) here.", dir_okay=False, rich_help_panel=_REPORT
        ),
    ] = None,
    reference: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            help="Published rows to show beside yours (repeatable), e.g. GPT-4o, "
            "Omni-RewardModel-BT.",
            rich_help_panel=_REPORT,
        ),
    ] = None,
    scores: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Keep the scored records here (reused by the next run with the same scorer) "
            "\\[default: under ~/.cache/omnirm/bench/].",
            dir_okay=False,
        ),
    ] = None,
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
    batch_size: BatchSizeOpt = MODEL.batch_size,
    device: DeviceOpt = MODEL.device,
    dtype: DtypeOpt = Dtype(MODEL.dtype),
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
    """Benchmark a reward model ([bold]--model[/bold]), a generative judge
    ([bold]--judge[/bold]), or records already scored (FILE or - with rewards/predicted).
    Records without scores and no scorer given are scored by the embedded default reward model.

    Per task: accuracy without ties and with ties, with bootstrap 95% intervals. For scalar
    models the with-ties accuracy uses the paper's oracle threshold, chosen on the test records
    themselves (marked as such), and beside it a threshold calibrated on separate records
    ([bold]--calibrate[/bold], else cross-validation). Judges add order consistency and the
    share of answers without a verdict; every report adds the length bias. Overall = the mean
    over the tasks run (their count is shown), plus per-modality means. The protocol is printed
    with every report. Scores are cached per record and scorer: an interrupted run continues
    where it stopped.
    """
    from omnirm.bench.report import official_summary, plot_result, print_report, to_markdown
    from omnirm.bench.run import run_bench
    from omnirm.jsonl import JsonlWriter

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
    with JsonlWriter(None) as errors:  # --on-error record writes bad records to stdout
        run = run_bench(
            source,
            suite=suite,
            data=data,
            tasks=tasks,
            model=model,
            judge=judged,
            options=options,
            media=media,
            calibrate=calibrate,
            bootstrap=bootstrap,
            bootstrap_seed=bootstrap_seed,
            scores=scores,
            on_error=on_error,
            errors=None if json_out else errors,
            max_record_bytes=max_record_bytes,
        )
    if not run.shown:  # a rank other than 0 of a data-parallel run: rank 0 reports
        return run.policy.exit_code()
    print_report(run, title=run.title, protocol=run.protocol)
    if run.official is not None:
        console.info(official_summary(run.official))
    if markdown is not None:
        markdown.write_text(
            to_markdown(run, title=run.title, protocol=run.protocol, references=reference)
        )
    if plot is not None:
        plot_result(run, plot, references=reference, title=run.title)
    if json_out:
        from omnirm.jsonl import dumps

        typer.echo(dumps(run.to_dict()))
    return run.policy.exit_code()
