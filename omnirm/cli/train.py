"""``omnirm train``: train reward models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

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
    RevisionOpt,
    TrustRemoteCodeOpt,
    given_options,
    media_limits,
    record_bytes,
)
from omnirm.errors import UsageError
from omnirm.train.memory import huge_pages_for_activations

if TYPE_CHECKING:
    from omnirm.train.bt import BTConfig

#: ``--config FILE`` of both training commands (see :mod:`omnirm.train.config_file`).
ConfigFileOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--config",
        "-c",
        help="Settings from a TOML, YAML or JSON file (e.g. a run's training_config.json): "
        "any field of the training config, dashes or underscores; flags given here "
        "override it.",
        dir_okay=False,
        show_default=False,
    ),
]

#: ``--freeze-media/--train-media`` of both training commands.
FreezeMediaOpt = Annotated[
    bool,
    typer.Option(
        "--freeze-media/--train-media",
        help="Keep the vision and audio towers frozen (also with --full), or train them too.",
    ),
]

GradientCheckpointingOpt = Annotated[
    bool,
    typer.Option(
        help="Recompute each layer's activations in the backward pass instead of keeping "
        "them: a fraction of the memory for about a third more compute."
    ),
]
SharePrefixOpt = Annotated[
    bool,
    typer.Option(
        help="Run what a record's sequences have in common once, each sequence seeing that "
        "start and itself: the same loss and gradients as whole sequences, for fewer tokens. "
        "train bt: the criterion, history and prompt (with its media) for all responses; "
        "train r1 (SFT, text judges): the conversation up to the first response for both "
        "orders."
    ),
]
GroupByLengthOpt = Annotated[
    bool,
    typer.Option(
        help="Batch records of similar length together (seeded, shuffled by batch), so "
        "little is padded. train bt: --contrastive-batches takes precedence."
    ),
]

app = typer.Typer(help="Train reward models.", no_args_is_help=True, rich_markup_mode="rich")


@app.command()
def bt(
    ctx: typer.Context,
    model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--model",
            "-m",
            help="Base model: a local folder or .gguf file, a hub id ORG/NAME (fetched into the "
            r"Hugging Face cache), or pkg:MODULE/FILE inside an installed package \[required, "
            "here or in --config].",
            metavar="PATH|ORG/NAME",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help=r"Training records (JSONL with gold labels) \[required, here or in --config].",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--output",
            "-o",
            help=r"Folder for the reward model \[required, here or in --config].",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    config: ConfigFileOpt = None,
    revision: RevisionOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    eval_data: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--eval", help="Held-out records: pairwise accuracy is logged.", dir_okay=False
        ),
    ] = None,
    epochs: Annotated[float, typer.Option(help="Passes over the data (fractions allowed).")] = 1.0,
    lr: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            help="Peak learning rate (cosine schedule) \\[default: 5e-4 LoRA, 1e-5 full]."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Records per step on each device.")] = 8,
    grad_accum: Annotated[int, typer.Option(help="Steps to accumulate per update.")] = 1,
    max_length: Annotated[int, typer.Option(help="Token budget per sequence.")] = 1024,
    lora_r: Annotated[int, typer.Option(help="LoRA rank (LoRA is the default).")] = 16,
    lora_dropout: Annotated[
        float, typer.Option(help="Dropout on the LoRA path (0 = none, the fastest).")
    ] = 0.0,
    lora_layers: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            help="Adapt only the last N transformer layers: the backward pass stops there, so "
            "steps are faster and need less memory \\[default: all layers]."
        ),
    ] = None,
    criteria_position: Annotated[
        str,
        typer.Option(
            help="Where the model reads the criterion: in the system message (system), or "
            "also again after the response (end), right before the reward is read; small "
            "models learn to follow criteria much faster with end.",
        ),
    ] = "system",
    contrastive_batches: Annotated[
        bool,
        typer.Option(
            help="Put the records of one pair under different criteria (same prompt and "
            "responses) in the same batch, so each step sees the criterion's effect rather than "
            "a preference that ignores it.",
        ),
    ] = False,
    full: Annotated[
        bool, typer.Option(help="Train all weights instead of a LoRA adapter.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed for initialisation and data order.")] = 0,
    resume: Annotated[
        bool,
        typer.Option(help="Continue the run saved in --output (refused if its settings differ)."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            help="Clear --output (an earlier omnirm train bt folder) and train from the beginning."
        ),
    ] = False,
    save_every: Annotated[
        int,
        typer.Option(
            help="Save a resumable state every N optimizer steps \\[default: 0, at the end of "
            "each epoch].",
            metavar="N",
        ),
    ] = 0,
    eval_every: Annotated[
        int,
        typer.Option(
            help="Evaluate on --eval every N optimizer steps \\[default: 0, at the end of each "
            "epoch].",
            metavar="N",
        ),
    ] = 0,
    margin: Annotated[
        float, typer.Option(help="Bradley-Terry margin the better response must win by.")
    ] = 0.0,
    center_rewards: Annotated[
        float, typer.Option(help="Weight of the reward-centering term (e.g. 0.01).")
    ] = 0.0,
    ties: Annotated[
        str,
        typer.Option(help="Tie pairs: skip them, or train them with Davidson's model (davidson)."),
    ] = "skip",
    gradient_checkpointing: GradientCheckpointingOpt = True,
    share_prefix: SharePrefixOpt = True,
    group_by_length: GroupByLengthOpt = True,
    bf16: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--bf16/--no-bf16",
            help="bf16 mixed precision \\[default: where it is native: GPUs that support it, "
            "CPUs with AVX512-BF16 or AMX, where it runs about twice as fast as fp32].",
        ),
    ] = None,
    criteria: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Criterion for every record, overriding the records' own."),
    ] = None,
    media_root: MediaRootOpt = None,
    allow_outside_root: AllowOutsideRootOpt = False,
    allow_urls: AllowUrlsOpt = False,
    video_frames: Annotated[
        int, typer.Option(help="Frames sampled uniformly from each video.")
    ] = 4,
    mesh_views: Annotated[
        int, typer.Option(help="Views rendered around each mesh (tiled into one image).")
    ] = 4,
    mesh_size: Annotated[
        int, typer.Option(help="Side of each rendered mesh view, in pixels.")
    ] = 256,
    freeze_media: FreezeMediaOpt = True,
    merge: Annotated[
        bool,
        typer.Option(help="Also write OUTPUT/merged: a plain sequence-classification checkpoint."),
    ] = False,
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
    """Train a Bradley-Terry reward model (value head on a text, vision-language or omni
    backbone) with free-form criteria.

    Records may hold images, videos, audio and meshes (in prompts and responses) when the
    backbone reads them (Qwen2.5-VL, Qwen2.5-Omni); relative media paths resolve against
    [bold]--media-root[/bold], by default the folder of the file that names them.

    Works under [bold]accelerate launch[/bold] (DDP, FSDP, DeepSpeed). Prints a JSON summary on
    stdout; progress and evaluation on stderr.

    [bold]--config FILE[/bold] (TOML, YAML or JSON) sets any field of the training config,
    including those without a flag (warmup_ratio, weight_decay, max_grad_norm, lora_alpha,
    head_dropout, eval_batch_size, media_limits …); flags given on the command line override
    it. The resolved config is saved as OUTPUT/training_config.json, itself a valid --config.
    """
    huge_pages_for_activations()  # before torch is imported

    from dataclasses import asdict

    from accelerate import PartialState

    from omnirm.jsonl import JsonlWriter
    from omnirm.train.bt import BTConfig
    from omnirm.train.config_file import resolve_config
    from omnirm.train.resume import RUN_FACTS

    console.quiet_libraries()

    given = given_options(ctx)
    limits = {
        "max_file_bytes": max_file_bytes,
        "max_image_pixels": max_image_pixels,
        "max_video_seconds": max_video_seconds,
        "max_video_frames": max_video_frames,
        "max_frame_pixels": max_frame_pixels,
        "max_audio_seconds": max_audio_seconds,
        "max_audio_bytes": max_audio_bytes,
        "max_mesh_faces": max_mesh_faces,
        "max_mesh_render_work": max_mesh_render_work,
        "max_mesh_seconds": max_mesh_seconds,
    }
    flags = {  # config field: (command-line parameter, value)
        "model": ("model", model),
        "revision": ("revision", revision),
        "data": ("data", str(data) if data is not None else None),
        "output": ("output", str(output) if output is not None else None),
        "eval": ("eval_data", str(eval_data) if eval_data else None),
        "epochs": ("epochs", epochs),
        "lr": ("lr", lr),
        "batch_size": ("batch_size", batch_size),
        "grad_accum": ("grad_accum", grad_accum),
        "max_length": ("max_length", max_length),
        "lora_r": ("lora_r", lora_r),
        "lora_dropout": ("lora_dropout", lora_dropout),
        "lora_layers": ("lora_layers", lora_layers),
        "full": ("full", full),
        "seed": ("seed", seed),
        "resume": ("resume", resume),
        "force": ("force", force),
        "save_every": ("save_every", save_every),
        "eval_every": ("eval_every", eval_every),
        "margin": ("margin", margin),
        "center_rewards": ("center_rewards", center_rewards),
        "ties": ("ties", ties),
        "gradient_checkpointing": ("gradient_checkpointing", gradient_checkpointing),
        "share_prefix": ("share_prefix", share_prefix),
        "group_by_length": ("group_by_length", group_by_length),
        "bf16": ("bf16", bf16),
        "criteria": ("criteria", criteria),
        "criteria_position": ("criteria_position", criteria_position),
        "contrastive_batches": ("contrastive_batches", contrastive_batches),
        "media_root": ("media_root", str(media_root) if media_root is not None else None),
        "allow_outside_root": ("allow_outside_root", allow_outside_root),
        "allow_urls": ("allow_urls", allow_urls),
        "max_record_bytes": ("max_record_bytes", max_record_bytes),
        "video_frames": ("video_frames", video_frames),
        "mesh_views": ("mesh_views", mesh_views),
        "mesh_size": ("mesh_size", mesh_size),
        "freeze_media": ("freeze_media", freeze_media),
        "trust_remote_code": ("trust_remote_code", trust_remote_code),
    }
    overrides = _overrides(flags, given)
    chosen_limits = {name: value for name, value in limits.items() if name in given}
    if chosen_limits:
        overrides["media_limits"] = chosen_limits
    settings = resolve_config(BTConfig, config, overrides, facts=RUN_FACTS)
    _check_remote_code(settings.trust_remote_code, given, config)
    settings.media_limits = media_limits(**asdict(settings.media_limits))  # all positive
    settings.max_record_bytes = record_bytes(settings.max_record_bytes)
    result = _train_bt(settings, merge=merge)
    if PartialState().is_main_process:  # one summary, not one per process
        with JsonlWriter() as writer:
            writer.write({"output": settings.output, **asdict(result)})
    return 0


def _overrides(flags: dict[str, tuple[str, Any]], given: set[str]) -> dict[str, Any]:
    """``{config field: value}`` of the flags given (``flags``: field → (parameter, value))."""
    return {name: value for name, (parameter, value) in flags.items() if parameter in given}


def _check_remote_code(trust_remote_code: bool, given: set[str], config: Path | None) -> None:
    if trust_remote_code and "trust_remote_code" not in given:
        raise UsageError(
            f"--config {config}: trust_remote_code runs code from the model folder; it is "
            "honoured only as --trust-remote-code on the command line"
        )


def _train_bt(config: BTConfig, *, merge: bool) -> Any:
    """Validate, train, and with ``merge`` export the merged checkpoint."""
    from accelerate import PartialState

    from omnirm.train.bt import train_bt

    model, revision, trust_remote_code = config.model, config.revision, config.trust_remote_code
    output = Path(config.output)
    config.validate()  # usage errors before --merge looks at the model
    if merge:
        from omnirm.models.checkpoint import detect_kind
        from omnirm.models.safety import check_model_folder
        from omnirm.models.sources import resolve_model

        base = resolve_model(model, revision=revision, trust_remote_code=trust_remote_code)
        check_model_folder(
            base.folder,
            gguf_file=base.gguf_file,
            trust_remote_code=trust_remote_code,
            label=f"--model {model}",
        )
        if detect_kind(base.folder, base.gguf_file, trust_remote_code)[1] != "native":
            raise UsageError(
                f"--merge: {model} has no sequence-classification class in transformers, so "
                "there is no plain checkpoint to export (train without --merge)"
            )
    result = train_bt(config)
    if merge and PartialState().is_main_process:
        from omnirm.models.checkpoint import export_merged

        merged = export_merged(output, output / "merged", trust_remote_code=trust_remote_code)
        console.info(f"merged checkpoint: {merged}")
    return result


@app.command()
def r1(
    ctx: typer.Context,
    model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--model",
            "-m",
            help="Base model: a local text model folder or .gguf file, a vision-language "
            "(Qwen2.5-VL) or omni (Qwen2.5-Omni thinker) folder, a hub id ORG/NAME, or "
            "pkg:MODULE/FILE inside an installed package \\[required, here or in --config].",
            metavar="PATH|ORG/NAME",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Training records (JSONL with a gold preference; --stage sft also needs a "
            "rationale) \\[required, here or in --config].",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    config_file: ConfigFileOpt = None,
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--output",
            "-o",
            help="Folder for the judge, which omnirm score --judge hf:DIR loads \\[required, "
            "here or in --config].",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    stage: Annotated[
        str,
        typer.Option(
            help="Stages, in the order they run: sft (rationale, then verdict), rs (rejection "
            "sampling: the model's own answers right in both orders become SFT records; the "
            "next stage must be sft, which trains on them), grpo (rewarded rollouts); e.g. "
            "sft,grpo or rs,sft,grpo.",
            metavar="STAGE[,STAGE…]",
        ),
    ] = "sft,grpo",
    revision: RevisionOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    lr: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            help="Learning rate \\[default: LoRA 2e-4 for sft, 1e-5 for grpo; full 1e-5, 1e-6]."
        ),
    ] = None,
    epochs: Annotated[float, typer.Option(help="SFT passes over the data.")] = 1.0,
    batch_size: Annotated[
        int,
        typer.Option(
            help="Sequences per forward pass on each device (a media judge's GRPO samples this many prompts per generate call)."
        ),
    ] = 4,
    grad_accum: Annotated[int, typer.Option(help="SFT steps to accumulate per update.")] = 1,
    max_steps: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(help="At most N optimizer steps per stage.", metavar="N"),
    ] = None,
    max_length: Annotated[
        int, typer.Option(help="Token budget of a conversation and its answer.")
    ] = 2048,
    ties: Annotated[
        bool, typer.Option(help="Offer [[C]] for a tie, and train on tie records.")
    ] = False,
    criteria: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Criterion for every record, overriding the records' own."),
    ] = None,
    full: Annotated[
        bool, typer.Option(help="Train all weights instead of a LoRA adapter.")
    ] = False,
    lora_r: Annotated[int, typer.Option(help="LoRA rank (LoRA is the default).")] = 16,
    lora_dropout: Annotated[float, typer.Option(help="Dropout on the LoRA path.")] = 0.0,
    lora_layers: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(help="Adapt only the last N transformer layers \\[default: all layers]."),
    ] = None,
    gradient_checkpointing: GradientCheckpointingOpt = True,
    share_prefix: SharePrefixOpt = True,
    group_by_length: GroupByLengthOpt = True,
    freeze_media: FreezeMediaOpt = True,
    bf16: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--bf16/--no-bf16", help="bf16 mixed precision \\[default: on GPUs that support it]."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for initialisation, data order, sampling.")] = 0,
    force: Annotated[
        bool,
        typer.Option(help="Clear --output (an earlier omnirm training folder) and train again."),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the run saved in --output from its last checkpoint (same data, model "
            "and settings); an rs stage continues its file."
        ),
    ] = False,
    save_steps: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            help="Save a resumable checkpoint every N optimizer steps (one is also saved after "
            "each stage).",
            metavar="N",
        ),
    ] = None,
    plot: Annotated[
        bool, typer.Option(help="Draw the learning curves into OUTPUT/curves.png at the end.")
    ] = False,
    answer_format: Annotated[
        str,
        typer.Option(
            help="How the judge answers: reasoning then [[A]] (marks), or Omni-RRM's JSON object "
            "with reasoning, score_A, score_B and better (json; score --judge reads both).",
            metavar="marks|json",
        ),
    ] = "marks",
    rs_samples: Annotated[
        int, typer.Option(help="rs: judgements sampled per record (each in both orders).")
    ] = 4,
    rs_temperature: Annotated[float, typer.Option(help="rs: sampling temperature.")] = 0.8,
    rs_output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="rs: where the kept samples go \\[default: OUTPUT/rs.jsonl].",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    cache: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="rs: the judge's answer cache (SQLite) \\[default: ~/.cache/omnirm/judge.sqlite].",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="rs: neither read nor write the answer cache.")
    ] = False,
    generations: Annotated[int, typer.Option(help="GRPO answers sampled per prompt.")] = 6,
    prompts_per_step: Annotated[
        int, typer.Option(help="GRPO prompts per step on each device.")
    ] = 4,
    grpo_epochs: Annotated[
        float, typer.Option(help="GRPO passes over the prompts (both orders of each record).")
    ] = 1.0,
    max_completion_length: Annotated[
        int, typer.Option(help="GRPO: most tokens per sampled answer.")
    ] = 512,
    temperature: Annotated[float, typer.Option(help="GRPO sampling temperature.")] = 1.0,
    top_p: Annotated[float, typer.Option(help="GRPO nucleus sampling.")] = 1.0,
    beta: Annotated[
        float, typer.Option(help="GRPO: weight of the KL to the model the stage started from.")
    ] = 0.04,
    clip_epsilon: Annotated[float, typer.Option(help="GRPO: PPO clipping range.")] = 0.2,
    updates_per_batch: Annotated[
        int, typer.Option(help="GRPO optimizer steps on each batch of rollouts.")
    ] = 1,
    loss_norm: Annotated[
        str,
        typer.Option(
            help="GRPO loss average: over all answer tokens (token), or per answer (sequence).",
            metavar="token|sequence",
        ),
    ] = "token",
    rollouts: Annotated[
        str,
        typer.Option(
            help="GRPO: sample with the policy (transformers generate, CPU or GPU) or with an "
            "in-process vLLM engine synced to the policy every step (a CUDA GPU and "
            "pip install 'omnirm\\[vllm]'; one process).",
            metavar="generate|vllm",
        ),
    ] = "generate",
    vllm_gpu_memory_utilization: Annotated[
        float,
        typer.Option(help="--rollouts vllm: share of GPU memory the engine may take."),
    ] = 0.3,
    correct_weight: Annotated[
        float, typer.Option(help="Reward weight: the verdict matches the gold label.")
    ] = 1.0,
    format_weight: Annotated[
        float, typer.Option(help="Reward weight: exactly one verdict mark in the answer.")
    ] = 0.5,
    length_weight: Annotated[
        float, typer.Option(help="Reward weight: −(answer tokens / max completion length).")
    ] = 0.0,
    consistency_weight: Annotated[
        float,
        typer.Option(
            help="Reward weight: the answer agrees with the answers to the other order of the "
            "same record."
        ),
    ] = 0.0,
    rubric_weight: Annotated[
        float,
        typer.Option(
            help="Reward weight: share of the criterion's aspects (a record's rubric "
            "dimensions, else its criterion's words) the reasoning mentions."
        ),
    ] = 0.0,
    reward_fn: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            help="Extra reward: MODULE:FUNCTION or FILE.py:FUNCTION with TRL's reward-function "
            "signature (repeatable).",
            metavar="MODULE:FUNCTION",
        ),
    ] = None,
    reward_fn_weight: Annotated[
        float, typer.Option(help="Reward weight of each --reward-fn.")
    ] = 1.0,
    media_root: MediaRootOpt = None,
    max_record_bytes: MaxRecordBytesOpt = MAX_RECORD_BYTES,
) -> int:
    """Train a generative judge (reasoning, then [[A]] or [[B]]) on a text, vision-language or
    omni model, with the judge's own conversations (images, video, audio, meshes as rendered
    views, placed as score --judge places them).

    Every record is shown in both orders (responses swapped, verdict letter swapped). SFT
    learns the records' [bold]rationale[/bold] followed by the verdict; rs samples the
    model's own judgements and keeps those right in both orders as SFT records (DIR/rs.jsonl,
    resumable, cached); GRPO samples answers and learns from rewards (verdict correct, format,
    order consistency, rubric coverage, length, your functions). The output folder is a judge:
    [bold]omnirm score --judge hf:DIR[/bold].

    Works under [bold]accelerate launch[/bold]. Prints a JSON summary on stdout; a progress
    bar with the latest metrics on stderr, per-step metrics in DIR/metrics.jsonl, and with
    [bold]--plot[/bold] the learning curves in DIR/curves.png. [bold]--save-steps N[/bold]
    checkpoints; [bold]--resume[/bold] continues a stopped run exactly.

    [bold]--config FILE[/bold] (TOML, YAML or JSON) sets any field of the training config
    (e.g. warmup_ratio, lora_alpha, reward_fns); flags given on the command line override it.
    The resolved config is saved as OUTPUT/training_config.json, itself a valid --config.
    """
    huge_pages_for_activations()  # before torch is imported

    from accelerate import PartialState

    from omnirm.jsonl import JsonlWriter
    from omnirm.train.config_file import resolve_config
    from omnirm.train.r1 import R1Config, train_r1
    from omnirm.train.r1.config import R1_RUN_FACTS
    from omnirm.train.resume import RUN_FACTS

    console.quiet_libraries()
    given = given_options(ctx)
    flags = {  # config field: (command-line parameter, value)
        "model": ("model", model),
        "revision": ("revision", revision),
        "data": ("data", str(data) if data is not None else None),
        "output": ("output", str(output) if output is not None else None),
        "stage": ("stage", stage),
        "lr": ("lr", lr),
        "epochs": ("epochs", epochs),
        "batch_size": ("batch_size", batch_size),
        "grad_accum": ("grad_accum", grad_accum),
        "max_steps": ("max_steps", max_steps),
        "max_length": ("max_length", max_length),
        "ties": ("ties", ties),
        "criteria": ("criteria", criteria),
        "full": ("full", full),
        "lora_r": ("lora_r", lora_r),
        "lora_dropout": ("lora_dropout", lora_dropout),
        "lora_layers": ("lora_layers", lora_layers),
        "gradient_checkpointing": ("gradient_checkpointing", gradient_checkpointing),
        "share_prefix": ("share_prefix", share_prefix),
        "group_by_length": ("group_by_length", group_by_length),
        "freeze_media": ("freeze_media", freeze_media),
        "bf16": ("bf16", bf16),
        "seed": ("seed", seed),
        "force": ("force", force),
        "resume": ("resume", resume),
        "save_steps": ("save_steps", save_steps),
        "plot": ("plot", plot),
        "answer_format": ("answer_format", answer_format),
        "rs_samples": ("rs_samples", rs_samples),
        "rs_temperature": ("rs_temperature", rs_temperature),
        "rs_output": ("rs_output", str(rs_output) if rs_output is not None else None),
        "cache": ("cache", str(cache) if cache is not None else None),
        "use_cache": ("no_cache", not no_cache),
        "generations": ("generations", generations),
        "prompts_per_step": ("prompts_per_step", prompts_per_step),
        "grpo_epochs": ("grpo_epochs", grpo_epochs),
        "max_completion_length": ("max_completion_length", max_completion_length),
        "temperature": ("temperature", temperature),
        "top_p": ("top_p", top_p),
        "beta": ("beta", beta),
        "clip_epsilon": ("clip_epsilon", clip_epsilon),
        "updates_per_batch": ("updates_per_batch", updates_per_batch),
        "loss_norm": ("loss_norm", loss_norm),
        "rollouts": ("rollouts", rollouts),
        "vllm_gpu_memory_utilization": (
            "vllm_gpu_memory_utilization",
            vllm_gpu_memory_utilization,
        ),
        "correct_weight": ("correct_weight", correct_weight),
        "format_weight": ("format_weight", format_weight),
        "length_weight": ("length_weight", length_weight),
        "consistency_weight": ("consistency_weight", consistency_weight),
        "rubric_weight": ("rubric_weight", rubric_weight),
        "reward_fns": ("reward_fn", list(reward_fn or [])),
        "reward_fn_weight": ("reward_fn_weight", reward_fn_weight),
        "media_root": ("media_root", str(media_root) if media_root is not None else None),
        "max_record_bytes": ("max_record_bytes", max_record_bytes),
        "trust_remote_code": ("trust_remote_code", trust_remote_code),
    }
    config = resolve_config(
        R1Config, config_file, _overrides(flags, given), facts=(*RUN_FACTS, *R1_RUN_FACTS)
    )
    _check_remote_code(config.trust_remote_code, given, config_file)
    config.max_record_bytes = record_bytes(config.max_record_bytes)
    result = train_r1(config)
    from dataclasses import asdict

    if PartialState().is_main_process:
        with JsonlWriter() as writer:
            writer.write(asdict(result))
    return 0
