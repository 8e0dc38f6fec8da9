"""What omnirm runs and opens from a model folder: Python code only with --trust-remote-code on
the command line (never because a checkpoint says so), weights from safetensors only."""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_record, write_jsonl
from tests.integration.test_bench import saved_reward_model

Cli = Callable[..., Any]


@pytest.fixture(scope="module")
def reward_model(tiny_qwen2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_reward_model(tiny_qwen2, tmp_path_factory.mktemp("safety") / "rm")


@pytest.fixture
def records(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "records.jsonl", [make_record("a"), make_record("b")])


def plant_code(folder: Path, marker: Path) -> None:
    """Make ``folder``'s tokenizer a class from a Python file there that writes ``marker``."""
    (folder / "marker_tok.py").write_text(
        "from pathlib import Path\n\n"
        "from transformers import PreTrainedTokenizerFast\n\n"
        f"Path({str(marker)!r}).write_text('ran')\n\n\n"
        "class MarkerTokenizer(PreTrainedTokenizerFast):\n"
        "    pass\n"
    )
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["auto_map"] = {"AutoTokenizer": [None, "marker_tok.MarkerTokenizer"]}
    config_file.write_text(json.dumps(config))


def hostile_checkpoint(reward_model: Path, folder: Path, marker: Path, where: str) -> Path:
    """A copy of ``reward_model`` that names code in its tokenizer, or in its backbone's, and
    whose omnirm_config.json says ``"trust_remote_code": true``."""
    shutil.copytree(reward_model, folder)
    config = json.loads((folder / "omnirm_config.json").read_text())
    config["trust_remote_code"] = True
    if where == "tokenizer":
        plant_code(folder / "tokenizer", marker)
    else:
        backbone = folder.parent / "backbone"
        shutil.copytree(config["backbone"], backbone)
        plant_code(backbone, marker)
        config["backbone"] = str(backbone)
    (folder / "omnirm_config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("where", ["tokenizer", "backbone"])
@pytest.mark.parametrize("command", ["score", "bon", "bench"])
def test_checkpoint_code_never_runs_without_the_flag(
    cli: Cli, reward_model: Path, records: Path, tmp_path: Path, command: str, where: str
) -> None:
    marker = tmp_path / "MARKER"
    rm = hostile_checkpoint(reward_model, tmp_path / "rm", marker, where)
    result = cli(command, str(records), "--model", str(rm))
    assert result.code == 2, result.stderr
    assert "--trust-remote-code" in result.stderr and "marker_tok.MarkerTokenizer" in result.stderr
    assert not marker.exists()
    assert result.stdout == ""


def test_model_and_judge_code_never_runs_without_the_flag(
    cli: Cli, tiny_qwen2: Path, records: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "MARKER"
    base = tmp_path / "base"
    shutil.copytree(tiny_qwen2, base)
    plant_code(base, marker)
    train = cli(
        "train", "bt", "--model", str(base), "--data", str(records), "-o", str(tmp_path / "o")
    )
    assert train.code == 2 and "--trust-remote-code" in train.stderr
    judge = cli("score", str(records), "--judge", f"hf:{base}")
    assert judge.code == 2 and "--trust-remote-code" in judge.stderr
    assert "--judge hf:" in judge.stderr
    assert not marker.exists()


def test_the_flag_on_the_command_line_allows_the_code(
    cli: Cli, reward_model: Path, records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import dynamic_module_utils

    monkeypatch.setattr(dynamic_module_utils, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    marker = tmp_path / "MARKER"
    rm = hostile_checkpoint(reward_model, tmp_path / "rm", marker, "tokenizer")
    result = cli("score", str(records), "--model", str(rm), "--trust-remote-code")
    assert result.code == 0, result.stderr
    assert marker.read_text() == "ran"  # the flag reaches transformers
    assert [r["id"] for r in result.jsonl()] == ["a", "b"]


class _Unpickled:
    """Writes a file when unpickled: stands for a malicious pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "unpickled"))


def test_pickled_weights_are_refused_unopened(
    cli: Cli, tiny_qwen2: Path, reward_model: Path, records: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "MARKER"
    poison = pickle.dumps(_Unpickled(marker))
    base = tmp_path / "base"
    shutil.copytree(tiny_qwen2, base)
    (base / "model.safetensors").unlink()
    (base / "pytorch_model.bin").write_bytes(poison)
    rm = tmp_path / "rm"
    shutil.copytree(reward_model, rm)
    (rm / "adapter" / "adapter_model.safetensors").unlink()
    (rm / "adapter" / "adapter_model.bin").write_bytes(poison)

    runs = {
        "pytorch_model.bin": cli(
            "train", "bt", "--model", str(base), "--data", str(records), "-o", str(tmp_path / "o")
        ),
        "adapter_model.bin": cli("score", str(records), "--model", str(rm)),
    }
    runs["pytorch_model.bin "] = cli("score", str(records), "--judge", f"hf:{base}")
    for name, result in runs.items():
        assert result.code == 2, result.stderr
        assert "only safetensors weights are loaded" in result.stderr
        assert name.strip() in result.stderr
        assert "weights_only" not in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()
