"""check_record_media: what ``data validate --check-media`` calls; and the package's imports."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Media, truncate

from omnirm.data.validate import validate_records
from omnirm.errors import MediaError
from omnirm.media import (
    MediaLimits,
    MediaResolver,
    check_media_part,
    check_record_media,
)
from omnirm.media.audio import AudioInfo
from omnirm.media.image import ImageInfo
from omnirm.media.mesh import MeshInfo
from omnirm.media.video import VideoInfo
from omnirm.on_error import ErrorPolicy
from omnirm.records import parse_record
from tests.conftest import make_record, write_jsonl


def omni_record(record_id: str = "r1", **paths: str) -> dict[str, Any]:
    chosen = {"image": "photo.png", "video": "video.mp4", "audio": "mono.wav", "mesh": "sphere.glb"}
    chosen.update(paths)
    return make_record(
        record_id,
        prompt=[
            {"type": "text", "text": "Which is better?"},
            {"type": "image", "path": chosen["image"]},
            {"type": "audio", "path": chosen["audio"]},
        ],
        responses=[
            [{"type": "video", "path": chosen["video"]}],
            [{"type": "text", "text": "a mesh:"}, {"type": "mesh", "path": chosen["mesh"]}],
        ],
    )


def test_all_kinds_are_checked_and_counted(media: Media) -> None:
    record = parse_record(omni_record())
    assert check_record_media(record, MediaResolver(media.root)) == 4


def test_part_details(media: Media) -> None:
    resolver = MediaResolver(media.root)
    kinds = {
        "image": ("photo.png", ImageInfo),
        "video": ("video.mp4", VideoInfo),
        "audio": ("tone.m4a", AudioInfo),
        "mesh": ("obj/quad.obj", MeshInfo),
    }
    for kind, (path, details) in kinds.items():
        info = check_media_part({"type": kind, "path": path}, resolver)
        assert info.kind == kind and info.path == media.root / path
        assert isinstance(info.details, details)
    with pytest.raises(MediaError, match="not a media part"):
        check_media_part({"type": "text", "path": "photo.png"}, resolver)


def test_error_names_record_field_and_path_as_written(media: Media) -> None:
    record = parse_record(omni_record("ab-3", mesh="meshes/missing.glb"))
    with pytest.raises(MediaError) as caught:
        check_record_media(record, MediaResolver(media.root))
    error = caught.value
    assert (error.record_id, error.field, error.path) == (
        "ab-3",
        "responses[1][1]",
        "meshes/missing.glb",
    )
    assert str(error) == (
        f"record 'ab-3': responses[1][1]: no such file: {media.root / 'meshes/missing.glb'}"
    )
    assert error.to_dict()["path"] == "meshes/missing.glb"


@pytest.mark.parametrize(
    ("paths", "field", "message"),
    [
        ({"image": "../outside.png"}, "prompt[1]", "pass --allow-outside-root"),
        ({"image": "cut.png"}, "prompt[1]", "cannot decode image"),
        ({"audio": "video.mp4"}, "prompt[2]", "file has no audio stream"),
        ({"video": "mono.wav"}, "responses[0][0]", "file has no video stream"),
        ({"mesh": "https://example.com/m.glb"}, "responses[1][1]", "media URLs are not allowed"),
    ],
)
def test_bad_media_is_reported(
    media: Media, tmp_path: Path, paths: dict[str, str], field: str, message: str
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside.png").write_bytes(media.photo.read_bytes())
    for name in ("photo.png", "video.mp4", "mono.wav", "sphere.glb"):
        shutil.copy(media.root / name, root / name)
    truncate(media.photo, root / "cut.png")
    record = parse_record(omni_record(**paths))
    with pytest.raises(MediaError) as caught:
        check_record_media(record, MediaResolver(root))
    assert caught.value.field == field and caught.value.record_id == "r1"
    assert message in caught.value.message
    assert caught.value.path == next(iter(paths.values()))


def test_limits_are_applied(media: Media) -> None:
    record = parse_record(omni_record())
    with pytest.raises(MediaError, match=r"\(--max-mesh-faces\)") as caught:
        check_record_media(record, MediaResolver(media.root), MediaLimits(max_mesh_faces=10))
    assert caught.value.field == "responses[1][1]"
    strict = MediaResolver(media.root, limits=MediaLimits(max_image_pixels=10))
    with pytest.raises(MediaError, match=r"\(--max-image-pixels\)"):
        check_record_media(record, strict)


def test_plugs_into_validate_records(media: Media, tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "data.jsonl",
        [omni_record("good"), omni_record("bad", audio="nothing.wav"), make_record("text")],
    )
    policy = ErrorPolicy("skip")
    check = functools.partial(check_record_media, resolver=MediaResolver(media.root))
    report = validate_records(source, policy, media_check=check)
    assert (report.valid, report.invalid, report.media_files) == (2, 1, 4)
    with pytest.raises(MediaError) as caught:
        validate_records(source, ErrorPolicy("fail"), media_check=check)
    assert str(caught.value).startswith(f"{source}:2: record 'bad': prompt[2]: no such file")


def test_importing_the_package_is_cheap() -> None:
    code = (
        "import sys, omnirm.media as m; "
        "heavy = {'numpy', 'PIL', 'av', 'decord', 'trimesh', 'scipy', 'soundfile', 'torch'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
