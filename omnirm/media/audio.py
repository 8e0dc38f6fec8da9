"""Audio: float32 mono at a target sample rate, duration and size checked from the header first.

soundfile (libsndfile: wav, flac, ogg, mp3, …) reads what it can; PyAV reads the rest (m4a/aac,
the audio track of a video, …). Both decode block by block and average the channels to mono as
they go, so the file's channels are never all in memory (a highly compressed 8-channel FLAC at
192 kHz would otherwise take gigabytes); the mono result is resampled with
``scipy.signal.resample_poly`` to exactly ``round(n * target_rate / source_rate)`` samples.
Before anything is decoded the header must be within ``max_audio_seconds`` and
``max_audio_bytes`` (what all channels decode to as float32: rate × channels × seconds × 4).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnirm.errors import MediaError
from omnirm.media._av import open_container, stream_duration
from omnirm.media.limits import DEFAULT_LIMITS, MediaLimits, check_file


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file's header says; ``reader`` is the library that will decode it."""

    sample_rate: int
    channels: int
    duration: float
    format: str
    reader: str


#: Frames decoded at a time.
_BLOCK = 1 << 16


def audio_info(path: str | Path, limits: MediaLimits = DEFAULT_LIMITS) -> AudioInfo:
    """Read an audio file's header (soundfile, else PyAV) and check the duration and decoded
    size limits."""
    path = check_file(path, limits)
    info = _soundfile_info(path) or _pyav_info(path)
    limits.enforce("max_audio_seconds", info.duration, "audio lasts {} s", path)
    _enforce_bytes(limits, info, info.duration, path)
    return info


def _enforce_bytes(limits: MediaLimits, info: AudioInfo, seconds: float, path: Path) -> None:
    decoded = info.sample_rate * info.channels * seconds * 4
    what = (
        f"audio decodes to {{}} bytes ({info.sample_rate} Hz x {info.channels} channels x "
        f"{seconds:.2f} s as float32)"
    )
    limits.enforce("max_audio_bytes", math.ceil(decoded), what, path)


def load_audio(
    path: str | Path, sample_rate: int = 16000, limits: MediaLimits = DEFAULT_LIMITS
) -> np.ndarray:
    """Decode to a float32 mono array in [-1, 1] at ``sample_rate`` Hz (channels averaged).

    The duration limit is checked from the header before decoding (and again while PyAV
    decodes, for containers whose header does not know the length).
    """
    if sample_rate < 1:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    info = audio_info(path, limits)
    path = Path(path)
    try:
        if info.reader == "soundfile":
            samples = _soundfile_decode(path)
        else:
            samples = _pyav_decode(path, info, limits)
    except MediaError:
        raise
    except Exception as error:  # decoder errors from either library
        raise MediaError(f"cannot decode audio: {error}", path=str(path)) from None
    return resample(samples, info.sample_rate, sample_rate)


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample mono audio with a polyphase filter to exactly
    ``round(len(samples) * target_rate / source_rate)`` samples, float32 clipped to [-1, 1]."""
    samples = np.asarray(samples, dtype=np.float32)
    if source_rate != target_rate and len(samples):
        from scipy.signal import resample_poly

        divisor = math.gcd(source_rate, target_rate)
        length = round(len(samples) * target_rate / source_rate)
        up, down = target_rate // divisor, source_rate // divisor
        samples = resample_poly(samples, up, down)[:length].astype(np.float32)
    return np.clip(samples, -1.0, 1.0)


def _soundfile_info(path: Path) -> AudioInfo | None:
    """The header as libsndfile reads it, or None when libsndfile does not know the format."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except soundfile.LibsndfileError:
        return None
    if info.format in ("WAV", "WAVEX"):
        _check_riff_size(path)
    return AudioInfo(info.samplerate, info.channels, info.duration, info.format, "soundfile")


def _check_riff_size(path: Path) -> None:
    """libsndfile silently reads what is there of a truncated WAV; its RIFF header knows better."""
    with path.open("rb") as file:
        head = file.read(12)
    if len(head) < 12 or head[:4] != b"RIFF":
        return
    declared = struct.unpack("<I", head[4:8])[0]
    actual = path.stat().st_size
    if declared not in (0, 0xFFFFFFFF) and declared + 8 > actual:
        raise MediaError(
            f"audio is truncated: its header declares {declared + 8} bytes, the file has {actual}",
            path=str(path),
        )


def _pyav_info(path: Path) -> AudioInfo:
    with open_container(path, "audio") as container:
        if not container.streams.audio:
            raise MediaError("file has no audio stream", path=str(path))
        stream = container.streams.audio[0]
        duration = stream_duration(stream, container)
        rate = stream.codec_context.sample_rate
        channels = stream.codec_context.channels
        if not rate or not channels:
            raise MediaError("audio stream has no sample rate or channels", path=str(path))
        return AudioInfo(rate, channels, duration, stream.codec_context.name, "pyav")


def _soundfile_decode(path: Path) -> np.ndarray:
    """The file as mono float32, block by block into one array of the header's length."""
    import soundfile

    with soundfile.SoundFile(str(path)) as file:
        mono = np.empty(max(file.frames, 0), np.float32)
        buffer = np.empty((_BLOCK, file.channels), np.float32)  # reused: blocks are views of it
        filled = 0
        for block in file.blocks(out=buffer, dtype="float32", always_2d=True):
            if filled + len(block) > len(mono):  # more frames than the header said
                mono = np.concatenate([mono[:filled], np.empty(len(block), np.float32)])
            mono[filled : filled + len(block)] = block.mean(axis=1)
            filled += len(block)
    return mono[:filled]


def _pyav_decode(path: Path, info: AudioInfo, limits: MediaLimits) -> np.ndarray:
    import av

    resampler = av.AudioResampler(format="fltp", rate=info.sample_rate)
    chunks: list[np.ndarray] = []
    decoded = 0
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.audio[0]):
            for planar in resampler.resample(frame):
                chunks.append(planar.to_ndarray().mean(axis=0))
                decoded += planar.samples
            seconds = decoded / info.sample_rate
            limits.enforce("max_audio_seconds", seconds, "audio lasts at least {} s", path)
            _enforce_bytes(limits, info, seconds, path)
        for planar in resampler.resample(None):
            chunks.append(planar.to_ndarray().mean(axis=0))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
