"""``omnirm data``: validate, inspect, convert and split preference data."""

from __future__ import annotations

import contextlib
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

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
    TrustRemoteCodeOpt,
    media_options,
    record_bytes,
)
from omnirm.cli.data_convert import convert
from omnirm.cli.judge_options import (
    PANEL,
    ApiKeyEnvOpt,
    BaseUrlOpt,
    CacheOpt,
    ConcurrencyOpt,
    JudgeVerdict,
    MaxNewTokensOpt,
    NoCacheOpt,
    RetriesOpt,
    SeedOpt,
    TemperatureOpt,
    TimeoutOpt,
    VerdictOpt,
)
from omnirm.errors import UsageError
from omnirm.on_error import OnError
from omnirm.options import MediaOptions

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


# -- building data: criteria, pairs; hygiene: dedup, sample ---------------------------------------

BUILD = "Building"


class AcceptRule(str, Enum):
    UNANIMOUS = "unanimous"
    MAJORITY = "majority"


class DedupBy(str, Enum):
    PROMPT = "prompt"
    RESPONSE = "response"
    PAIR = "pair"


class SampleBy(str, Enum):
    TASK = "task"
    MODALITY = "modality"
    LABEL = "label"
    CRITERION = "criterion"


class SampleMode(str, Enum):
    BALANCED = "balanced"
    PROPORTIONAL = "proportional"


RejectsOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        help="Write rejected items here, each with the reason \\[default: OUT.rejected.jsonl "
        "beside -o OUT].",
        dir_okay=False,
        rich_help_panel=BUILD,
    ),
]
LimitOpt = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(help="Read only the first N records (a dry run).", rich_help_panel=BUILD),
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        help="Continue -o (and --rejects): skip records built there already, append the rest.",
        rich_help_panel=BUILD,
    ),
]
StatsOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        help="Write the run's figures (calls, tokens, cache hits, acceptance, time) as JSON here.",
        dir_okay=False,
        rich_help_panel=BUILD,
    ),
]
BatchSizeOpt = Annotated[
    int,
    typer.Option(
        help="Records whose model calls go together (hf:/vllm: batch them; openai: runs "
        "--concurrency of them at once).",
        rich_help_panel=BUILD,
    ),
]
DeviceOpt = Annotated[
    str, typer.Option(help="hf: device (auto, cpu, cuda, cuda:1, mps).", rich_help_panel=PANEL)
]

StructuredOpt = Annotated[
    Optional[bool],  # noqa: UP045
    typer.Option(
        "--structured/--no-structured",
        help="Constrain the teachers' JSON answers to their schema while decoding (hf: "
        "through xgrammar, vllm: guided decoding, openai: response_format); default: where "
        "the backend can. Answers are validated and re-asked either way.",
        show_default=False,
        rich_help_panel=PANEL,
    ),
]


def _model_options(
    *,
    device: str,
    base_url: str | None,
    api_key_env: str,
    concurrency: int,
    timeout: float,
    batch_size: int,
    trust_remote_code: bool,
    temperature: float,
    seed: int,
    max_new_tokens: int,
    retries: int,
    structured: bool | None,
    cache: Path | None,
    no_cache: bool,
) -> Any:
    """The :class:`~omnirm.data.build.ModelOptions` of a build command's model options."""
    from omnirm.data.build import ModelOptions

    return ModelOptions(
        base_url=base_url,
        api_key_env=api_key_env,
        concurrency=concurrency,
        timeout=timeout,
        batch_size=batch_size,
        device=None if device == "auto" else device,
        trust_remote_code=trust_remote_code,
        temperature=temperature,
        seed=seed,
        max_new_tokens=max_new_tokens,
        retries=retries,
        structured=structured,
        cache=cache,
        use_cache=not no_cache,
    )


