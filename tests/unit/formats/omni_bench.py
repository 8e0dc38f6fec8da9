"""Miniature Omni-RewardBench copies for tests, in both layouts the converter reads.

The rows come from ``tests/fixtures/formats/omni_rewardbench`` (the authors' JSON layout). The hub
layout is built from them here: one parquet file per task config (``CONFIG/test-00000-of-00001.
parquet``; the editing task under ``CONFIG/data/``), image and audio columns as HF's ``{bytes,
path}`` structs holding tiny real PNG/WAV data, plus the ``*_path`` columns, as the hub's
``dataset_info`` lists them.
"""

from __future__ import annotations

import io
import json
import shutil
import wave
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "formats" / "omni_rewardbench"

CONFIGS = (
    "text_to_text",
    "text_image_to_text",
    "text_video_to_text",
    "text_audio_to_text",
    "text_to_image",
    "text_to_video",
    "text_to_audio",
    "text_to_3D",
    "text_image_to_image",
)

#: Columns holding HF Image/Audio structs in the hub layout, by config (the rest are strings).
STRUCT_COLUMNS: dict[str, tuple[str, ...]] = {
    "text_image_to_text": ("image",),
    "text_audio_to_text": ("audio",),
    "text_to_image": ("response1", "response2"),
    "text_to_audio": ("response1", "response2"),
    "text_to_3D": ("response1", "response2"),
    "text_image_to_image": ("image", "response1", "response2"),
}

MEDIA_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def fixture_rows(config: str) -> list[dict[str, Any]]:
    """The JSON-layout rows of one task."""
    rows: list[dict[str, Any]] = json.loads(
        (FIXTURE / f"{config}_preferences.json").read_text(encoding="utf-8")
    )
    return rows


def copy_json_bench(root: Path, *, media_data: bool = True) -> Path:
    """A copy of the JSON-layout miniature under ``root`` (with an empty ``media_data/``)."""
    bench = root / "json_bench"
    shutil.copytree(FIXTURE, bench)
    if media_data:
        (bench / "media_data").mkdir()
    return bench


def png_bytes(seed: int) -> bytes:
    """A real 4×4 PNG whose colour depends on ``seed``."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (seed * 37 % 256, seed * 91 % 256, 120)).save(buffer, "PNG")
    return buffer.getvalue()


def wav_bytes(seed: int) -> bytes:
    """A real 10-sample mono WAV whose samples depend on ``seed``."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(bytes((seed + i) % 256 for i in range(20)))
    return buffer.getvalue()


def make_hub_bench(root: Path, *, with_paths: bool = True, media_data: bool = True) -> Path:
    """Build the hub (parquet) layout under ``root / "hub_bench"`` from the fixture rows.

    ``with_paths=False`` leaves out the ``*_path`` columns and the structs' paths, so the media
    exist only as embedded bytes (the converter must extract them).
    """
    bench = root / "hub_bench"
    for config in CONFIGS:
        folder = bench / config / ("data" if config == "text_image_to_image" else "")
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(_table(config, with_paths), folder / "test-00000-of-00001.parquet")
    if media_data:
        (bench / "media_data").mkdir()
    return bench


def _table(config: str, with_paths: bool) -> pa.Table:
    structs = STRUCT_COLUMNS.get(config, ())
    rows = fixture_rows(config)
    columns: dict[str, pa.Array] = {}
    media_names = [n for n in ("image", "video", "audio") if n in rows[0]]
    names = ["prompt", *media_names, "response1", "response2", "model1", "model2"]
    for position, name in enumerate(names):
        if name in structs:
            encode = wav_bytes if "audio" in config and name != "image" else png_bytes
            columns[name] = pa.array(
                [
                    {
                        "bytes": encode(int(row["id"]) * 4 + position % 4),
                        "path": Path(row[name]).name if with_paths else None,
                    }
                    for row in rows
                ],
                type=MEDIA_STRUCT,
            )
        else:
            columns[name] = pa.array([row[name] for row in rows], type=pa.string())
    for name in ("criteria", "criteria_preference"):
        columns[name] = pa.array([row[name] for row in rows], type=pa.string())
    columns["id"] = pa.array([str(row["id"]) for row in rows], type=pa.string())
    if with_paths:
        for name in structs:
            columns[f"{name}_path"] = pa.array([row[name] for row in rows], type=pa.string())
    return pa.table(columns)
