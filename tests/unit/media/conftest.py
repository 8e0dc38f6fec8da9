"""Real media made at test time: photos from scikit-image, tones written with soundfile, videos
and AAC audio encoded with PyAV, meshes built with trimesh. Nothing binary is committed."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
import trimesh
from PIL import Image

VIDEO_FRAMES = 40
VIDEO_FPS = 10
VIDEO_SIZE = (64, 48)  # width, height
STEREO_RATE = 44100


def code_frame(index: int, width: int = 64, height: int = 48) -> np.ndarray:
    """A frame whose 8 vertical stripes spell ``index`` in binary (white = 1), robust to lossy
    coding; :func:`read_code` reads it back."""
    frame = np.zeros((height, width, 3), np.uint8)
    for bit in range(8):
        if (index >> bit) & 1:
            frame[:, bit * 8 : (bit + 1) * 8] = 255
    return frame


def read_code(frame: np.ndarray) -> int:
    return sum(1 << bit for bit in range(8) if frame[:, bit * 8 + 2 : bit * 8 + 6].mean() > 128)


def write_video(
    path: Path,
    frames: int = VIDEO_FRAMES,
    *,
    fps: int = VIDEO_FPS,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    audio_seconds: float = 0.0,
) -> Path:
    """An H.264 video of coded frames (see :func:`code_frame`), optionally with an AAC track."""
    width, height = VIDEO_SIZE
    with av.open(str(path), "w", options=container_options or {}) as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = options if options is not None else {"preset": "ultrafast", "crf": "10"}
        audio = container.add_stream("aac", rate=16000, layout="mono") if audio_seconds else None
        for index in range(frames):
            picture = av.VideoFrame.from_ndarray(code_frame(index), format="rgb24")
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        if audio is not None:
            samples = tone(16000, audio_seconds, 440.0, 0.5)[None, :]
            _encode_audio(container, audio, samples, 16000)
    return path


def tone(rate: int, seconds: float, frequency: float, amplitude: float) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def _encode_audio(
    container: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    samples: np.ndarray,
    rate: int,
) -> None:
    layout = "mono" if samples.shape[0] == 1 else "stereo"
    for start in range(0, samples.shape[1], 1024):
        chunk = np.ascontiguousarray(samples[:, start : start + 1024])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate = rate
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_m4a(path: Path, seconds: float = 1.0, rate: int = STEREO_RATE) -> Path:
    samples = np.stack([tone(rate, seconds, 440.0, 0.5), tone(rate, seconds, 440.0, 0.5)])
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "stereo"
        _encode_audio(container, stream, samples, rate)
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` but holds almost no data (a 'bomb'
    that must be refused from the header alone)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def truncate(source: Path, target: Path, fraction: float = 0.5) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def garbage(path: Path, size: int = 4000) -> Path:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


@dataclass(frozen=True)
class Media:
    """Paths of the generated media (all in one folder, ``root``)."""

    root: Path
    photo: Path  # 96x64 RGB PNG of the scikit-image astronaut
    photo_jpg: Path
    rgba: Path  # 20x10: left half fully transparent, right half opaque red
    palette: Path  # P mode 20x10: index 0 transparent (left half), index 1 opaque blue
    exif: Path  # JPEG stored 40x20 (left red, right blue) with EXIF orientation 6
    gray16: Path  # 16-bit grayscale PNG: left 65535, right 32768
    video: Path  # 40 coded frames, 10 fps, 64x48, H.264, moov at the end
    video_bframes: Path  # 60 frames with B-frames (x264 defaults), in Matroska
    video_faststart: Path  # like ``video`` with the index up front
    video_audio: Path  # 10 frames + 1 s AAC 440 Hz mono at 16 kHz
    mono_wav: Path  # 1 s 440 Hz at 16 kHz, amplitude 0.5
    stereo_flac: Path  # 1 s at 44.1 kHz: left 0.8, right 0.2 sine at 440 Hz
    m4a: Path  # 1 s AAC stereo 44.1 kHz
    mesh_glb: Path  # red icosphere (320 faces), vertex colours
    mesh_obj: Path
    mesh_ply: Path
    mesh_stl: Path
    textured_glb: Path  # a quad facing +z with a 2x2 texture (red, green / blue, yellow)
    textured_obj: Path


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    from skimage import data

    root = tmp_path_factory.mktemp("media")

    photo = Image.fromarray(data.astronaut()).resize((96, 64))
    photo.save(root / "photo.png")
    photo.save(root / "photo.jpg", quality=90)

    rgba = np.zeros((10, 20, 4), np.uint8)
    rgba[:, 10:] = (255, 0, 0, 255)
    Image.fromarray(rgba, "RGBA").save(root / "rgba.png")

    palette = Image.fromarray(
        np.where(np.arange(20) < 10, 0, 1).astype(np.uint8)[None].repeat(10, 0), "P"
    )
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    palette.save(root / "palette.png", transparency=0)

    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    Image.fromarray(stored).save(root / "exif.jpg", exif=exif, quality=95)

    gray = np.zeros((8, 8), np.uint16)
    gray[:, :4], gray[:, 4:] = 65535, 32768
    Image.fromarray(gray).save(root / "gray16.png")

    write_video(root / "video.mp4")
    write_video(root / "bframes.mkv", 60, options={"g": "12", "bf": "3"})
    write_video(root / "faststart.mp4", container_options={"movflags": "faststart"})
    write_video(root / "with_audio.mp4", 10, audio_seconds=1.0)

    soundfile.write(root / "mono.wav", tone(16000, 1.0, 440.0, 0.5), 16000)
    left, right = tone(STEREO_RATE, 1.0, 440.0, 0.8), tone(STEREO_RATE, 1.0, 440.0, 0.2)
    soundfile.write(root / "stereo.flac", np.stack([left, right], axis=1), STEREO_RATE)
    write_m4a(root / "tone.m4a")

    sphere = trimesh.creation.icosphere(subdivisions=2)
    sphere.visual.vertex_colors = np.tile([255, 0, 0, 255], (len(sphere.vertices), 1))
    for extension in ("glb", "obj", "ply", "stl"):
        sphere.export(root / f"sphere.{extension}")

    texture = np.zeros((64, 64, 3), np.uint8)
    texture[:32, :32], texture[:32, 32:] = (255, 0, 0), (0, 255, 0)
    texture[32:, :32], texture[32:, 32:] = (0, 0, 255), (255, 255, 0)
    quad = textured_quad(Image.fromarray(texture))
    quad.export(root / "quad.glb")
    (root / "obj").mkdir()
    quad.export(root / "obj" / "quad.obj")

    return Media(
        root=root,
        photo=root / "photo.png",
        photo_jpg=root / "photo.jpg",
        rgba=root / "rgba.png",
        palette=root / "palette.png",
        exif=root / "exif.jpg",
        gray16=root / "gray16.png",
        video=root / "video.mp4",
        video_bframes=root / "bframes.mkv",
        video_faststart=root / "faststart.mp4",
        video_audio=root / "with_audio.mp4",
        mono_wav=root / "mono.wav",
        stereo_flac=root / "stereo.flac",
        m4a=root / "tone.m4a",
        mesh_glb=root / "sphere.glb",
        mesh_obj=root / "sphere.obj",
        mesh_ply=root / "sphere.ply",
        mesh_stl=root / "sphere.stl",
        textured_glb=root / "quad.glb",
        textured_obj=root / "obj" / "quad.obj",
    )


def textured_quad(image: Image.Image) -> trimesh.Trimesh:
    """A 2x2 quad in the z=0 plane facing +z, UV (0,0) at bottom-left, with ``image`` as its
    glTF base colour (factor 1, so the texture shows as it is)."""
    vertices = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], float)
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=image, baseColorFactor=[255, 255, 255, 255]
    )
    visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return trimesh.Trimesh(vertices, [[0, 1, 2], [0, 2, 3]], visual=visual, process=False)
