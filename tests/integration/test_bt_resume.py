"""``train bt``'s output folder and ``--resume``: never overwrite a trained model by accident,
continue only the same run, survive a damaged state, keep only trainable weights in it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_jsonl
from tests.integration.test_bt_text import synthetic_pairs


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("resume-data")
    return {
        "train": write_jsonl(folder / "train.jsonl", synthetic_pairs(16, 0, "t")),
        "other": write_jsonl(folder / "other.jsonl", synthetic_pairs(16, 5, "o")),
        "eval": write_jsonl(folder / "eval.jsonl", synthetic_pairs(4, 1, "e")),
    }


def train(cli: Callable[..., Any], model: Path, data: Path, out: Path, *extra: str) -> Any:
    return cli(
        "train", "bt", "--model", str(model), "--data", str(data), "-o", str(out),
        "--batch-size", "4", "--max-length", "128", "--lr", "2e-3", *extra,
    )  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of the trained model (not its resumable state) by relative path."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.relative_to(folder).parts[0].startswith("state")
    }


def test_a_trained_folder_is_replaced_only_with_force(
    cli: Callable[..., Any], tiny_qwen2: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "rm"
    first = train(cli, tiny_qwen2, data["train"], out, "--eval", str(data["eval"]), "--merge")
    assert first.code == 0, first.stderr
    before = snapshot(out)
    again = train(cli, tiny_qwen2, data["other"], out, "--seed", "1")
    assert again.code == 2
    assert f"-o {out}: folder is not empty" in again.stderr
    assert "pass --force" in again.stderr and "--resume" in again.stderr
    assert snapshot(out) == before  # nothing touched
    forced = train(cli, tiny_qwen2, data["other"], out, "--seed", "1", "--force")
    assert forced.code == 0, forced.stderr
    # cleared first: no merged/ or eval rewards left over from the first run
    assert not (out / "merged").exists() and not (out / "eval_rewards.jsonl").exists()
    assert json.loads((out / "training_config.json").read_text())["seed"] == 1
    assert snapshot(out)["head.safetensors"] != before["head.safetensors"]


def test_force_and_resume_refuse_what_they_cannot_do(
    cli: Callable[..., Any], tiny_qwen2: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    refused = train(cli, tiny_qwen2, data["train"], mine, "--force")
    assert refused.code == 2 and "not a folder written by omnirm train bt" in refused.stderr
    resumed = train(cli, tiny_qwen2, data["train"], mine, "--resume")
    assert resumed.code == 2 and "holds no saved training state" in resumed.stderr
    assert (mine / "notes.txt").read_text() == "keep me"
    both = train(cli, tiny_qwen2, data["train"], tmp_path / "new", "--force", "--resume")
    assert both.code == 2 and "pass one" in both.stderr
    # a training folder that holds the data: --force must not delete the input
    run = tmp_path / "run"
    assert train(cli, tiny_qwen2, data["train"], run).code == 0
    inside = shutil.copy(data["train"], run / "train.jsonl")
    kept = train(cli, tiny_qwen2, Path(inside), run, "--force")
    assert kept.code == 2 and "holds the training data" in kept.stderr
    assert Path(inside).read_bytes() == data["train"].read_bytes()


def test_resume_refuses_another_run_and_warns_for_harmless_changes(
    cli: Callable[..., Any], tiny_qwen2: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "rm"
    assert train(cli, tiny_qwen2, data["train"], out, "--save-every", "2").code == 0
    other = train(cli, tiny_qwen2, data["other"], out, "--resume", "--lr", "1e-3", "--seed", "4")
    assert other.code == 2
    assert "trained with other settings" in other.stderr
    for change in ("--data (its content) was", "--lr was 0.002, now 0.001", "--seed was 0, now 4"):
        assert change in other.stderr
    epochs = train(cli, tiny_qwen2, data["train"], out, "--resume", "--epochs", "2")
    assert epochs.code == 2 and "--epochs was 1.0, now 2.0" in epochs.stderr
    # the same data under another name is the same run
    renamed = shutil.copy(data["train"], tmp_path / "renamed.jsonl")
    fine = train(cli, tiny_qwen2, Path(renamed), out, "--resume", "--eval", str(data["eval"]))
    assert fine.code == 0, fine.stderr
    assert "warning: --resume: --eval was null" in fine.stderr
    assert "--data was" in fine.stderr and "--save-every was 2, now 0" in fine.stderr
    assert "resuming from step 4 of 4" in fine.stderr


def test_an_interrupted_run_resumes_to_the_same_model(
    cli: Callable[..., Any], tiny_qwen2: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    """Two epochs of 4 steps, a state every 3 steps (6, then the end at 8): resuming from step
    6, from a damaged newest state, gives exactly the uninterrupted model and report."""
    whole = tmp_path / "whole"
    args = ("--epochs", "2", "--save-every", "3", "--eval", str(data["eval"]))
    assert train(cli, tiny_qwen2, data["train"], whole, *args).code == 0
    assert json.loads((whole / "state" / "progress.json").read_text())["step"] == 8
    assert json.loads((whole / "state.previous" / "progress.json").read_text())["step"] == 6

    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    optimizer = cut / "state" / "optimizer.bin"
    optimizer.write_bytes(optimizer.read_bytes()[:1000])  # a truncated file
    for name in ("head.safetensors", "train_result.json"):
        (cut / name).unlink()
    resumed = train(cli, tiny_qwen2, data["train"], cut, *args, "--resume")
    assert resumed.code == 0, resumed.stderr
    assert "state is corrupt (optimizer.bin is cut short" in resumed.stderr
    assert "using the state saved before it" in resumed.stderr
    assert "resuming from step 6 of 8" in resumed.stderr
    assert resumed.jsonl()[0]["steps"] == 8
    for name in ("head.safetensors", "adapter/adapter_model.safetensors", "train_result.json"):
        assert (cut / name).read_bytes() == (whole / name).read_bytes(), name

    for name in ("state", "state.previous"):  # nothing loadable: a clear error
        (cut / name / "scheduler.bin").write_bytes(b"")
    broken = train(cli, tiny_qwen2, data["train"], cut, *args, "--resume")
    assert broken.code == 2
    assert "scheduler.bin is cut short or damaged (0 bytes" in broken.stderr
    assert "pass --force to start over" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_lora_state_holds_only_the_trainable_parameters(
    cli: Callable[..., Any], tiny_qwen2: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    from safetensors import safe_open

    out = tmp_path / "rm"
    assert train(cli, tiny_qwen2, data["train"], out).code == 0
    with safe_open(str(out / "state" / "model.safetensors"), "pt") as weights:
        names = list(weights.keys())
    assert names and all("lora_" in n or n.startswith("head.") for n in names), names
    base = sum(p.stat().st_size for p in tiny_qwen2.glob("*.safetensors"))
    state = sum(p.stat().st_size for p in (out / "state").iterdir())
    assert state < base / 5  # adapter + head + their optimizer moments, not the frozen model


def test_a_run_saved_before_defaults_were_resolved_resumes(tmp_path: Path) -> None:
    """training_config.json of an earlier version: lr and bf16 as null, no data hash."""
    from omnirm.errors import UsageError
    from omnirm.train.resume import check_same_run

    current = {"lr": 5e-4, "full": False, "bf16": False, "data": "t.jsonl", "seed": 0}
    older = {"lr": None, "full": False, "bf16": None, "data": "t.jsonl", "seed": 0}
    assert check_same_run(older, {**current, "data_sha256": "ab"}, tmp_path) == []
    with pytest.raises(UsageError, match=r"--data was t\.jsonl, now u\.jsonl"):
        check_same_run(older, {**current, "data": "u.jsonl"}, tmp_path)


def test_runs_at_different_precisions_in_one_process(
    cli: Callable[..., Any], tiny_qwen2: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    """accelerate keeps one state per process: a bf16 run, then an fp32 one, then bf16 again
    (a notebook, or train bt then train r1) all start, each at its own precision."""
    for index, flag in enumerate(("--bf16", "--no-bf16", "--bf16")):
        out = tmp_path / f"rm{index}"
        result = train(cli, tiny_qwen2, data["train"], out, flag, "--epochs", "0.25")
        assert result.code == 0, result.stderr
        saved = json.loads((out / "training_config.json").read_text())
        assert saved["bf16"] is (flag == "--bf16")
