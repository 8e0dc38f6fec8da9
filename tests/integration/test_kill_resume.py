"""The kill test: ``score``, ``bon`` and ``bench`` run as processes, killed with SIGKILL at
several points (while starting, and in the middle of the run, after bad lines were written),
then resumed, give exactly the output of an uninterrupted run: every id once, in input order,
errors where they were, values equal to 1e-6."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_bench import gold_pairs, saved_reward_model
from tests.integration.test_bon import candidates

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rm(tiny_qwen2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_reward_model(tiny_qwen2, tmp_path_factory.mktemp("kill-rm") / "rm")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread in this process too: the machine's cores run the killed processes."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def with_errors(records: list[dict[str, Any]], bad: dict[int, str]) -> str:
    """JSONL text of ``records`` with the ``bad`` lines inserted at their indices."""
    lines = [json.dumps(r) for r in records]
    for index, text in sorted(bad.items()):
        lines.insert(index, text)
    return "".join(line + "\n" for line in lines)


def complete_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else -1


class Killer:
    """Runs ``python -m omnirm ARGS`` and kills it with SIGKILL once ``watched`` holds ``lines``
    complete lines (0: once it exists); records how it ended."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.ends: list[tuple[list[str], int | None, int]] = []  # args, code, lines at the kill

    def kill_at(self, args: list[str], watched: Path, lines: int) -> None:
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "omnirm", *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            deadline = time.monotonic() + 120
            while process.poll() is None and time.monotonic() < deadline:
                if complete_lines(watched) >= lines:
                    process.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.003)
            else:
                process.kill()
            process.wait()
            self.ends.append((args, process.returncode, complete_lines(watched)))

    def chain(self, *steps: tuple[list[str], Path, int]) -> threading.Thread:
        thread = threading.Thread(target=lambda: [self.kill_at(*step) for step in steps])
        thread.start()
        return thread


def assert_same(expected: Any, actual: Any, where: str = "") -> None:
    """Equal, numbers to 1e-6."""
    if isinstance(expected, float) and isinstance(actual, int | float):
        assert actual == pytest.approx(expected, abs=1e-6), where
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and expected.keys() == actual.keys(), where
        for key in expected:
            assert_same(expected[key], actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(expected) == len(actual), where
        for index, (a, b) in enumerate(zip(expected, actual, strict=True)):
            assert_same(a, b, f"{where}[{index}]")
    else:
        assert expected == actual, where


def read(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_killed_runs_resume_to_the_uninterrupted_output(
    cli: Callable[..., Any],
    rm: Path,
    tmp_path: Path,
    one_thread: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(cache))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    broken, single = (
        '{"id": "broken", oops',
        json.dumps({"id": "single", "prompt": "One?", "responses": ["only one"]}),
    )
    score_in = tmp_path / "pairs.jsonl"
    score_in.write_text(with_errors(gold_pairs(400), {50: broken, 300: single}))
    bon_in = tmp_path / "cands.jsonl"
    bon_in.write_text(with_errors(candidates(150, n=3), {20: broken, 100: single}))
    bench_in = tmp_path / "gold.jsonl"
    bench_in.write_text(with_errors(gold_pairs(300), {}))
    model = ["--model", str(rm)]
    score = ["score", *model, str(score_in), "--on-error", "record", "--resume"]
    bon = ["bon", *model, str(bon_in), "--on-error", "record", "--resume"]
    bench = ["bench", "--suite", "jsonl", "--data", str(bench_in), *model, "--json",
             "--bootstrap", "100"]  # fmt: skip
    outputs = {name: tmp_path / f"{name}.jsonl" for name in ("score", "bon", "bench", "pairs")}
    score_args = [*score, "-o", str(outputs["score"]), "--batch-size", "2"]
    bon_args = [*bon, "-o", str(outputs["bon"]), "--pairs", str(outputs["pairs"])]
    bench_args = [*bench, "--scores", str(outputs["bench"])]

    killer = Killer(env, tmp_path / "killed.log")
    chains = [
        # while starting (the output is locked before the model loads), then mid-run
        killer.chain((score_args, outputs["score"], 0), (score_args, outputs["score"], 100)),
        killer.chain((bon_args, outputs["bon"], 40)),
        killer.chain((bench_args, outputs["bench"], 100)),
    ]
    # meanwhile, the uninterrupted runs
    reference = {name: tmp_path / f"reference-{name}.jsonl" for name in outputs}
    assert cli(*score, "-o", str(reference["score"])).code == 1  # the two bad lines
    assert cli(*bon, "-o", str(reference["bon"]), "--pairs", str(reference["pairs"])).code == 1
    uninterrupted = cli(*bench, "--scores", str(reference["bench"]))
    assert uninterrupted.code == 0, uninterrupted.stderr
    for chain in chains:
        chain.join()

    log = (tmp_path / "killed.log").read_text()[-3000:]
    for args, code, lines in killer.ends:
        assert code == -signal.SIGKILL, f"{args[0]} ended by itself ({code}, {lines} lines): {log}"
    # exit 1 when a bad line was met in this run, 0 when a killed run had written it already
    assert cli(*score_args).code in (0, 1)
    assert cli(*bon_args).code in (0, 1)
    resumed = cli(*bench_args)
    assert resumed.code == 0 and "records reused" in resumed.stderr

    ids = [r["id"] for r in read(reference["score"])]
    assert len(ids) == 402 and ids[50] is None and ids[300] == "single"
    ids = [r["id"] for r in read(reference["bon"])]
    assert len(ids) == 152 and ids[20] is None and ids[100] == "single"
    for name in ("score", "bon", "pairs"):
        assert_same(read(reference[name]), read(outputs[name]), name)
    (expected,) = uninterrupted.jsonl()
    (actual,) = resumed.jsonl()
    assert_same(expected, actual, "bench")
    assert len(read(outputs["bench"])) == 300  # every record scored once