@app.command()
def criteria(
    source: InputArg = "-",
    teacher: Annotated[
        str,
        typer.Option(
            help="The model that writes criteria: hf:PATH, openai:MODEL or vllm:PATH.",
            metavar="SPEC",
            rich_help_panel=BUILD,
        ),
    ] = ...,  # type: ignore[assignment]
    verifier: Annotated[
        list[str],
        typer.Option(
            help="A model that checks each criterion (repeat for K verifiers).",
            metavar="SPEC",
            rich_help_panel=BUILD,
        ),
    ] = ...,  # type: ignore[assignment]
    contrastive: Annotated[
        bool,
        typer.Option(
            help="Also write a criterion under which the other response is better.",
            rich_help_panel=BUILD,
        ),
    ] = False,
    accept: Annotated[
        AcceptRule,
        typer.Option(
            help="Keep a criterion when all verifiers agree, or more than half.",
            rich_help_panel=BUILD,
        ),
    ] = AcceptRule.MAJORITY,
    verifier_verdict: VerdictOpt = JudgeVerdict.TEXT,
    output: OutputOpt = None,
    rejects: RejectsOpt = None,
    limit: LimitOpt = None,
    resume: ResumeOpt = False,
    stats: StatsOpt = None,
    batch_size: BatchSizeOpt = 16,
    on_error: OnErrorOpt = OnError.FAIL,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = "OPENAI_API_KEY",
    concurrency: ConcurrencyOpt = 8,
    timeout: TimeoutOpt = 120.0,
    device: DeviceOpt = "auto",
    trust_remote_code: TrustRemoteCodeOpt = False,
    temperature: TemperatureOpt = 0.0,
    seed: SeedOpt = 0,
    max_new_tokens: MaxNewTokensOpt = 512,
    retries: RetriesOpt = 2,
    structured: StructuredOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    media_root: MediaRootOpt = None,
    allow_outside_root: AllowOutsideRootOpt = False,
    allow_urls: AllowUrlsOpt = False,
    max_record_bytes: MaxRecordBytesOpt = MAX_RECORD_BYTES,
) -> int:
    """Criteria-labelled pairs (after Omni-RewardData): for each labelled pair the teacher
    writes a criterion under which the labelled response is better (with
    [bold]--contrastive[/bold] also one favouring the other); each verifier judges the pair
    under it in both orders; kept when the verifiers agree ([bold]--accept[/bold]).
    [bold]--verifier-verdict probs[/bold] reads each verifier's verdict from its probabilities
    of the verdict letters (hf: verifiers): every call gives one, and a verifier agrees when
    the target is the likelier response averaged over both orders.

    Rejected items go to [bold]--rejects[/bold] with the reason; every line names the teacher,
    the verifiers, their verdicts and the prompt version. Model answers are cached.
    """
    from omnirm.data.build import BuildStats, Models, run_build
    from omnirm.data.criteria import CriteriaPipeline, CriteriaSettings
    from omnirm.records import iter_records

    console.quiet_libraries()

    models = Models(
        _model_options(
            device=device,
            base_url=base_url,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout=timeout,
            batch_size=batch_size,
            trust_remote_code=trust_remote_code,
            temperature=temperature,
            seed=seed,
            max_new_tokens=max_new_tokens,
            retries=retries,
            structured=structured,
            cache=cache,
            no_cache=no_cache,
        )
    )
    with contextlib.ExitStack() as stack:
        stack.callback(models.close)
        resolver = stack.enter_context(
            MediaOptions(
                root=media_root, allow_outside_root=allow_outside_root, allow_urls=allow_urls
            ).resolver(source)
        )
        report = BuildStats("criteria")
        pipeline = CriteriaPipeline(
            models.caller("teacher", teacher),
            [models.caller(f"verifier {i + 1}", spec) for i, spec in enumerate(verifier)],
            resolver,
            CriteriaSettings(
                contrastive=contrastive,
                accept=accept.value,
                verdict=verifier_verdict.value,
                window=batch_size,
            ),
            report,
            source=source,
        )
        max_bytes = record_bytes(max_record_bytes)
        return run_build(pipeline, lambda: iter_records(source, max_bytes=max_bytes), report,
                         output=output, rejects=rejects, resume=resume, source=source,
                         on_error=on_error, limit=limit, stats_file=stats)  # fmt: skip


