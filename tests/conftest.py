"""Shared fixtures: small record builders and a CLI runner that calls ``main(argv)`` in-process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def make_record(record_id: str = "r1", **overrides: Any) -> dict[str, Any]:
    """A minimal valid text pair; override any field."""
    record: dict[str, Any] = {
        "id": record_id,
        "prompt": "Which is better?",
        "responses": ["first answer", "second answer"],
        "preference": 0,
    }
    record.update(overrides)
    return record


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def jsonl_file(tmp_path: Path) -> Callable[..., Path]:
    def _make(records: list[Any], name: str = "data.jsonl") -> Path:
        return write_jsonl(tmp_path / name, records)

    return _make


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code = code
        self.stdout = stdout
        self.stderr = stderr

    def jsonl(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CliResult]:
    """Run ``omnirm ARGS`` in-process; optional ``stdin`` text. Returns code, stdout, stderr."""
    import io
    import sys

    from omnirm import console
    from omnirm.cli.main import main

    def _run(*args: str, stdin: str | None = None) -> CliResult:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        console._console = None  # a fresh stderr console bound to the captured stream
        console.set_verbosity(0)
        code = main(list(args))
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return _run
