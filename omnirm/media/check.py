"""Checking a record's media without loading it: ``omnirm data validate --check-media``.

Each file is opened at header level and checked against the limits: images (header, plus
Pillow's structural check, which finds truncated PNGs), videos (container header), audio
(header), meshes (header for binary STL, PLY, glb and glTF; formats without a header, such as
OBJ, are loaded). Nothing is decoded beyond that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omnirm.errors import MediaError
from omnirm.media.limits import MediaLimits
from omnirm.media.paths import MediaResolver, part_reference

if TYPE_CHECKING:
    from omnirm.media.audio import AudioInfo
    from omnirm.media.image import ImageInfo
    from omnirm.media.mesh import MeshInfo
    from omnirm.media.video import VideoInfo
    from omnirm.records import Record

    Details = ImageInfo | VideoInfo | AudioInfo | MeshInfo


@dataclass(frozen=True)
class MediaInfo:
    """One checked media file: its kind, where it was found, and what its header says."""

    kind: str
    path: Path
    details: Details


def check_media_part(
    part: Mapping[str, object], resolver: MediaResolver, limits: MediaLimits | None = None
) -> MediaInfo:
    """Resolve a media part and check its file at header level (limits default to the
    resolver's). Raises :class:`MediaError` for a missing, refused, corrupt or too-large file."""
    limits = limits if limits is not None else resolver.limits
    kind = part.get("type")
    path = resolver.resolve(part)
    details: Details
    if kind == "image":
        from omnirm.media.image import image_info

        details = image_info(path, limits, verify=True)
    elif kind == "video":
        from omnirm.media.video import video_info

        details = video_info(path, limits)
    elif kind == "audio":
        from omnirm.media.audio import audio_info

        details = audio_info(path, limits)
    elif kind == "mesh":
        from omnirm.media.mesh import mesh_info

        details = mesh_info(path, limits)
    else:
        raise MediaError(f"not a media part: type {kind!r}", path=part_reference(part))
    return MediaInfo(str(kind), path, details)


def check_record_media(
    record: Record, resolver: MediaResolver, limits: MediaLimits | None = None
) -> int:
    """Check every media part of ``record``; return how many files were opened.

    The first failure raises :class:`MediaError` carrying the record id, the field (e.g.
    ``responses[1][0]``) and the path as the record wrote it.
    """
    opened = 0
    for field, part in record.media_parts():
        try:
            check_media_part(part, resolver, limits)
        except MediaError as error:
            error.record_id = record.id
            error.field = field
            error.path = part.get("path") or part.get("url")
            raise
        opened += 1
    return opened