@app.command()
def pairs(
    source: InputArg = "-",
    teacher: Annotated[
        list[str],
        typer.Option(
            help="A teacher that scores both responses (give two; each must agree).",
            metavar="SPEC",
            rich_help_panel=BUILD,
        ),
    ] = ...,  # type: ignore[assignment]
    strong: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="The stronger generator (with --weak); without them the records' own "
            "responses are paired.",
            metavar="SPEC",
            rich_help_panel=BUILD,
        ),
    ] = None,
    weak: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="The weaker generator.", metavar="SPEC", rich_help_panel=BUILD),
    ] = None,
    n_responses: Annotated[
        int,
        typer.Option(
            "--n-responses",
            "-n",
            help="Responses per generator and prompt (pair i takes the i-th of each).",
            rich_help_panel=BUILD,
        ),
    ] = 1,
    gen_temperature: Annotated[
        float, typer.Option(help="The generators' sampling temperature.", rich_help_panel=BUILD)
    ] = 0.7,
    gen_max_new_tokens: Annotated[
        int,
        typer.Option(help="The generators' longest response, in tokens.", rich_help_panel=BUILD),
    ] = 512,
    min_gap: Annotated[
        float,
        typer.Option(
            help="Keep a pair only when the teachers' mean score gap (0-10 scale) exceeds this.",
            rich_help_panel=BUILD,
        ),
    ] = 1.0,
    max_gap: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            help="…and is at most this (hard, low-contrast pairs on purpose).",
            rich_help_panel=BUILD,
        ),
    ] = None,
    output: OutputOpt = None,
    rejects: RejectsOpt = None,
    limit: LimitOpt = None,
    resume: ResumeOpt = False,
    stats: StatsOpt = None,
    batch_size: BatchSizeOpt = 16,
    on_error: OnErrorOpt = OnError.FAIL,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = "OPENAI_API_KEY",
    concurrency: ConcurrencyOpt = 8,
    timeout: TimeoutOpt = 120.0,
    device: DeviceOpt = "auto",
    trust_remote_code: TrustRemoteCodeOpt = False,
    temperature: TemperatureOpt = 0.0,
    seed: SeedOpt = 0,
    max_new_tokens: MaxNewTokensOpt = 768,
    retries: RetriesOpt = 2,
    structured: StructuredOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    media_root: MediaRootOpt = None,
    allow_outside_root: AllowOutsideRootOpt = False,
    allow_urls: AllowUrlsOpt = False,
    max_record_bytes: MaxRecordBytesOpt = MAX_RECORD_BYTES,
) -> int:
    """Preference pairs scored with rationales (after Omni-RRM): prompts (with media), answered
    by a [bold]--strong[/bold] and a [bold]--weak[/bold] generator (or the records' own
    responses), scored 0-10 on fluency, relevance, accuracy, reasoning and safety by each
    [bold]--teacher[/bold] with a verdict and a rationale.

    A pair is kept when the teachers give the same non-tie verdict, consistent with their
    scores, and the score gap exceeds [bold]--min-gap[/bold] (at most [bold]--max-gap[/bold]).
    Output: records with preference, rationale (ready for r1 SFT) and teacher_scores.
    """
    from dataclasses import replace

    from omnirm.data.build import BuildStats, Models, run_build
    from omnirm.data.pairs import PairsPipeline, PairsSettings, iter_prompts

    console.quiet_libraries()

    if (strong is None) != (weak is None):
        raise UsageError(
            "--strong and --weak go together (or give neither to pair the records' own responses)"
        )
    if n_responses < 1:
        raise UsageError("--n-responses must be at least 1")
    if max_gap is not None and max_gap <= min_gap:
        raise UsageError(f"--max-gap {max_gap} must be above --min-gap {min_gap}")
    models = Models(
        _model_options(
            device=device,
            base_url=base_url,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout=timeout,
            batch_size=batch_size,
            trust_remote_code=trust_remote_code,
            temperature=temperature,
            seed=seed,
            max_new_tokens=max_new_tokens,
            retries=retries,
            structured=structured,
            cache=cache,
            no_cache=no_cache,
        )
    )
    with contextlib.ExitStack() as stack:
        stack.callback(models.close)
        resolver = stack.enter_context(
            MediaOptions(
                root=media_root, allow_outside_root=allow_outside_root, allow_urls=allow_urls
            ).resolver(source)
        )
        generators = {}
        for role, spec in (("strong", strong), ("weak", weak)):
            if spec is not None:
                caller = models.caller(role, spec, temperature=gen_temperature,
                                       max_new_tokens=gen_max_new_tokens)  # fmt: skip
                generators[role] = replace(caller, role=role)
        report = BuildStats("pairs")
        pipeline = PairsPipeline(
            [models.caller(f"teacher {i + 1}", spec) for i, spec in enumerate(teacher)],
            resolver,
            PairsSettings(
                n_responses=n_responses,
                min_gap=min_gap,
                max_gap=max_gap,
                seed=seed,
                window=batch_size,
            ),
            report,
            strong=generators.get("strong"),
            weak=generators.get("weak"),
            source=source,
        )
        max_bytes = record_bytes(max_record_bytes)
        return run_build(pipeline, lambda: iter_prompts(source, max_bytes=max_bytes), report,
                         output=output, rejects=rejects, resume=resume, source=source,
                         on_error=on_error, limit=limit, stats_file=stats)  # fmt: skip


