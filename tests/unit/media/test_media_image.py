"""Images: RGB out, transparency on white, EXIF orientation, limits before decoding, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import Media, garbage, png_header_only, truncate
from PIL import Image

from omnirm.errors import MediaError
from omnirm.media import MediaLimits, image_info, load_image


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any image's pixels get decoded."""

    def refuse(self: Image.Image) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", refuse)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", refuse)


def test_photo_loads_as_rgb(media: Media) -> None:
    image = load_image(media.photo)
    assert image.mode == "RGB" and image.size == (96, 64)
    assert np.array_equal(np.asarray(image), np.asarray(Image.open(media.photo).convert("RGB")))
    assert load_image(media.photo_jpg).size == (96, 64)


def test_rgba_is_composited_on_white(media: Media) -> None:
    pixels = np.asarray(load_image(media.rgba))
    assert pixels.shape == (10, 20, 3)
    assert (pixels[:, :10] == 255).all()
    assert (pixels[:, 10:] == (255, 0, 0)).all()


def test_background_colour_can_change(media: Media) -> None:
    pixels = np.asarray(load_image(media.rgba, background=(0, 0, 0)))
    assert (pixels[:, :10] == 0).all()


def test_palette_transparency_is_composited_on_white(media: Media) -> None:
    assert Image.open(media.palette).mode == "P"
    pixels = np.asarray(load_image(media.palette))
    assert (pixels[:, :10] == 255).all()
    assert (pixels[:, 10:] == (0, 0, 255)).all()


def test_exif_orientation_is_applied(media: Media) -> None:
    assert Image.open(media.exif).size == (40, 20)
    image = load_image(media.exif)
    assert image.size == (20, 40)  # rotated upright
    top, bottom = np.asarray(image)[2, 10], np.asarray(image)[-3, 10]
    assert top[0] > 200 and top[2] < 50  # the stored left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 50


def test_sixteen_bit_grey_is_scaled(media: Media) -> None:
    pixels = np.asarray(load_image(media.gray16))
    assert (pixels[:, :4] == 255).all() and (pixels[:, 4:] == 128).all()


def test_info_reads_the_header_only(media: Media, no_decoding: None) -> None:
    info = image_info(media.photo)
    assert (info.width, info.height, info.mode, info.format) == (96, 64, "RGB", "PNG")


def test_pixel_limit_is_checked_before_decoding(media: Media, no_decoding: None) -> None:
    limits = MediaLimits(max_image_pixels=6000)
    with pytest.raises(MediaError) as caught:
        load_image(media.photo, limits)
    assert caught.value.message == (
        "image has 6144 pixels, over the limit of 6000 (--max-image-pixels)"
    )
    assert caught.value.path == str(media.photo)


@pytest.mark.parametrize("side", [9000, 20000])  # below and above Pillow's own bomb error
def test_decompression_bomb_is_refused_from_the_header(tmp_path: Path, side: int) -> None:
    bomb = png_header_only(tmp_path / "bomb.png", side, side)
    with pytest.raises(MediaError) as caught:
        load_image(bomb)
    assert caught.value.message == (
        f"image has {side * side} pixels, over the limit of 67108864 (--max-image-pixels)"
    )


def test_file_size_limit(media: Media) -> None:
    with pytest.raises(MediaError, match=r"\(--max-file-bytes\)"):
        load_image(media.photo, MediaLimits(max_file_bytes=100))


def test_garbage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="cannot open image") as caught:
        load_image(garbage(tmp_path / "x.png"))
    assert caught.value.path == str(tmp_path / "x.png")
    with pytest.raises(MediaError, match="cannot open image"):
        image_info(tmp_path / "x.png")


@pytest.mark.parametrize("name", ["photo", "photo_jpg"])
def test_truncated_image_fails_to_decode(media: Media, tmp_path: Path, name: str) -> None:
    source: Path = getattr(media, name)
    broken = truncate(source, tmp_path / f"cut{source.suffix}")
    assert image_info(broken).width == 96  # the header alone is intact
    with pytest.raises(MediaError, match="cannot decode image: image file is truncated"):
        load_image(broken)


def test_verify_finds_a_truncated_png_without_decoding(media: Media, tmp_path: Path) -> None:
    broken = truncate(media.photo, tmp_path / "cut.png")
    with pytest.raises(MediaError, match="cannot decode image"):
        image_info(broken, verify=True)


def test_missing_image(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no such file"):
        load_image(tmp_path / "missing.png")
