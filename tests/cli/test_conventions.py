"""Shell conventions, checked on a real process: pipes, signals, exit codes, stdout hygiene."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import make_record, write_jsonl

OMNIRM = [sys.executable, "-m", "omnirm"]


def test_broken_pipe_exits_quietly(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "big.jsonl", [make_record(f"r{i}") for i in range(20000)])
    command = " ".join(OMNIRM) + f" data split --split train --ratios 1 {path} | head -1"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert json.loads(proc.stdout)["id"] == "r0"


def test_ctrl_c_exits_130_and_keeps_what_was_written(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [*OMNIRM, "data", "split", "--split", "train", "--ratios", "1", "-o", str(out), "-"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as a terminal's foreground job gets it: a non-interactive shell starts its
        # background jobs with SIGINT ignored, the child would inherit that, and Python then
        # installs no KeyboardInterrupt handler (the run ended normally with code 0 when the
        # tests ran as `… &`)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(make_record("first")) + "\n")
    proc.stdin.flush()
    # wait until the first record is in its output (a temporary file beside out.jsonl until the
    # run ends; each line is flushed as written): the command is then past its imports and
    # waiting on stdin, which stays open
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not any(
        p.stat().st_size for p in tmp_path.glob(".out.jsonl.*")
    ):
        time.sleep(0.1)
    assert any(p.stat().st_size for p in tmp_path.glob(".out.jsonl.*")), "no record in 180 s"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert json.loads(out.read_text())["id"] == "first"


def test_stdout_is_only_jsonl_even_with_errors(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [make_record("a"), make_record("b", preference=7)])
    proc = subprocess.run(
        [*OMNIRM, "data", "stats", "--json", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.returncode == 0  # stats skips bad records (one warning) by default
    assert [json.loads(line)["records"] for line in proc.stdout.splitlines()] == [1]
    assert "out of range" in proc.stderr
    assert "\x1b[" not in proc.stderr  # NO_COLOR honoured
