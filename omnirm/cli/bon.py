"""``omnirm bon``: best-of-N selection, ranking, ensembles and preference-pair export."""

from __future__ import annotations

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
        typer.Option(help="Gather candidates from records sharing this field (e.g. prompt_id)."),
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
            help="omnirm records, TRL DPO rows (prompt/chosen/rejected) or LLaMA-Factory ranking rows.",
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
    a selection-quality report on stderr.
    """
    from omnirm.bon import (
        BonSettings,
        Quality,
        annotate,
        group_candidates,
        preference_pairs,
        score_candidates,
    )
    from omnirm.jsonl import JsonlWriter, display_name
    from omnirm.on_error import ErrorPolicy
    from omnirm.records import Record, iter_records
    from omnirm.runners import JudgeRunner, ModelRunner, Runner

    console.quiet_libraries()
    if top_k is not None and top_k < 1:
        raise UsageError("--top-k must be at least 1")
    if top_k is not None and select is not Select.ALL:
        raise UsageError("give --select or --top-k, not both")
    if pair_margin < 0:
        raise UsageError("--pair-margin must be at least 0")
    settings = BonSettings(
        select=select.value,
        top_k=top_k,
        combine=combine.value,
        tournament=tournament.value,
    )
    resolver = media_resolver(locals(), default_media_root(source, media_root))
    name = display_name(source)
    with JsonlWriter(output) as writer:
        policy = ErrorPolicy(on_error, writer)
        items = iter_records(source, max_bytes=record_bytes(max_record_bytes))
        if group_by is not None:
            records = group_candidates(items, group_by, policy)
        else:
            records = []
            for line, item in items:
                if isinstance(item, Record):
                    records.append((line, item))
                else:
                    policy.handle(item)
        scores: dict[str, dict[str, Any]] = {}
        scorers: list[tuple[str, str | None]] = [("model", m) for m in model or []]
        scorers += [("judge", j) for j in judge or []]
        if not scorers:  # the embedded default reward model
            scorers = [("model", None)]
        template = judge_options({**locals(), "judge": (judge or ["-"])[0]})
        for kind, spec in scorers:
            runner: Runner
            if kind == "model":
                model_runner = ModelRunner(
                    spec, resolver, name, device=device, batch_size=batch_size,
                    criteria=criteria, revision=revision,
                    trust_remote_code=trust_remote_code, max_length=max_length,
                )  # fmt: skip
                runner, label = model_runner, f"model:{model_runner.name}"
            else:
                assert spec is not None
                runner = JudgeRunner(replace(template, spec=spec), resolver, name)
                label = f"judge:{spec}"
            try:
                for record_id, rewards in score_candidates(
                    runner, records, policy, settings
                ).items():
                    scores.setdefault(record_id, {})[label] = rewards
            finally:
                runner.close()
            for text in runner.summary():
                console.info(f"{label}: {text}")
        quality = Quality()
        written_pairs = 0
        pair_rows: list[Any] = []
        for _, record in records:
            mine = scores.get(record.id)
            if mine is None or len(mine) < len(scorers):
                continue  # a scorer failed on it: reported already
            out = annotate(record, mine, settings)
            writer.write(out)
            if record.gold_scores is not None:
                quality.add(record.gold_scores, out["best"])
            if pairs is not None:
                pair_rows += preference_pairs(
                    record, out["rewards"], mode=pair_mode.value, margin=pair_margin
                )
    if pairs is not None:
        written_pairs = _write_pairs(pair_rows, pairs, pairs_format.value)
        console.info(f"{written_pairs} preference pairs written to {pairs} ({pairs_format.value})")
    if quality.records:
        console.info(quality.summary())
    return policy.exit_code()


def _write_pairs(rows: list[dict[str, Any]], path: Path, fmt: str) -> int:
    from omnirm.jsonl import JsonlWriter
    from omnirm.records import parse_record

    records = [parse_record(row) for row in rows]
    with JsonlWriter(path) as writer:
        if fmt == "omnirm":
            for row in rows:
                writer.write(row)
            return len(rows)
        if fmt == "trl":
            from omnirm.formats.pairs import write_pairs as export
        else:
            from omnirm.formats.llamafactory import write_llamafactory as export
        count = 0
        for item in export(records):
            if isinstance(item, Exception):
                console.warn(f"pair {item}")  # e.g. media LLaMA-Factory cannot place
                continue
            writer.write(item)
            count += 1
        return count
