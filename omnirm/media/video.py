"""Videos: limits checked from the container header, then N frames sampled uniformly.

Sampling rule: a video of ``T`` frames is cut into ``N`` equal segments and the frame at the
centre of each is taken, ``index_i = floor((i + 0.5) * T / N)`` for ``i = 0 … N-1``; a video of
``T <= N`` frames gives all its frames. Frames are counted in presentation order.

decord decodes when it is installed (x86_64 wheels); PyAV is the fallback and can be forced with
``backend="pyav"``. Both pick the same frames.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from omnirm.errors import MediaError, UsageError
from omnirm.media._av import open_container, stream_duration
from omnirm.media.limits import DEFAULT_LIMITS, MediaLimits, check_file

if TYPE_CHECKING:
    import av.container
    import av.video.frame
    import av.video.stream

Backend = Literal["auto", "decord", "pyav"]

_DECORD_LOG_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ")


@dataclass(frozen=True)
class VideoInfo:
    """What a video's container header says (``frames`` is estimated from duration × fps when
    the container does not store a frame count)."""

    width: int
    height: int
    fps: float
    duration: float
    frames: int
    codec: str


@dataclass(frozen=True)
class VideoFrames:
    """Frames sampled from a video."""

    #: ``(N, H, W, 3)`` uint8 RGB.
    frames: np.ndarray
    #: ``(N,)`` source frame indices, increasing.
    indices: np.ndarray
    #: ``(N,)`` presentation time of each frame in seconds from the start of the stream.
    timestamps: np.ndarray
    #: Average frame rate of the stream.
    fps: float
    #: Duration of the video in seconds.
    duration: float


def sample_indices(total: int, num_frames: int) -> np.ndarray:
    """Centres of ``num_frames`` equal segments of ``range(total)`` (all of it if shorter)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if total <= num_frames:
        return np.arange(total, dtype=np.int64)
    segments = np.arange(num_frames, dtype=np.int64)
    return ((2 * segments + 1) * total) // (2 * num_frames)


def video_info(path: str | Path, limits: MediaLimits = DEFAULT_LIMITS) -> VideoInfo:
    """Read a video's container header (nothing is decoded) and check its limits."""
    path = check_file(path, limits)
    with open_container(path, "video") as container:
        if not container.streams.video:
            raise MediaError("file has no video stream", path=str(path))
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        duration = stream_duration(stream, container)
        info = VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=fps,
            duration=duration,
            frames=stream.frames or round(duration * fps),
            codec=stream.codec_context.name,
        )
    if info.width <= 0 or info.height <= 0:
        raise MediaError("video stream has no frame size (corrupt header?)", path=str(path))
    limits.enforce("max_video_seconds", info.duration, "video lasts {} s", path)
    limits.enforce("max_video_frames", info.frames, "video has {} frames", path)
    limits.enforce(
        "max_frame_pixels", info.width * info.height, "video frames have {} pixels", path
    )
    return info


