"""The media options (``--allow-urls``, ``--max-*``) shared by data validate, train bt and score,
built by one helper (:func:`omnirm.cli.common.media_limits`); ``train bt``'s mesh settings."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from omnirm.cli.common import MEDIA_LIMITS, media_limits
from omnirm.errors import UsageError
from omnirm.media.limits import MediaLimits
from tests.conftest import make_record, write_jsonl

LIMIT_OPTIONS = {
    "--max-file-bytes": ("max_file_bytes", "1000", 1000),
    "--max-image-pixels": ("max_image_pixels", "10", 10),
    "--max-video-seconds": ("max_video_seconds", "2.5", 2.5),
    "--max-video-frames": ("max_video_frames", "30", 30),
    "--max-frame-pixels": ("max_frame_pixels", "640", 640),
    "--max-audio-seconds": ("max_audio_seconds", "1.5", 1.5),
    "--max-audio-bytes": ("max_audio_bytes", "4096", 4096),
    "--max-mesh-faces": ("max_mesh_faces", "99", 99),
    "--max-mesh-render-work": ("max_mesh_render_work", "5000", 5000),
    "--max-mesh-seconds": ("max_mesh_seconds", "0.5", 0.5),
}


def test_media_limits_defaults_and_values() -> None:
    assert media_limits() == MediaLimits() == MEDIA_LIMITS
    values = {name: value for name, _, value in LIMIT_OPTIONS.values()}
    assert media_limits(**values) == MediaLimits(**values)
    assert media_limits(max_image_pixels=10) == MediaLimits(max_image_pixels=10)
    assert media_limits(max_video_seconds=math.inf).max_video_seconds == math.inf


@pytest.mark.parametrize(
    ("name", "value"),
    [("max_file_bytes", 0), ("max_image_pixels", -1), ("max_audio_seconds", 0.0),
     ("max_video_seconds", math.nan)],
)  # fmt: skip
def test_media_limits_refuses_non_positive_values(name: str, value: float) -> None:
    flag = "--" + name.replace("_", "-")
    with pytest.raises(UsageError, match=f"^{flag} must be positive"):
        media_limits(**{name: value})


def _parse(*path: str, args: list[str]) -> dict[str, Any]:
    """The parameters click parses for ``omnirm PATH… ARGS`` (the command does not run)."""
    from omnirm.cli.main import build_command

    command = build_command()
    for name in path:
        command = command.commands[name]
    return command.make_context(" ".join(path), list(args)).params  # click consumes the list


@pytest.mark.parametrize(
    ("path", "required"),
    [(["data", "validate"], []), (["score"], []),
     (["train", "bt"], ["--model", "m", "--data", "d.jsonl", "-o", "out"])],
)  # fmt: skip
def test_media_options_are_the_same_on_every_command(path: list[str], required: list[str]) -> None:
    defaults = _parse(*path, args=required)
    assert defaults["allow_urls"] is False
    for name, _, _ in LIMIT_OPTIONS.values():
        assert defaults[name] == getattr(MediaLimits(), name)
    args = [*required, "--allow-urls"]
    for flag, (_, text, _) in LIMIT_OPTIONS.items():
        args += [flag, text]
    params = _parse(*path, args=args)
    assert params["allow_urls"] is True
    for name, _, value in LIMIT_OPTIONS.values():
        assert params[name] == value


@pytest.mark.parametrize("command", [["score"], ["train", "bt"]])
def test_help_lists_the_media_options(
    cli, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "200")  # no wrapped option names
    result = cli(*command, "--help")
    assert result.code == 0
    for flag in ["--allow-urls", "--media-root", "--allow-outside-root", *LIMIT_OPTIONS]:
        assert flag in result.stdout
    assert "Media limits" in result.stdout


def test_train_mesh_options_parse() -> None:
    required = ["--model", "m", "--data", "d.jsonl", "-o", "out"]
    assert _parse("train", "bt", args=required)["mesh_views"] == 4
    assert _parse("train", "bt", args=required)["mesh_size"] == 256
    params = _parse("train", "bt", args=[*required, "--mesh-views", "2", "--mesh-size", "64"])
    assert (params["mesh_views"], params["mesh_size"]) == (2, 64)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--mesh-views", "0"], "--mesh-views must be at least 1, got 0"),
     (["--mesh-size", "-3"], "--mesh-size must be at least 1, got -3"),
     (["--max-mesh-faces", "0"], "--max-mesh-faces must be positive, got 0")],
)  # fmt: skip
def test_train_refuses_bad_media_settings_with_exit_2(
    cli, tmp_path: Path, args: list[str], message: str
) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "d.jsonl", [make_record()])
    result = cli("train", "bt", "--model", str(tmp_path / "no-model"), "--data", str(data),
                 "-o", str(tmp_path / "rm"), *args)  # fmt: skip
    assert result.code == 2, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "rm").exists()


def test_score_and_validate_refuse_a_non_positive_limit(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "d.jsonl", [make_record()])
    for command in (["score", "--model", str(tmp_path / "no-model")], ["data", "validate"]):
        result = cli(*command, "--max-image-pixels", "0", str(data))
        assert result.code == 2, result.stderr
        assert "--max-image-pixels must be positive" in result.stderr
