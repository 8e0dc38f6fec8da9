"""Scored records as bench items: their modality is the records' own rule."""

from __future__ import annotations

from typing import Any

import pytest

from omnirm.bench.items import bench_item
from omnirm.data.stats import DataStats
from omnirm.records import parse_record

IMAGE = {"type": "image", "path": "a.png"}
MESH = {"type": "mesh", "path": "a.glb"}
AUDIO = {"type": "audio", "path": "a.wav"}

RECORDS: list[dict[str, Any]] = [
    {"id": "t", "prompt": "p", "responses": ["a", "b"]},
    {"id": "i", "prompt": [{"type": "text", "text": "p"}, IMAGE], "responses": ["a", "b"]},
    {"id": "m", "prompt": "p", "responses": [[MESH], [MESH]]},
    {"id": "a", "task": "text_to_audio", "prompt": "p", "responses": ["a.wav", "b.wav"]},
    {"id": "v", "prompt": [{"type": "video", "path": "v.mp4"}], "responses": [[AUDIO], "b"]},
]


@pytest.mark.parametrize(
    ("record", "modality"),
    list(zip(RECORDS, ["text", "image", "3d", "audio", "audio+video"], strict=True)),
)
def test_bench_and_stats_name_a_modality_alike(record: dict[str, Any], modality: str) -> None:
    scored = {**record, "preference": 0, "rewards": [1.0, 0.0]}
    assert bench_item(scored).modality == modality
    stats = DataStats()
    stats.add(parse_record(scored))
    assert stats.to_dict()["modalities"] == {modality: 1}
