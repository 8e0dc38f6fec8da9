"""Audio: mono float32 at the target rate, exact lengths, PyAV fallback, limits, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import STEREO_RATE, Media, garbage, truncate

from omnirm.errors import MediaError
from omnirm.media import MediaLimits, audio_info, load_audio, resample
from omnirm.media import audio as audio_module


def peak_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def test_wav_at_its_own_rate_is_unchanged(media: Media) -> None:
    samples = load_audio(media.mono_wav, 16000)
    written, _ = soundfile.read(media.mono_wav, dtype="float32")
    assert samples.dtype == np.float32 and samples.shape == (16000,)
    assert np.array_equal(samples, written)


def test_stereo_flac_is_averaged_and_resampled(media: Media) -> None:
    samples = load_audio(media.stereo_flac, 16000)
    assert samples.dtype == np.float32
    assert samples.shape == (round(STEREO_RATE * 16000 / STEREO_RATE),)
    assert abs(np.abs(samples[100:-100]).max() - 0.5) < 0.01  # (0.8 + 0.2) / 2
    assert peak_frequency(samples, 16000) == pytest.approx(440, abs=2)
    assert len(load_audio(media.stereo_flac, 22050)) == 22050


@pytest.mark.parametrize(
    ("length", "source", "target"),
    [
        (44101, 44100, 16000),
        (5, 32000, 16000),
        (3, 16000, 48000),
        (1000, 22050, 8000),
        (0, 44100, 16000),
    ],
)
def test_resampled_length_is_exact(length: int, source: int, target: int) -> None:
    samples = np.random.default_rng(0).uniform(-1, 1, length).astype(np.float32)
    out = resample(samples, source, target)
    assert out.shape == (round(length * target / source),) and out.dtype == np.float32
    assert np.abs(out).max(initial=0) <= 1.0


def test_m4a_falls_back_to_pyav(media: Media) -> None:
    info = audio_info(media.m4a)
    assert (info.reader, info.format, info.sample_rate, info.channels) == ("pyav", "aac", 44100, 2)
    samples = load_audio(media.m4a, 16000)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert 16000 <= len(samples) <= 16000 * 1.1  # AAC adds a little priming and padding
    assert peak_frequency(samples, 16000) == pytest.approx(440, abs=2)
    assert abs(np.abs(samples[2000:-2000]).max() - 0.5) < 0.05


def test_audio_track_of_a_video(media: Media) -> None:
    samples = load_audio(media.video_audio, 8000)
    assert 8000 <= len(samples) <= 8000 * 1.1
    assert peak_frequency(samples, 8000) == pytest.approx(440, abs=2)
    with pytest.raises(MediaError, match="file has no audio stream"):
        load_audio(media.video)


@pytest.mark.parametrize("name", ["mono_wav", "m4a"])
def test_duration_limit_is_checked_before_decoding(
    media: Media, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("audio was decoded")

    monkeypatch.setattr(soundfile, "read", refuse)
    monkeypatch.setattr(audio_module, "_pyav_decode", refuse)
    path = getattr(media, name)
    with pytest.raises(MediaError) as caught:
        load_audio(path, 16000, MediaLimits(max_audio_seconds=0.5))
    assert caught.value.message.startswith("audio lasts 1")
    assert caught.value.message.endswith("over the limit of 0.50 (--max-audio-seconds)")
    assert caught.value.path == str(path)


def test_duration_limit_holds_while_pyav_decodes(
    media: Media, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = audio_module._pyav_info

    def header_without_length(path: Path) -> audio_module.AudioInfo:
        info = real(path)
        return audio_module.AudioInfo(info.sample_rate, info.channels, 0.0, info.format, "pyav")

    monkeypatch.setattr(audio_module, "_pyav_info", header_without_length)
    with pytest.raises(MediaError, match=r"audio lasts at least 0\.\d+ s, over the limit of 0\.50"):
        load_audio(media.m4a, 16000, MediaLimits(max_audio_seconds=0.5))


def test_broken_audio(media: Media, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="cannot open audio"):
        load_audio(garbage(tmp_path / "x.wav"))
    with pytest.raises(MediaError, match="audio is truncated"):
        load_audio(truncate(media.mono_wav, tmp_path / "cut.wav"))
    with pytest.raises(MediaError, match="cannot decode audio"):
        load_audio(truncate(media.stereo_flac, tmp_path / "cut.flac"))
    with pytest.raises(MediaError, match="cannot open audio"):
        load_audio(truncate(media.m4a, tmp_path / "cut.m4a"))
    with pytest.raises(MediaError, match="no such file"):
        load_audio(tmp_path / "missing.wav")


def test_bad_sample_rate(media: Media) -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        load_audio(media.mono_wav, 0)


def test_decoded_size_is_limited_from_the_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tiny FLAC of silence at 192 kHz × 8 channels decodes to megabytes: refused before
    decoding; the issue's 600 s of it (3.7 GB decoded) is over the default limit."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("audio was decoded")

    path = tmp_path / "bomb.flac"
    with soundfile.SoundFile(path, "w", samplerate=192000, channels=8, format="FLAC") as file:
        for _ in range(5):
            file.write(np.zeros((192000, 8), np.float32))
    assert path.stat().st_size < 20_000
    monkeypatch.setattr(audio_module, "_soundfile_decode", refuse)
    with pytest.raises(MediaError) as caught:
        load_audio(path, 16000, MediaLimits(max_audio_bytes=10_000_000))
    assert caught.value.message == (
        "audio decodes to 30720000 bytes (192000 Hz x 8 channels x 5.00 s as float32), "
        "over the limit of 10000000 (--max-audio-bytes)"
    )
    long = audio_module.AudioInfo(192000, 8, 600.0, "FLAC", "soundfile")
    monkeypatch.setattr(audio_module, "_soundfile_info", lambda p: long)
    with pytest.raises(MediaError, match="decodes to 3686400000 bytes"):
        audio_info(path)


def test_channels_are_mixed_to_mono_block_by_block(tmp_path: Path) -> None:
    """Decoding holds the mono clip, never all channels at once; values as a whole read."""
    import tracemalloc

    rate, channels, seconds = 48000, 8, 30
    t = np.arange(rate * seconds) / rate
    waves = np.stack([0.1 * (c + 1) * np.sin(2 * np.pi * 110 * (c + 1) * t) for c in range(8)], 1)
    path = tmp_path / "eight.flac"
    soundfile.write(path, waves.astype(np.float32), rate)
    expected = soundfile.read(path, dtype="float32", always_2d=True)[0].mean(axis=1)
    load_audio(path, 16000)  # scipy imported before measuring
    tracemalloc.start()
    try:
        samples = load_audio(path, rate)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(samples, np.clip(expected, -1, 1))
    assert peak < 0.4 * rate * seconds * channels * 4
