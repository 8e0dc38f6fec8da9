"""What the audio and video readers share of PyAV: opening a container, reading a duration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omnirm.errors import MediaError


def open_container(path: Path, kind: str) -> Any:
    """``av.open(path)``, with any failure (FFmpeg errors, broken files) as a :class:`MediaError`
    that says what kind of file was expected."""
    import av

    try:
        return av.open(str(path))
    except Exception as error:  # FFmpeg errors, and anything else a broken file triggers
        raise MediaError(f"cannot open {kind}: {error}", path=str(path)) from None


def stream_duration(stream: Any, container: Any) -> float:
    """Seconds, from the stream's header, else the container's; 0.0 when neither says."""
    import av

    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration / av.time_base)
    return 0.0
