"""Hub model ids (``ORG/NAME``, ``--revision``) work wherever a local folder does: ``train bt
--model``, ``score --model`` (an omnirm checkpoint on the hub), ``--judge hf:``. Offline, from a
temporary hub cache in the hub's own layout."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_jsonl
from tests.hub_cache import hub_cache, place_in_hub_cache
from tests.integration.test_bt_text import synthetic_pairs
from tests.tiny_models import make_tiny_fixed_answer

__all__ = ["hub_cache"]


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "omnirm-cache"))


def test_train_on_a_hub_id_then_reload_from_the_cache(
    cli: Callable[..., Any], tiny_qwen2: Path, hub_cache: Path, tmp_path: Path
) -> None:
    commit = place_in_hub_cache(hub_cache, "tiny-org/qwen2-tiny", tiny_qwen2)
    train = write_jsonl(tmp_path / "train.jsonl", synthetic_pairs(8, 0, "t"))
    out = tmp_path / "rm"
    trained = cli(
        "-q", "train", "bt", "--model", "tiny-org/qwen2-tiny", "--data", str(train), "-o",
        str(out), "--epochs", "1", "--batch-size", "4", "--max-length", "128", "--lora-r", "4",
        "--lora-layers", "1",
    )  # fmt: skip
    assert trained.code == 0, trained.stderr
    config = json.loads((out / "omnirm_config.json").read_text())
    assert (config["backbone"], config["backbone_revision"]) == ("tiny-org/qwen2-tiny", commit)
    assert config["lora"]["layers"] == [1]  # the tiny model has 2 layers: only the last adapted
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["layers_to_transform"] == [1]

    scored = cli("score", "--model", str(out), str(train))
    assert scored.code == 0, scored.stderr
    by = scored.jsonl()[0]["scored_by"]
    assert (by["backbone"], by["backbone_revision"]) == ("tiny-org/qwen2-tiny", commit)

    # the same checkpoint, itself published on the hub, scores the same by its id
    rm_commit = place_in_hub_cache(hub_cache, "tiny-org/rm", out)
    from_hub = cli("score", "--model", "tiny-org/rm", "--revision", rm_commit, str(train))
    assert from_hub.code == 0, from_hub.stderr
    rows = from_hub.jsonl()
    assert [r["rewards"] for r in rows] == [r["rewards"] for r in scored.jsonl()]
    assert rows[0]["scored_by"]["model"] == f"tiny-org/rm@{rm_commit}"

    # the base leaves the cache: the adapter cannot be rebuilt, and the message says why
    shutil.rmtree(hub_cache / "models--tiny-org--qwen2-tiny")
    gone = cli("score", "--model", str(out), str(train))
    assert gone.code == 2
    assert "needs its base model" in gone.stderr and "tiny-org/qwen2-tiny" in gone.stderr


def test_judge_by_hub_id(cli: Callable[..., Any], hub_cache: Path, tmp_path: Path) -> None:
    folder = make_tiny_fixed_answer(tmp_path / "judge", "The first response is better. [[A]]")
    commit = place_in_hub_cache(hub_cache, "tiny-org/judge", folder)
    pairs = write_jsonl(
        tmp_path / "pairs.jsonl",
        [{"id": "p", "prompt": "2+2?", "responses": ["4", "5"], "preference": 0}],
    )
    result = cli(
        "score", "--judge", "hf:tiny-org/judge", str(pairs), "--orders", "ab",
        "--max-new-tokens", "24",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    row = result.jsonl()[0]
    assert row["predicted"] == 0
    assert row["scored_by"]["model"] == f"tiny-org/judge@{commit}"
    missing = cli("score", "--judge", "hf:tiny-org/absent", str(pairs))
    assert missing.code == 2
    assert "hf:tiny-org/absent" in missing.stderr and "HF_HUB_OFFLINE" in missing.stderr
