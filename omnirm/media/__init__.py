"""Media for reward models: images, video frames, audio and rendered 3D meshes, with limits.

Importing this package is cheap: Pillow, numpy, PyAV, decord, soundfile, scipy and trimesh load
only when a function that needs them is first used (the loaders are imported on first access).

- :mod:`~omnirm.media.limits`: :class:`MediaLimits` (file size, pixels, frames, seconds, faces).
- :mod:`~omnirm.media.paths`: :class:`MediaResolver` (``--media-root``, outside-root and URLs).
- :mod:`~omnirm.media.image`, :mod:`~omnirm.media.video`, :mod:`~omnirm.media.audio`,
  :mod:`~omnirm.media.mesh`: ``*_info`` (header only) and ``load_*`` per kind, plus
  :func:`render_views` for meshes.
- :mod:`~omnirm.media.check`: :func:`check_record_media` for ``data validate --check-media``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from omnirm.media.check import MediaInfo, check_media_part, check_record_media
from omnirm.media.limits import DEFAULT_LIMITS, MediaLimits
from omnirm.media.paths import MediaResolver, is_url

if TYPE_CHECKING:
    from omnirm.media.audio import AudioInfo, audio_info, load_audio, resample
    from omnirm.media.image import ImageInfo, image_info, load_image
    from omnirm.media.mesh import MESH_FORMATS, MeshInfo, load_mesh, mesh_info, render_views
    from omnirm.media.video import VideoFrames, VideoInfo, load_video, sample_indices, video_info

_LAZY: dict[str, str] = {
    "AudioInfo": "audio",
    "audio_info": "audio",
    "load_audio": "audio",
    "resample": "audio",
    "ImageInfo": "image",
    "image_info": "image",
    "load_image": "image",
    "MESH_FORMATS": "mesh",
    "MeshInfo": "mesh",
    "load_mesh": "mesh",
    "mesh_info": "mesh",
    "render_views": "mesh",
    "VideoFrames": "video",
    "VideoInfo": "video",
    "load_video": "video",
    "sample_indices": "video",
    "video_info": "video",
}

__all__ = [
    "DEFAULT_LIMITS",
    "MESH_FORMATS",
    "AudioInfo",
    "ImageInfo",
    "MediaInfo",
    "MediaLimits",
    "MediaResolver",
    "MeshInfo",
    "VideoFrames",
    "VideoInfo",
    "audio_info",
    "check_media_part",
    "check_record_media",
    "image_info",
    "is_url",
    "load_audio",
    "load_image",
    "load_mesh",
    "load_video",
    "mesh_info",
    "render_views",
    "resample",
    "sample_indices",
    "video_info",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