@app.command()
def dedup(
    source: InputArg = "-",
    by: Annotated[
        DedupBy, typer.Option(help="Compare prompts, responses, or whole pairs (with criteria).")
    ] = DedupBy.PROMPT,
    threshold: Annotated[
        float, typer.Option(help="Near duplicates: the least estimated Jaccard similarity.")
    ] = 0.8,
    exact_only: Annotated[
        bool, typer.Option("--exact-only", help="Drop exact duplicates only (no MinHash).")
    ] = False,
    num_perm: Annotated[int, typer.Option(help="MinHash permutations.")] = 128,
    shingle: Annotated[int, typer.Option(help="Character n-gram size of the shingles.")] = 5,
    clusters: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Write each cluster (the kept id and its duplicates) here as JSONL.",
            dir_okay=False,
        ),
    ] = None,
    output: OutputOpt = None,
    on_error: OnErrorOpt = OnError.FAIL,
    max_record_bytes: MaxRecordBytesOpt = MAX_RECORD_BYTES,
) -> int:
    """Drop exact and near-duplicate records (MinHash LSH), keeping the first of each cluster.

    Text is compared lower-cased with whitespace collapsed, media by path. The summary on
    stderr counts what was dropped; [bold]--clusters[/bold] lists every cluster.
    """
    from omnirm.data.dedup import Deduplicator
    from omnirm.jsonl import JsonlWriter
    from omnirm.on_error import ErrorPolicy
    from omnirm.records import InvalidRecord, iter_records

    finder = Deduplicator(by.value, threshold=threshold, num_perm=num_perm, shingle=shingle,
                          near=not exact_only)  # fmt: skip
    with JsonlWriter(output, inputs=[source]) as writer:
        policy = ErrorPolicy(on_error, writer)
        records = iter_records(source, max_bytes=record_bytes(max_record_bytes))
        for _, item in console.progress(records, "deduplicating"):
            if isinstance(item, InvalidRecord):
                policy.handle(item)
            elif finder.check(item) is None:
                writer.write(item.to_dict())
    if clusters is not None:
        with JsonlWriter(clusters, inputs=[source], option="--clusters") as cluster_writer:
            for cluster in finder.clusters.values():
                cluster_writer.write(cluster.to_dict())
    console.info(finder.summary())
    return policy.exit_code()


@app.command()
def sample(
    source: InputArg = "-",
    n: Annotated[int, typer.Option("--n", "-n", help="Records in the sample.")] = ...,  # type: ignore[assignment]
    by: Annotated[SampleBy, typer.Option(help="The groups to stratify by.")] = SampleBy.TASK,
    mode: Annotated[
        SampleMode,
        typer.Option(help="balanced: equal shares per group; proportional: the input's mix."),
    ] = SampleMode.BALANCED,
    seed: Annotated[int, typer.Option(help="Seed of the draw.")] = 0,
    output: OutputOpt = None,
    on_error: OnErrorOpt = OnError.FAIL,
    max_record_bytes: MaxRecordBytesOpt = MAX_RECORD_BYTES,
) -> int:
    """A seeded, stratified sample of [bold]--n[/bold] records, balanced by task, modality,
    label or criterion (or proportional to the input's mix); written in input order.
    """
    from omnirm.data.sample import allocate, choose, group_of
    from omnirm.jsonl import JsonlWriter
    from omnirm.on_error import ErrorPolicy
    from omnirm.records import InvalidRecord, iter_records

    if on_error is OnError.RECORD:
        raise UsageError("--on-error record makes no sense for sample: use skip or fail")
    policy = ErrorPolicy(on_error)
    kept: list[Record] = []  # the records themselves: standard input cannot be read twice
    groups: dict[str, list[int]] = {}
    records = iter_records(source, max_bytes=record_bytes(max_record_bytes))
    for _, item in console.progress(records, "reading"):
        if isinstance(item, InvalidRecord):
            policy.handle(item)
            continue
        groups.setdefault(group_of(item, by.value), []).append(len(kept))
        kept.append(item)
    counts = allocate({g: len(p) for g, p in groups.items()}, n, mode.value)
    chosen = choose(groups, counts, seed)
    with JsonlWriter(output, inputs=[source]) as writer:
        for position, record in enumerate(kept):
            if position in chosen:
                writer.write(record.to_dict())
    shares = ", ".join(f"{g}: {counts[g]}/{len(groups[g])}" for g in sorted(groups))
    console.info(f"{len(chosen)} of {len(kept)} records sampled by {by.value} ({shares})")
    return policy.exit_code()
