"""A Hugging Face hub cache in a temporary folder, laid out as ``huggingface_hub`` writes it
(``models--ORG--NAME/{blobs,refs,snapshots}``), for testing hub ids offline."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest


def place_in_hub_cache(cache: Path, repo_id: str, folder: Path, *, ref: str = "main") -> str:
    """Copy ``folder`` into ``cache`` as a snapshot of ``repo_id`` at ``ref``; returns the
    commit. Files are blobs named by their hash, linked from the snapshot, as the hub does."""
    commit = hashlib.sha1(f"{repo_id}@{ref}".encode()).hexdigest()
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        target = snapshot / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, target.parent), target)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return commit


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache used by huggingface_hub for this test, offline."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


__all__ = ["hub_cache", "place_in_hub_cache"]
