"""Options shared by several commands, so every command spells them the same way."""

from __future__ import annotations

from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from omnirm.errors import UsageError
from omnirm.jsonl import MAX_RECORD_BYTES as MAX_RECORD_BYTES  # the --max-record-bytes default
from omnirm.media.limits import MediaLimits
from omnirm.on_error import OnError
from omnirm.options import MODEL_DEFAULTS, MediaOptions
from omnirm.options import record_bytes as record_bytes

InputArg = Annotated[
    str,
    typer.Argument(help="JSONL input file, or - for standard input.", metavar="FILE|-"),
]
OutputOpt = Annotated[
    Optional[Path],  # noqa: UP045  (typer needs the Optional spelling on py3.10)
    typer.Option(
        "--output",
        "-o",
        help="Write JSONL here instead of standard output.",
        metavar="FILE",
        dir_okay=False,
    ),
]
OnErrorOpt = Annotated[
    OnError,
    typer.Option(
        "--on-error",
        help="What to do with a bad record: stop (fail), leave it out (skip), or write it out "
        "with an 'error' key (record).",
        case_sensitive=False,
    ),
]
RewardModelOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--model",
        "-m",
        help="A reward model written by omnirm train bt: a folder, or a hub id ORG/NAME "
        "\\[default: the embedded omnirm-default model, unless --judge is given].",
        metavar="DIR|ORG/NAME",
    ),
]
RevisionOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        help="Hub revision (branch, tag or commit) of a model given as a hub id ORG/NAME "
        "(--model, --judge hf:ORG/NAME) \\[default: main].",
        metavar="REV",
    ),
]
TrustRemoteCodeOpt = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code",
        help="Run the code that a model folder names (auto_map in its configs: a custom "
        "tokenizer, processor or model class), for --model and --judge hf:/vllm:. Off unless "
        "given here: a model's own config never turns it on. Read the code first.",
    ),
]
ScoreMaxLengthOpt = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(
        "--max-length",
        help="Token budget per sequence when scoring; longer prompts are cut from the left "
        "\\[default: the backbone's context window (max_position_embeddings), at most 8192 "
        "tokens, and never below the length the model was trained at].",
        metavar="TOKENS",
    ),
]
CriteriaOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(help="Criterion for every record, overriding the records' own."),
]
BatchSizeOpt = Annotated[
    int, typer.Option(help="Sequences per forward pass (hf: judge requests per batch).")
]
DeviceOpt = Annotated[str, typer.Option(help="cpu, cuda, cuda:1 … [default: cuda if available]")]
#: The defaults of the reward-model options (declare them as ``= MODEL.batch_size`` …).
MODEL = MODEL_DEFAULTS


class Dtype(str, Enum):
    """``--dtype`` (:data:`omnirm.models.devices.DTYPES`)."""

    AUTO = "auto"
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"


DtypeOpt = Annotated[
    Dtype,
    typer.Option(
        help="Precision the reward model's weights load and run in: auto is bfloat16 on a CUDA "
        "device that supports it (half the memory) and float32 elsewhere (a CPU's exact "
        "reference). scored_by.precision says which; a --resume or a cache never mixes two."
    ),
]
MediaRootOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--media-root",
        help="Folder that relative media paths resolve against "
        "\\[default: the input file's folder, or the working directory for stdin].",
        metavar="DIR",
        file_okay=False,
    ),
]
AllowOutsideRootOpt = Annotated[
    bool,
    typer.Option(
        "--allow-outside-root",
        help="Allow media paths that resolve outside the media root (absolute paths, '..').",
    ),
]


AllowUrlsOpt = Annotated[
    bool,
    typer.Option(
        "--allow-urls", help="Allow http(s) media URLs (downloaded once per run, size-capped)."
    ),
]

