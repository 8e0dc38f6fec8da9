"""``omnirm score``: add rewards (a reward model) or verdicts (a generative judge) to records."""

from __future__ import annotations

from typing import Annotated, Optional

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
    RewardModelOpt,
    ScoreMaxLengthOpt,
    TrustRemoteCodeOpt,
    default_media_root,
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


def score(
    source: InputArg = "-",
    model: RewardModelOpt = None,
    revision: RevisionOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    max_length: ScoreMaxLengthOpt = None,
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
    criteria: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Criterion for every record, overriding the records' own."),
    ] = None,
    output: OutputOpt = None,
    batch_size: Annotated[
        int, typer.Option(help="Sequences per forward pass (hf: judge requests per batch).")
    ] = 8,
    tie_margin: Annotated[
        float, typer.Option(help="Predict 'tie' when |margin| is at most this.")
    ] = 0.0,
    normalize: Annotated[
        bool, typer.Option(help="Standardise rewards with the mean/std stored in the model.")
    ] = False,
    device: Annotated[
        str, typer.Option(help="cpu, cuda, cuda:1 … [default: cuda if available]")
    ] = "auto",
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
    ] = True,
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
    """
    from omnirm.jsonl import STDIN, JsonlWriter, display_name
    from omnirm.on_error import ErrorPolicy
    from omnirm.records import iter_records
    from omnirm.resume import ResumableOutput
    from omnirm.runners import JudgeRunner, ModelRunner, Runner, fingerprint_digest

    console.quiet_libraries()
    if model is not None and judge is not None:
        raise UsageError(
            "give either --model (a reward model) or --judge SPEC (a generative judge), not both"
        )
    if resume and output is None:
        raise UsageError("--resume needs -o FILE (the output to continue)")
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    resolver = media_resolver(locals(), default_media_root(source, media_root))
    name = display_name(source)
    # The output is locked (and checked against the input) before the model loads.
    with JsonlWriter(output, append=resume, inputs=[source], flush_seconds=0) as writer:
        runner: Runner
        if judge is not None:
            runner = JudgeRunner(judge_options(locals()), resolver, name)
        else:
            runner = ModelRunner(
                model,
                resolver,
                name,
                device=device,
                revision=revision,
                trust_remote_code=trust_remote_code,
                max_length=max_length,
                batch_size=batch_size,
                criteria=criteria,
                tie_margin=tie_margin,
                normalize=normalize,
                share_prefix=share_prefix,
            )
        max_bytes = record_bytes(max_record_bytes)
        try:
            out = ResumableOutput(
                writer,
                fingerprint_digest(runner.fingerprint()),
                path=writer.file.path if resume and writer.file else None,
                source=name,
                provenance=runner.provenance(),
            )
            if resume and source != STDIN:
                out.check_input(iter_records(source, max_bytes=max_bytes))
            policy = ErrorPolicy(on_error, out.errors)
            items = out.pending(iter_records(source, max_bytes=max_bytes))
            for record in console.progress(runner.run(items, policy), runner.verb):
                out.write(record)
            if resume and source == STDIN:
                out.check_all_matched()
        finally:
            runner.close()
    if out.skipped:
        console.info(f"resumed: {out.skipped} records were already scored")
    for line in runner.summary():
        console.info(line)
    return policy.exit_code()
