"""Images with Pillow: size checked from the header before decoding, EXIF orientation applied,
transparency composited on a background colour (white by default), always RGB out."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from omnirm.errors import MediaError
from omnirm.media.limits import DEFAULT_LIMITS, MediaLimits, check_file

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


@dataclass(frozen=True)
class ImageInfo:
    """What an image's header says."""

    width: int
    height: int
    mode: str
    format: str | None


@contextmanager
def _open(path: str | Path, limits: MediaLimits) -> Iterator[Image.Image]:
    """Open lazily (header only), check the pixel count, and turn failures into MediaError."""
    path = check_file(path, limits)
    try:
        with warnings.catch_warnings():
            # We check the size ourselves, against our own (configurable) limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as error:
        found = re.search(r"\((\d+) pixels\)", str(error))
        limits.enforce(
            "max_image_pixels", int(found.group(1)) if found else 0, "image has {} pixels", path
        )
        raise MediaError(f"cannot open image: {error}", path=str(path)) from None
    except Exception as error:  # Pillow raises many types on malformed input
        raise MediaError(f"cannot open image: {error}", path=str(path)) from None
    with image:
        width, height = image.size
        limits.enforce("max_image_pixels", width * height, "image has {} pixels", path)
        try:
            yield image
        except MediaError:
            raise
        except Exception as error:
            raise MediaError(f"cannot decode image: {error}", path=str(path)) from None


def image_info(
    path: str | Path, limits: MediaLimits = DEFAULT_LIMITS, *, verify: bool = False
) -> ImageInfo:
    """Read an image's header and check its limits without decoding the pixels.

    With ``verify``, Pillow also checks the file's structure (for PNG, every chunk's checksum,
    which finds truncated files) — still without decoding.
    """
    with _open(path, limits) as image:
        info = ImageInfo(image.width, image.height, image.mode, image.format)
        if verify:
            image.verify()
    return info


def load_image(
    path: str | Path,
    limits: MediaLimits = DEFAULT_LIMITS,
    *,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Decode an image to RGB: pixel limit checked first, EXIF orientation applied, any
    transparency (alpha, or a palette/tRNS transparent colour) composited on ``background``."""
    with _open(path, limits) as image:
        image.load()
        return _to_rgb(ImageOps.exif_transpose(image), background)


def _to_rgb(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    if image.mode in _SIXTEEN_BIT:
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        canvas = Image.new("RGBA", image.size, (*background, 255))
        canvas.alpha_composite(image.convert("RGBA"))
        return canvas.convert("RGB")
    return image.convert("RGB")