_LIMITS_PANEL = "Media limits"
#: The defaults of the ``--max-*`` options (declare them as ``= MEDIA_LIMITS.max_file_bytes`` …).
MEDIA_LIMITS = MediaLimits()
MaxFileBytesOpt = Annotated[
    int,
    typer.Option(help="Largest media file, in bytes.", rich_help_panel=_LIMITS_PANEL),
]
MaxImagePixelsOpt = Annotated[
    int,
    typer.Option(
        help="Most pixels in an image (width x height, read from the header before decoding).",
        rich_help_panel=_LIMITS_PANEL,
    ),
]
MaxVideoSecondsOpt = Annotated[
    float,
    typer.Option(help="Longest video, from the container header.", rich_help_panel=_LIMITS_PANEL),
]
MaxVideoFramesOpt = Annotated[
    int,
    typer.Option(help="Most frames in a video, from the header.", rich_help_panel=_LIMITS_PANEL),
]
MaxFramePixelsOpt = Annotated[
    int,
    typer.Option(help="Most pixels in one video frame.", rich_help_panel=_LIMITS_PANEL),
]
MaxAudioSecondsOpt = Annotated[
    float,
    typer.Option(help="Longest audio clip, from the header.", rich_help_panel=_LIMITS_PANEL),
]
MaxAudioBytesOpt = Annotated[
    int,
    typer.Option(
        help="Most bytes an audio clip decodes to (sample rate x channels x seconds x 4, from "
        "the header before decoding).",
        rich_help_panel=_LIMITS_PANEL,
    ),
]
MaxMeshFacesOpt = Annotated[
    int,
    typer.Option(
        help="Most triangles in a mesh (larger meshes are simplified before rendering).",
        rich_help_panel=_LIMITS_PANEL,
    ),
]
MaxMeshRenderWorkOpt = Annotated[
    int,
    typer.Option(
        help="Most pixel-triangle tests to render one mesh (all views), counted from the "
        "triangles' screen boxes before rasterizing.",
        rich_help_panel=_LIMITS_PANEL,
    ),
]
MaxMeshSecondsOpt = Annotated[
    float,
    typer.Option(help="Longest time to render one mesh.", rich_help_panel=_LIMITS_PANEL),
]
MaxRecordBytesOpt = Annotated[
    int,
    typer.Option(
        help="Longest JSONL line read as a record, in bytes: a longer one is a record error, "
        "refused before it is parsed.",
    ),
]


def media_limits(
    *,
    max_file_bytes: int = MEDIA_LIMITS.max_file_bytes,
    max_image_pixels: int = MEDIA_LIMITS.max_image_pixels,
    max_video_seconds: float = MEDIA_LIMITS.max_video_seconds,
    max_video_frames: int = MEDIA_LIMITS.max_video_frames,
    max_frame_pixels: int = MEDIA_LIMITS.max_frame_pixels,
    max_audio_seconds: float = MEDIA_LIMITS.max_audio_seconds,
    max_audio_bytes: int = MEDIA_LIMITS.max_audio_bytes,
    max_mesh_faces: int = MEDIA_LIMITS.max_mesh_faces,
    max_mesh_render_work: int = MEDIA_LIMITS.max_mesh_render_work,
    max_mesh_seconds: float = MEDIA_LIMITS.max_mesh_seconds,
) -> MediaLimits:
    """The :class:`MediaLimits` that the ``--max-*`` options ask for (pass the command's values
    by name). Raises :class:`UsageError` (exit 2) for a limit that is not positive."""
    limits = MediaLimits(
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
    for field in fields(limits):
        value = getattr(limits, field.name)
        if not value > 0:  # also refuses nan
            raise UsageError(f"--{field.name.replace('_', '-')} must be positive, got {value}")
    return limits


def media_options(
    *,
    media_root: Path | None,
    allow_outside_root: bool,
    allow_urls: bool,
    max_file_bytes: int,
    max_image_pixels: int,
    max_video_seconds: float,
    max_video_frames: int,
    max_frame_pixels: int,
    max_audio_seconds: float,
    max_audio_bytes: int,
    max_mesh_faces: int,
    max_mesh_render_work: int,
    max_mesh_seconds: float,
) -> MediaOptions:
    """The :class:`~omnirm.options.MediaOptions` of the media options above (pass each by
    name); a limit that is not positive is a :class:`UsageError` (exit 2)."""
    limits = media_limits(
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
    return MediaOptions(
        root=media_root,
        allow_outside_root=allow_outside_root,
        allow_urls=allow_urls,
        limits=limits,
    )


def given_options(ctx: typer.Context) -> set[str]:
    """The parameters the command line (or the environment) set, not their defaults."""
    return {  # typer vendors click, so the source is told by name
        name
        for name in ctx.params
        if getattr(ctx.get_parameter_source(name), "name", None) in ("COMMANDLINE", "ENVIRONMENT")
    }
