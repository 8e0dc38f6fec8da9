"""Videos: the sampling rule, both backends picking the same frames, limits before decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import VIDEO_FPS, VIDEO_FRAMES, Media, garbage, read_code, truncate, write_video

from omnirm.errors import MediaError, UsageError
from omnirm.media import MediaLimits, load_video, sample_indices, video_info
from omnirm.media import video as video_module
from omnirm.media.video import decord_available

BACKENDS = [
    "pyav",
    pytest.param(
        "decord", marks=pytest.mark.skipif(not decord_available(), reason="decord is not installed")
    ),
]


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("frames were decoded")

    monkeypatch.setattr(video_module, "_read_pyav", refuse)
    monkeypatch.setattr(video_module, "_read_decord", refuse)


def test_sampling_rule() -> None:
    assert sample_indices(40, 8).tolist() == [2, 7, 12, 17, 22, 27, 32, 37]
    assert sample_indices(10, 3).tolist() == [1, 5, 8]
    assert sample_indices(100, 1).tolist() == [50]
    assert sample_indices(5, 8).tolist() == [0, 1, 2, 3, 4]
    assert sample_indices(0, 8).tolist() == []
    with pytest.raises(ValueError):
        sample_indices(10, 0)


def test_info_from_the_header(media: Media, no_decoding: None) -> None:
    info = video_info(media.video)
    assert (info.width, info.height) == (64, 48)
    assert info.frames == VIDEO_FRAMES and info.fps == VIDEO_FPS and info.duration == 4.0
    assert info.codec == "h264"
    # Matroska stores no frame count: estimated from duration x fps
    assert video_info(media.video_bframes).frames == 60


@pytest.mark.parametrize("backend", BACKENDS)
def test_uniform_frames_are_the_right_ones(media: Media, backend: str) -> None:
    clip = load_video(media.video, 8, backend=backend)  # type: ignore[arg-type]
    assert clip.frames.shape == (8, 48, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.indices.tolist() == [2, 7, 12, 17, 22, 27, 32, 37]
    assert [read_code(frame) for frame in clip.frames] == clip.indices.tolist()
    assert np.allclose(clip.timestamps, clip.indices / VIDEO_FPS)
    assert clip.fps == VIDEO_FPS and clip.duration == 4.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_short_video_gives_all_frames(media: Media, backend: str) -> None:
    clip = load_video(media.video, 64, backend=backend)  # type: ignore[arg-type]
    assert clip.indices.tolist() == list(range(VIDEO_FRAMES))
    assert [read_code(frame) for frame in clip.frames] == list(range(VIDEO_FRAMES))


@pytest.mark.skipif(not decord_available(), reason="decord is not installed")
@pytest.mark.parametrize("name", ["video", "video_bframes", "video_faststart"])
@pytest.mark.parametrize("count", [1, 5, 16])
def test_backends_agree(media: Media, name: str, count: int) -> None:
    path = getattr(media, name)
    first = load_video(path, count, backend="decord")
    second = load_video(path, count, backend="pyav")
    assert first.frames.shape == second.frames.shape
    assert np.array_equal(first.indices, second.indices)
    assert np.allclose(first.timestamps, second.timestamps)
    difference = np.abs(first.frames.astype(int) - second.frames.astype(int))
    assert difference.mean() < 2.0
    assert [read_code(f) for f in second.frames] == second.indices.tolist()


def test_auto_backend(media: Media) -> None:
    assert load_video(media.video, 4).indices.tolist() == [5, 15, 25, 35]


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (
            MediaLimits(max_video_frames=39),
            "video has 40 frames, over the limit of 39 (--max-video-frames)",
        ),
        (
            MediaLimits(max_video_seconds=3.5),
            "video lasts 4 s, over the limit of 3.50 (--max-video-seconds)",
        ),
        (
            MediaLimits(max_frame_pixels=3000),
            "video frames have 3072 pixels, over the limit of 3000 (--max-frame-pixels)",
        ),
    ],
)
def test_limits_are_checked_before_decoding(
    media: Media, no_decoding: None, limits: MediaLimits, message: str
) -> None:
    with pytest.raises(MediaError) as caught:
        load_video(media.video, 8, limits)
    assert caught.value.message == message
    assert caught.value.path == str(media.video)


@pytest.mark.parametrize("backend", BACKENDS)
def test_frame_limit_holds_when_the_header_has_no_count(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_video(tmp_path / "v.mkv", 30)
    real = video_module.video_info

    def header_without_length(*args: object) -> video_module.VideoInfo:
        info = real(*args)  # type: ignore[arg-type]
        return video_module.VideoInfo(info.width, info.height, 0.0, 0.0, 0, info.codec)

    monkeypatch.setattr(video_module, "video_info", header_without_length)
    with pytest.raises(MediaError, match=r"video has 30 frames, over the limit of 20"):
        load_video(path, 4, MediaLimits(max_video_frames=20), backend=backend)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", BACKENDS)
def test_broken_videos(media: Media, tmp_path: Path, backend: str) -> None:
    cases = {
        "garbage": garbage(tmp_path / "garbage.mp4"),
        "truncated (index at the end)": truncate(media.video, tmp_path / "cut.mp4"),
        "truncated (index up front)": truncate(media.video_faststart, tmp_path / "cut-fs.mp4", 0.6),
        "not a video": media.mono_wav,
    }
    for case, path in cases.items():
        with pytest.raises(MediaError) as caught:
            load_video(path, 8, backend=backend)  # type: ignore[arg-type]
        assert caught.value.path == str(path), case
    with pytest.raises(MediaError, match="file has no video stream"):
        video_info(media.mono_wav)
    with pytest.raises(MediaError, match="cannot open video"):
        video_info(cases["garbage"])


def test_truncated_file_with_intact_index_is_caught_by_pyav(media: Media, tmp_path: Path) -> None:
    path = truncate(media.video_faststart, tmp_path / "cut.mp4", 0.6)
    assert video_info(path).frames == VIDEO_FRAMES  # the header alone looks fine
    with pytest.raises(MediaError, match="video is truncated: its header lists 40 frames"):
        load_video(path, 8, backend="pyav")


def test_bad_arguments(media: Media) -> None:
    with pytest.raises(ValueError, match="num_frames"):
        load_video(media.video, 0)
    with pytest.raises(ValueError, match="unknown video backend"):
        load_video(media.video, 8, backend="opencv")  # type: ignore[arg-type]


def test_forcing_a_missing_decord_is_a_usage_error(
    media: Media, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(video_module, "decord_available", lambda: False)
    with pytest.raises(UsageError, match="decord"):
        load_video(media.video, 8, backend="decord")
    assert load_video(media.video, 2).indices.tolist() == [10, 30]  # auto falls back to PyAV


def test_missing_video(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no such file"):
        load_video(tmp_path / "missing.mp4")
