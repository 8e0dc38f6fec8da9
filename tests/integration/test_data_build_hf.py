"""``omnirm data criteria`` and ``omnirm data pairs`` end to end on tiny local ``hf:`` models with
fixed answers (``tests.tiny_models.make_tiny_fixed_answer``): a teacher that always writes the
same criterion, verifiers with a position bias (caught by the two orders), generators that
always say the same thing, and a teacher whose JSON lacks the fields (re-asked, then rejected)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_jsonl
from tests.tiny_models import make_tiny_fixed_answer

CRITERION = '{"criterion": "Prefer the shorter answer."}'


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data-models")
    answers = {
        "teacher": CRITERION,
        "always_a": "The first. [[A]]",
        "always_b": "The second. [[B]]",
        "strong": "Paris is the capital.",
        "weak": "Berlin.",
    }
    return {name: make_tiny_fixed_answer(root / name, text) for name, text in answers.items()}


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def arithmetic_pairs(count: int = 5) -> list[dict[str, Any]]:
    """Labelled pairs "What is i + i?" (a bare number against a sentence), for the builders."""
    return [
        {"id": f"q{i}", "prompt": f"What is {i} + {i}?", "responses": [str(2 * i), f"It is {2 * i}."],
         "preference": i % 2}
        for i in range(count)
    ]  # fmt: skip


def test_criteria_with_position_biased_verifiers(
    cli: Callable[..., Any], models: dict[str, Path], tmp_path: Path
) -> None:
    records = arithmetic_pairs()
    data = write_jsonl(tmp_path / "in.jsonl", records)
    out, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    result = cli(
        "data", "criteria", str(data), "--teacher", f"hf:{models['teacher']}",
        "--verifier", f"hf:{models['always_a']}", "--verifier", f"hf:{models['always_b']}",
        "--max-new-tokens", "24", "--batch-size", "4", "--contrastive", "-o", str(out),
        "--stats", str(stats), "--no-structured",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert lines(out) == []
    rejected = lines(tmp_path / "out.rejected.jsonl")
    assert len(rejected) == 10  # two criteria per pair, none survives a position-biased panel
    for line in rejected:
        assert line["criteria"] == "Prefer the shorter answer."
        verdicts = [(v["ab"], v["ba"], v["agrees"]) for v in line["provenance"]["verdicts"]]
        assert verdicts == [(0, 1, False), (1, 0, False)]
        assert line["rejected"]["reason"] == "verifiers: 0 of 2 agree (majority needed)"
        assert line["provenance"]["teacher"]["backend"] == "hf"
    figures = json.loads(stats.read_text())
    assert figures["roles"]["teacher"]["calls"] == 10
    assert figures["roles"]["verifier 1"]["calls"] == 20
    assert figures["calls"]["prompt_tokens"] > 0 and figures["calls"]["completion_tokens"] > 0
    assert figures["rates"]["verifier 1 agreement"] == 0.0


def test_pairs_with_fixed_generators_and_an_unusable_teacher(
    cli: Callable[..., Any], models: dict[str, Path], tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", [{"id": "p0", "prompt": "Capital of France?"}])
    out = tmp_path / "out.jsonl"
    result = cli(
        "data", "pairs", str(data), "--teacher", f"hf:{models['teacher']}",
        "--strong", f"hf:{models['strong']}", "--weak", f"hf:{models['weak']}",
        "--gen-temperature", "0", "--gen-max-new-tokens", "16", "--max-new-tokens", "24",
        "--retries", "1", "-o", str(out), "--no-structured",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    (line,) = lines(tmp_path / "out.rejected.jsonl")
    assert sorted(line["responses"]) == ["Berlin.", "Paris is the capital."]
    assert line["rejected"]["reason"] == (
        'teacher 1: no usable scores after 2 attempts ("scores": Field required)'
    )
    assert line["rejected_answer"] == CRITERION


def test_builders_quiet_by_default(models: dict[str, Path], tmp_path: Path) -> None:
    """A fresh process (no test has disabled tqdm yet): loading the teacher prints no third-party
    bars or reports unless -v."""
    import os
    import subprocess
    import sys

    data = write_jsonl(
        tmp_path / "in.jsonl",
        [{"id": "q", "prompt": "2 + 2?", "responses": ["4", "It is 4."], "preference": 0}],
    )
    command = [
        sys.executable, "-m", "omnirm", "data", "criteria", str(data),
        "--teacher", f"hf:{models['teacher']}", "--verifier", f"hf:{models['always_a']}",
        "--max-new-tokens", "24", "--no-structured", "-o", str(tmp_path / "out.jsonl"),
    ]  # fmt: skip
    # an earlier in-process test may have quietened this process (TQDM_DISABLE in os.environ)
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    env.update(OMNIRM_CACHE_DIR=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    quiet = subprocess.run(command, capture_output=True, text=True, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert "it/s" not in quiet.stderr and "Loading weights" not in quiet.stderr, quiet.stderr
    # the same with -v shows them: what the quiet run lacks is really there to hide
    loud = subprocess.run(  # a cache of its own, so its answers come from the loaded model
        [*command[:-1], str(tmp_path / "loud.jsonl"), "-v"],
        capture_output=True,
        text=True,
        env={**env, "OMNIRM_CACHE_DIR": str(tmp_path / "cache-loud")},
    )
    assert loud.returncode == 0, loud.stderr
    assert "Loading weights" in loud.stderr


def test_a_terminated_build_leaves_no_temporary_files_and_resumes(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """SIGTERM (a scheduler stopping the job) ends a build as Ctrl-C does: the lines written
    so far are kept, no ``.tmp`` file is left, and ``--resume`` finishes the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    records = arithmetic_pairs(2)
    out = tmp_path / "x.criteria.jsonl"
    command = [
        sys.executable, "-m", "omnirm", "data", "criteria", "--teacher", f"hf:{models['teacher']}",
        "--verifier", f"hf:{models['always_a']}", "--max-new-tokens", "24", "--batch-size", "1",
        "--no-structured", "-o", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMNIRM_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    # reads the first record from a pipe that stays open: the build waits for the next one
    build = subprocess.Popen([*command, "-"], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env, text=True)  # fmt: skip
    assert build.stdin is not None
    build.stdin.write(json.dumps(records[0]) + "\n")
    build.stdin.flush()
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".x.criteria*.tmp")):  # its outputs are open: models loaded
        assert build.poll() is None and time.monotonic() < deadline, build.stderr
        time.sleep(0.1)
    time.sleep(1)
    build.send_signal(signal.SIGTERM)
    _, stderr = build.communicate(timeout=60)
    assert build.returncode == 130, stderr
    assert "terminated (SIGTERM)" in stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []
    data = write_jsonl(tmp_path / "in.jsonl", records)
    resumed = subprocess.run([*command, str(data), "--resume"], capture_output=True, text=True,
                             env=env)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    built = lines(out) + lines(tmp_path / "x.criteria.rejected.jsonl")
    assert sorted(line["id"] for line in built) == ["q0:c0", "q1:c0"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []
