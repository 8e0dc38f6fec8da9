"""``omnirm bench``: accuracy of a reward model or judge on a benchmark, with intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from omnirm import console
from omnirm.cli.common import (
    MAX_RECORD_BYTES,
    MEDIA_LIMITS,
    AllowOutsideRootOpt,
    AllowUrlsOpt,
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
    media_resolver,
    record_bytes,
)
from omnirm.cli.judge_options import (
    ApiKeyEnvOpt,
    BaseUrlOpt,
    CacheOpt,
    ConcurrencyOpt,
    GpuMemoryUtilizationOpt,
    JudgeMode,
    JudgeOpt,
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
    criteria: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Criterion for every record, overriding the records' own."),
    ] = None,
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
    from omnirm.bench.run import bench_items, scored_records
    from omnirm.bench.store import ScoreStore, default_store_path
    from omnirm.jsonl import JsonlWriter, display_name
    from omnirm.on_error import ErrorPolicy
    from omnirm.runners import JudgeRunner, ModelRunner, Runner, fingerprint_digest

    console.quiet_libraries()
    if suite is None and source is None:
        raise UsageError("give a records FILE (or -), or --suite NAME with --data DIR or a FILE")
    if source is not None and data is not None:
        raise UsageError("give a records FILE or --data DIR, not both")
    if suite is not None:
        from omnirm.bench.suites import get_suite

        suite = get_suite(suite).name  # an unknown name is refused before anything loads
        if source is None and data is None:
            raise UsageError(
                f"--suite {suite} needs --data DIR (the folder you downloaded) or a FILE of its "
                "records"
            )
    if model is not None and judge is not None:
        raise UsageError("give --model or --judge, not both")
    if bootstrap < 0:
        raise UsageError("--bootstrap must be at least 0")
    if data is not None:
        root = media_root or (data if data.is_dir() else data.parent)
        name = f"{suite} ({data})"
    else:
        assert source is not None
        root = media_root or (Path(source).resolve().parent if source != "-" else Path.cwd())
        name = display_name(source)
    resolver = media_resolver(locals(), root)
    runner: Runner | None = None
    if judge is not None:
        runner = JudgeRunner(judge_options(locals()), resolver, name)
    else:
        items = list(_records(suite, data, tasks, source, max_record_bytes))
        if model is not None or _unscored(items):
            # records without any scores and no scorer: the embedded default model
            runner = ModelRunner(
                model,
                resolver,
                name,
                device=device,
                batch_size=batch_size,
                criteria=criteria,
                revision=revision,
                trust_remote_code=trust_remote_code,
                max_length=max_length,
            )
    store = None
    if runner is not None:
        digest = fingerprint_digest(runner.fingerprint())
        store = ScoreStore(
            scores or default_store_path(digest),
            digest,
            inputs=[source, data if data is not None and data.is_file() else None],
        )
    if judge is not None:
        items = _records(suite, data, tasks, source, max_record_bytes)
    counts: dict[str, int] = {}
    try:
        with JsonlWriter(None) as writer:
            policy = ErrorPolicy(on_error, writer if json_out is False else None)
            scored = scored_records(items, runner, store, policy, counts)
            progress = console.progress(scored, runner.verb if runner else "reading")
            bench_records = bench_items(progress, policy, None if runner else name)
    finally:
        if store is not None:
            store.close()
        if runner is not None:
            runner.close()
    if runner is not None:
        for line in runner.summary():
            console.info(line)
        if counts.get("reused"):
            console.info(f"{counts['reused']} records reused from {store.path if store else ''}")
    if not bench_records:
        raise UsageError(f"{name}: no record to benchmark")
    result = _evaluate(bench_records, calibrate, bootstrap, bootstrap_seed, suite)
    protocol = _protocol(suite, tasks, runner, result, calibrate, bootstrap)
    title = f"omnirm bench — {name}"
    print_report(result, title=title, protocol=protocol)
    if "official" in result:
        console.info(official_summary(result["official"]))
    if markdown is not None:
        markdown.write_text(
            to_markdown(result, title=title, protocol=protocol, references=reference)
        )
    if plot is not None:
        plot_result(result, plot, references=reference, title=title)
    if json_out:
        from omnirm.jsonl import dumps

        typer.echo(dumps({**result, "protocol": protocol}))
    return policy.exit_code()


def _unscored(items: list[Any]) -> bool:
    """Whether the valid records of ``items`` (``(line, record)`` pairs) all carry neither
    rewards nor a verdict (a file scored in part is read as scored: the rest are errors)."""
    from omnirm.records import Record

    records = [item for _, item in items if isinstance(item, Record)]
    return bool(records) and not any({"rewards", "predicted"} & r.extra.keys() for r in records)


def _records(
    suite: str | None, data: Path | None, tasks: str | None, source: str | None, max_bytes: int
) -> Any:
    from omnirm.records import iter_records

    if source is not None:
        return iter_records(source, max_bytes=record_bytes(max_bytes))
    from omnirm.bench.suites import read_suite

    assert suite is not None and data is not None
    return read_suite(suite, data, tasks=tasks)


def _evaluate(
    items: list[Any], calibrate: Path | None, bootstrap: int, seed: int, suite: str | None
) -> dict[str, Any]:
    from omnirm.bench.metrics import evaluate, official_score
    from omnirm.bench.run import bench_items
    from omnirm.errors import RecordError
    from omnirm.jsonl import iter_json_lines
    from omnirm.on_error import ErrorPolicy

    calibration = None
    if calibrate is not None:
        rows = []
        for _, value in iter_json_lines(calibrate):
            if isinstance(value, RecordError):
                raise value
            rows.append(value)
        calibration = bench_items(rows, ErrorPolicy("fail"), str(calibrate))
    result = dict(
        evaluate(items, calibration=calibration, bootstrap=bootstrap, seed=seed).to_dict()
    )
    official = official_score(suite, items)
    if official is not None:
        result["official"] = official
    return result


def _protocol(
    suite: str | None,
    tasks: str | None,
    runner: Any,
    result: dict[str, Any],
    calibrate: Path | None,
    bootstrap: int,
) -> dict[str, str]:
    """What a reader needs to compare these numbers with others (printed with every report)."""
    kinds = {task.get("kind") for task in result.get("tasks", [])}
    protocol = {
        "suite": suite or "records file",
        "tasks": tasks or f"all present ({len(result.get('tasks', []))})",
        "overall": "unweighted mean over the tasks run (7- and 9-task overalls differ)",
        "without ties": "tie-labelled records dropped; a tie or missing prediction is wrong",
    }
    if "official" in result:
        protocol["official score"] = (
            f"{result['official']['rule']}, in the table 'Official'; the task rows are omnirm's "
            "plain accuracies (not weighted by subset, ties counted as above)"
        )
    if "scalar" in kinds:
        calibration = f"on {calibrate}" if calibrate else "5-fold cross-validation on these records"
        protocol["with ties"] = (
            "three-way; 'tie' when |margin| <= eps: eps chosen per task on these records "
            f"(oracle, as the paper) and, honestly, {calibration}"
        )
        protocol["margin"] = "reward(response 0) - reward(response 1); 0 counts wrong"
    if "judge" in kinds:
        protocol["with ties"] = "three-way; the judge's own [[C]] verdict"
    options = getattr(runner, "options", None)
    if options is not None:
        protocol["judge"] = (
            f"{options.spec}, {options.mode}, orders {options.orders} "
            "(contradicting orders = tie), tie verdict "
            f"{'offered' if options.ties else 'not offered'}, retries {options.retries}, "
            f"temperature {options.temperature}, seed {options.seed}"
        )
        protocol["media"] = (
            "10 frames per prompt video, 5 per response video, audio 16 kHz, meshes as 4 views"
        )
    config = getattr(runner, "config", None)
    if config is not None:
        inputs = config.inputs
        protocol["reward model"] = (
            f"{getattr(runner, 'model', '')} (backbone {config.backbone}); max length "
            f"{inputs.max_length}, prompt truncated from the left; {inputs.video_frames} frames "
            f"per video, meshes as {inputs.mesh_views} views"
        )
    protocol["intervals"] = f"bootstrap 95% percentile, {bootstrap} resamples"
    return protocol