def load_video(
    path: str | Path,
    num_frames: int = 8,
    limits: MediaLimits = DEFAULT_LIMITS,
    backend: Backend = "auto",
) -> VideoFrames:
    """Sample ``num_frames`` frames uniformly (see the module docs for the rule).

    The header is read and its limits checked before anything is decoded. ``backend`` is
    ``"auto"`` (decord if installed, else PyAV), ``"decord"`` or ``"pyav"``.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if backend not in ("auto", "decord", "pyav"):
        raise ValueError(f"unknown video backend {backend!r}; expected auto, decord or pyav")
    info = video_info(path, limits)
    if backend == "auto":
        backend = "decord" if decord_available() else "pyav"
    elif backend == "decord" and not decord_available():
        raise UsageError("the decord video backend is not installed; use backend 'pyav'")
    read = _read_decord if backend == "decord" else _read_pyav
    try:
        indices, frames, timestamps = read(Path(path), num_frames, limits)
    except MediaError:
        raise
    except Exception as error:  # decoder errors from either library
        message = _DECORD_LOG_PREFIX.sub("", str(error))
        raise MediaError(f"cannot decode video: {message}", path=str(path)) from None
    if len(indices) == 0:
        raise MediaError("video has no frames", path=str(path))
    return VideoFrames(frames, indices, timestamps, info.fps, info.duration)


@functools.cache
def decord_available() -> bool:
    """True when decord imports (its wheels exist for x86_64 only)."""
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


_Read = tuple[np.ndarray, np.ndarray, np.ndarray]


def _read_decord(path: Path, num_frames: int, limits: MediaLimits) -> _Read:
    import decord

    # Failures become MediaError; decord's FFmpeg log lines on stderr would only repeat them.
    decord.logging.set_level(decord.logging.QUIET)
    reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    total = len(reader)
    limits.enforce("max_video_frames", total, "video has {} frames", path)
    starts = np.asarray(reader.get_frame_timestamp(list(range(total))), np.float64)[:, 0]
    if total and (not np.all(np.isfinite(starts)) or starts[0] < 0 or np.any(np.diff(starts) < 0)):
        # decord mis-indexes some streams (e.g. AVI with packed B-frames); PyAV gets them right.
        return _read_pyav(path, num_frames, limits)
    indices = sample_indices(total, num_frames)
    if len(indices) == 0:
        return indices, np.zeros((0, 0, 0, 3), np.uint8), np.zeros(0)
    frames = reader.get_batch(indices.tolist()).asnumpy()
    timestamps = np.asarray(reader.get_frame_timestamp(indices.tolist()), np.float64)[:, 0]
    return indices, np.ascontiguousarray(frames, dtype=np.uint8), timestamps


def _read_pyav(path: Path, num_frames: int, limits: MediaLimits) -> _Read:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        times, keys, count = _index(container, stream, limits, path)
        indices = sample_indices(count, num_frames)
        if times is None:
            frames = _decode_in_order(container, stream, indices)
            rate = float(stream.average_rate or stream.guessed_rate or 1)
            timestamps = indices.astype(np.float64) / rate
        else:
            wanted = times[indices]
            seeker = _Seeker(container, stream, keys)
            frames = [seeker.frame_at(int(target), path) for target in wanted]
            start = stream.start_time if stream.start_time is not None else int(times[0])
            timestamps = (wanted - start).astype(np.float64) * float(stream.time_base or 0)
    if len(frames) < len(indices):
        raise MediaError("video ends before its last frame (truncated?)", path=str(path))
    stacked = np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)
    return indices, stacked, timestamps


def _index(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    limits: MediaLimits,
    path: Path,
) -> tuple[np.ndarray | None, list[int], int]:
    """Read every packet (no decoding): the frames' presentation times in order (``None`` when
    some packet has no timestamp), the keyframes' times, and the number of frames."""
    times: list[int] = []
    keys: list[int] = []
    count = 0
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        count += 1
        if count % 4096 == 0:
            limits.enforce("max_video_frames", count, "video has at least {} frames", path)
        time = packet.pts if packet.pts is not None else packet.dts
        if time is not None:
            times.append(time)
            if packet.is_keyframe:
                keys.append(time)
    limits.enforce("max_video_frames", count, "video has {} frames", path)
    if stream.frames and count < stream.frames:
        raise MediaError(
            f"video is truncated: its header lists {stream.frames} frames, the file holds {count}",
            path=str(path),
        )
    complete = len(times) == count
    return (np.sort(np.asarray(times, np.int64)) if complete else None), sorted(keys), count


def _decode_in_order(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    indices: np.ndarray,
) -> list[np.ndarray]:
    """For streams without timestamps: decode from the start, keep frames by position."""
    container.seek(0)
    wanted = set(indices.tolist())
    last = int(indices[-1]) if len(indices) else -1
    frames = []
    for position, frame in enumerate(container.decode(stream)):
        if position in wanted:
            frames.append(frame.to_ndarray(format="rgb24"))
        if position >= last:
            break
    return frames


class _Seeker:
    """Decodes the frames at given presentation times (in increasing order), seeking to the
    keyframe before each target unless decoding on from the last one is shorter."""

    def __init__(
        self,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        keys: list[int],
    ) -> None:
        self.container = container
        self.stream = stream
        self.keys = keys
        self.frames: Iterator[av.video.frame.VideoFrame] | None = None
        self.last: int | None = None

    def frame_at(self, target: int, path: Path) -> np.ndarray:
        key = max(bisect.bisect_right(self.keys, target) - 1, 0)
        key_time = self.keys[key] if self.keys else None
        reuse = (
            self.frames is not None
            and self.last is not None
            and self.last < target
            and (key_time is None or self.last >= key_time)
        )
        if not reuse:
            self._seek(key, target)
        assert self.frames is not None
        for frame in self.frames:
            self.last = frame.pts
            if frame.pts is None or frame.pts >= target:
                return frame.to_ndarray(format="rgb24")
        raise MediaError(
            "video ends before one of its frames (truncated or corrupt?)", path=str(path)
        )

    def _seek(self, key: int, target: int) -> None:
        """Seek to keyframe ``key``; step back a keyframe while the first frame decoded there
        comes after ``target`` (the container's seek can land late)."""
        while True:
            offset = self.keys[key] if self.keys else 0
            self.container.seek(offset, stream=self.stream)
            frames = self.container.decode(self.stream)
            first = next(frames, None)
            if first is None:
                self.frames = iter(())
                return
            if key == 0 or first.pts is None or first.pts <= target:
                self.frames = itertools.chain([first], frames)
                return
            key -= 1
