"""Mistakes a careless user makes get one clear line on stderr and an exit code, never a
traceback: a folder for -o, something that is not a model, a device this machine lacks, a GGUF
file without the gguf package, a full disk; -q/-v after any command; skips that are asked for."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_record, write_jsonl

Cli = Callable[..., Any]


@pytest.fixture
def records(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "records.jsonl", [make_record("a"), make_record("b")])


def _clear(result: Any, code: int, *words: str) -> None:
    assert result.code == code, result.stderr
    assert "Traceback" not in result.stderr
    text = " ".join(result.stderr.replace("│", " ").split())  # unwrap rich's error box
    for word in words:
        assert word in text


@pytest.mark.parametrize(
    "command",
    [["score"], ["bon"], ["data", "validate"], ["data", "convert", "--to", "pairs"]],
)
def test_output_naming_a_folder(
    cli: Cli, records: Path, tmp_path: Path, command: list[str]
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    _clear(cli(*command, str(records), "-o", str(folder)), 2, "is a directory")


def test_not_a_model(cli: Cli, records: Path, tmp_path: Path) -> None:
    empty = tmp_path / "notamodel"
    empty.mkdir()
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    out = str(tmp_path / "o")
    for spec in (empty, text, tmp_path / "missing"):
        _clear(cli("train", "bt", "--model", str(spec), "--data", str(records), "-o", out), 2)
        _clear(cli("score", str(records), "--judge", f"hf:{spec}"), 2, f"--judge hf:{spec}")
    result = cli("train", "bt", "--model", str(empty), "--data", str(records), "-o", out)
    assert "is not a model folder (no config.json)" in result.stderr
    result = cli("score", str(records), "--model", str(empty))
    _clear(result, 2, "not an omnirm reward model (no omnirm_config.json)")
    _clear(cli("score", str(records), "--model", str(text)), 2, "is a file")


def test_device_this_machine_lacks(
    cli: Cli, records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1"):
        result = cli("score", str(records), "--model", str(tmp_path), "--device", device)
        _clear(result, 2, f"--device {device}: this machine has no CUDA device")
    _clear(cli("score", str(records), "--device", "gpu"), 2, "--device gpu: not a device name")


def test_gguf_without_the_gguf_package(
    cli: Cli, records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model.Q4.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf now raises ImportError
    train = cli(
        "train", "bt", "--model", str(model), "--data", str(records), "-o", str(tmp_path / "rm")
    )
    _clear(train, 2, "needs the gguf package (pip install gguf)")
    judge = cli("score", str(records), "--judge", f"hf:{model}")
    _clear(judge, 2, "needs the gguf package")


def _commands() -> list[list[str]]:
    from omnirm.cli.main import build_command

    found = []
    pending: list[tuple[list[str], Any]] = [([], build_command())]
    while pending:
        path, command = pending.pop()
        children = getattr(command, "commands", None)
        if children is None:
            found.append(path)
        for name, child in (children or {}).items():
            pending.append(([*path, name], child))
    return sorted(found)


def test_quiet_and_verbose_after_every_command(cli: Cli, records: Path) -> None:
    commands = _commands()
    assert ["score"] in commands and ["train", "bt"] in commands and len(commands) >= 12
    for built in ("criteria", "pairs", "dedup", "sample"):
        assert ["data", built] in commands
    for command in commands:
        for flags in (["-q"], ["-v"], ["-vv"], ["--quiet"], ["--verbose"]):
            result = cli(*command, *flags, "-h")
            assert result.code == 0, (command, flags, result.stderr)
    assert "all valid" in cli("data", "validate", str(records)).stderr
    assert cli("data", "validate", str(records), "-q").stderr == ""
    assert cli("-q", "data", "validate", str(records)).stderr == ""
    from omnirm import console

    cli("data", "validate", "-vv", str(records))
    assert console.verbosity() == 2


def test_skipping_ties_on_export_is_one_warning_and_success(cli: Cli, tmp_path: Path) -> None:
    rows = [make_record(f"r{i}", preference="tie" if i % 2 else 0) for i in range(340)]
    path = write_jsonl(tmp_path / "ties.jsonl", rows)
    result = cli("data", "convert", "--to", "llamafactory", "--on-error", "skip", str(path))
    assert result.code == 0, result.stderr
    assert len(result.jsonl()) == 170
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "170 rows written (omnirm → llamafactory), 170 skipped"
    assert lines[1].startswith("warning: 170 records skipped (--on-error skip), the first: ")
    assert "record 'r1': preference: is a tie" in lines[1]
    assert len(lines) == 2
    listed = cli("data", "convert", "--to", "llamafactory", "--on-error", "skip", "-v", str(path))
    assert listed.stderr.count("skipped: ") == 170
    failed = cli("data", "convert", "--to", "llamafactory", str(path))
    assert failed.code == 1 and "is a tie" in failed.stderr


def test_full_disk_is_one_line(
    cli: Cli, records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnirm.jsonl import JsonlWriter

    def full(self: JsonlWriter, obj: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(JsonlWriter, "write", full)
    out = tmp_path / "out.jsonl"
    for command in (["data", "convert", "--to", "pairs"], ["data", "split", "--split", "train"]):
        result = cli(*command, str(records), "-o", str(out))
        _clear(result, 1, "no space left on device")
        assert result.stderr.strip().count("\n") == 0  # one line


def test_ray_options_without_ray(cli: Cli, records: Path) -> None:
    """--ray-* options without --ray would be ignored: a usage error naming them."""
    one = cli("score", str(records), "--ray-address", "auto")
    _clear(one, 2, "--ray-address: only with --ray")
    several = cli("score", str(records), "--ray-num-gpus", "0", "--ray-concurrency", "1")
    _clear(several, 2, "--ray-concurrency, --ray-num-gpus: only with --ray")
