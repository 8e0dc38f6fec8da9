"""Limits on the media omnirm opens, checked from file headers before anything is decoded.

Every field can be set from the command line under the same name, e.g. ``max_image_pixels`` is
``--max-image-pixels``; error messages name the option so the user knows what to raise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from omnirm.errors import MediaError


@dataclass(frozen=True)
class MediaLimits:
    """Upper bounds on one media file. A value over a bound raises :class:`MediaError`."""

    #: Size of any media file on disk (or downloaded), in bytes.
    max_file_bytes: int = 2 * 1024**3
    #: Width × height of an image, read from its header (a decompression-bomb guard).
    max_image_pixels: int = 8192 * 8192
    #: Length of a video, from the container header.
    max_video_seconds: float = 4 * 3600.0
    #: Number of frames in a video, from the container header (or duration × frame rate).
    max_video_frames: int = 1_000_000
    #: Width × height of one video frame (8K UHD by default).
    max_frame_pixels: int = 7680 * 4320
    #: Length of an audio clip (or of a video's audio track), from the header.
    max_audio_seconds: float = 30 * 60.0
    #: Bytes an audio clip decodes to, all channels as float32 (rate × channels × seconds × 4),
    #: from the header before decoding (30 minutes of 48 kHz stereo is 691 MB).
    max_audio_bytes: int = 1024**3
    #: Number of triangles in a mesh, all of a scene's geometries together (meshes above
    #: :data:`omnirm.media.mesh.SIMPLIFY_ABOVE` faces are simplified before rendering).
    max_mesh_faces: int = 2_000_000
    #: Pixel-triangle tests to render one mesh, all views together, counted from the screen
    #: boxes of its triangles before rasterizing (about 20 s of rendering on one CPU core).
    max_mesh_render_work: int = 500_000_000
    #: Wall-clock seconds to render one mesh (checked between rasterizing steps).
    max_mesh_seconds: float = 120.0

    def enforce(self, name: str, value: float, what: str, path: str | Path | None) -> None:
        """Raise :class:`MediaError` when ``value`` is over the limit ``name``.

        ``what`` describes the value with ``{}`` where it goes, e.g. ``"image has {} pixels"``.
        """
        limit: float = getattr(self, name)
        if value > limit:
            flag = "--" + name.replace("_", "-")
            raise MediaError(
                f"{what.format(_number(value))}, over the limit of {_number(limit)} ({flag})",
                path=None if path is None else str(path),
            )


DEFAULT_LIMITS = MediaLimits()


def check_file(path: str | Path, limits: MediaLimits) -> Path:
    """Check that ``path`` is a regular file within ``max_file_bytes``; return it as a Path."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise MediaError(f"no such file: {path}", path=str(path)) from None
    except OSError as error:
        raise MediaError(f"cannot open {path}: {error.strerror}", path=str(path)) from None
    if not os.path.isfile(path):
        raise MediaError(f"not a file: {path}", path=str(path))
    limits.enforce("max_file_bytes", stat.st_size, "file has {} bytes", path)
    return path


def _number(value: float) -> str:
    """An integer without a decimal point, anything else with two decimals."""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"
