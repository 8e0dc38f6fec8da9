"""``data criteria`` and ``data pairs`` as real 2-process runs (torchrun, gloo on CPU) on tiny
fixed-answer ``hf:`` models: the kept lines, the rejects and the ``--stats`` figures are those
of one process (times aside); a shard resumed from its own lines. The ranks share one answer
cache (SQLite)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_jsonl
from tests.integration.test_data_build_hf import arithmetic_pairs, models  # noqa: F401 (a fixture)
from tests.integration.test_sharded_scoring import read, run


def _timeless(figures: Any) -> Any:
    """``--stats`` figures without wall-clock and generation times."""
    if isinstance(figures, dict):
        return {k: _timeless(v) for k, v in figures.items() if k != "seconds"}
    return figures


def _lines(path: Path) -> list[dict[str, Any]]:
    return read(path) if path.exists() else []


def _single_and_sharded(
    cli: Callable[..., Any], args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The outputs of one process (its own answer cache) and of two ranks."""
    outputs = {}
    for name in ("single", "sharded"):
        out = tmp_path / name / "out.jsonl"
        out.parent.mkdir()
        full = [*args, "-o", str(out), "--stats", str(out.with_suffix(".stats.json"))]
        if name == "single":
            monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "single-cache"))
            result = cli(*full)
            assert result.code == 0, result.stderr
        else:
            proc = run(full, tmp_path)
            assert proc.returncode == 0, proc.stderr[-3000:]
            assert not (out.parent / ".out.jsonl.shards").exists()  # merged, then removed
        outputs[name] = {
            "kept": _lines(out),
            "rejected": _lines(out.parent / "out.rejected.jsonl"),
            "stats": json.loads(out.with_suffix(".stats.json").read_text()),
        }
    return outputs["single"], outputs["sharded"]


def test_criteria_under_two_ranks_as_one_process(
    cli: Callable[..., Any],
    models: dict[str, Path],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = arithmetic_pairs()
    records.insert(2, {"id": "tie", "prompt": "2?", "responses": ["2", "two"], "preference": "tie"})
    data = write_jsonl(tmp_path / "in.jsonl", records)
    args = [
        "data", "criteria", str(data), "--teacher", f"hf:{models['teacher']}",
        "--verifier", f"hf:{models['always_a']}", "--max-new-tokens", "24", "--batch-size", "2",
        "--contrastive", "--no-structured",  # the fixed-answer teacher writes its own JSON
    ]  # fmt: skip
    single, sharded = _single_and_sharded(cli, args, tmp_path, monkeypatch)
    # every input accounted for: two criteria per pair (rejected by a biased verifier), one
    # line for the tie, all in input order with each input's lines together
    ids = [line["id"] for line in sharded["rejected"]]
    assert ids[:6] == ["q0:c0", "q0:c1", "q1:c0", "q1:c1", "tie:input", "q2:c0"]
    assert len(ids) == 11
    assert sharded["kept"] == single["kept"] == []
    assert sharded["rejected"] == single["rejected"]
    assert _timeless(sharded["stats"]) == _timeless(single["stats"])
    assert sharded["stats"]["roles"]["teacher"]["calls"] == 10  # summed over the ranks
    assert sharded["stats"]["reasons"] == {"verifiers disagree": 10, "input: a tie: neither "
                                           "response is better": 1}  # fmt: skip


@pytest.mark.slow  # ~35 s: every model loaded in both ranks, as the criteria test does
def test_pairs_under_two_ranks_as_one_process(
    cli: Callable[..., Any],
    models: dict[str, Path],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = write_jsonl(
        tmp_path / "in.jsonl",
        [{"id": f"p{i}", "prompt": f"Capital of country {i}?"} for i in range(3)],
    )
    args = [
        "data", "pairs", str(data), "--teacher", f"hf:{models['teacher']}",
        "--strong", f"hf:{models['strong']}", "--weak", f"hf:{models['weak']}",
        "--gen-temperature", "0", "--gen-max-new-tokens", "16", "--max-new-tokens", "24",
        "--retries", "0", "-n", "2", "--no-structured",
    ]  # fmt: skip
    single, sharded = _single_and_sharded(cli, args, tmp_path, monkeypatch)
    ids = [line["id"] for line in sharded["rejected"]]
    assert [i.split(":")[0] for i in ids] == ["p0", "p0", "p1", "p1", "p2", "p2"]
    assert sharded["rejected"] == single["rejected"]
    assert sharded["kept"] == single["kept"]
    assert _timeless(sharded["stats"]) == _timeless(single["stats"])


@pytest.mark.slow  # ~50 s: two two-rank runs
def test_criteria_shards_resume_from_their_own_lines(
    models: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    """Two ranks cut off (rank 0 after its first input, rank 1 half-way through its first
    input's two lines): ``--resume`` continues each shard and merges the same output."""
    records = [
        {"id": f"q{i}", "prompt": f"{i} + {i}?", "responses": [str(2 * i), f"It is {2 * i}."],
         "preference": 0}
        for i in range(4)
    ]  # fmt: skip
    data = write_jsonl(tmp_path / "in.jsonl", records)
    out, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    args = [
        "data", "criteria", str(data), "--teacher", f"hf:{models['teacher']}",
        "--verifier", f"hf:{models['always_b']}", "--max-new-tokens", "24", "--contrastive",
        "-o", str(out), "--stats", str(stats), "--no-structured",
    ]  # fmt: skip
    proc = run(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    whole = read(tmp_path / "out.rejected.jsonl")
    assert [line["id"] for line in whole][:4] == ["q0:c0", "q0:c1", "q1:c0", "q1:c1"]
    # what the ranks had written when they were stopped (q0, q2 are rank 0's; q1, q3 rank 1's)
    shards = tmp_path / ".out.jsonl.shards"
    shards.mkdir()
    write_jsonl(shards / "rank-00000-of-00002.rejected.jsonl", whole[0:2])
    write_jsonl(shards / "rank-00001-of-00002.rejected.jsonl", whole[2:3])
    proc = run([*args, "--resume"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read(tmp_path / "out.rejected.jsonl") == whole
    figures = json.loads(stats.read_text())
    assert figures["resumed"] == 1  # q0; q1 was half-written: built again (from the cache)
    assert figures["inputs"] == 3 and figures["rejected"] == 6
    assert figures["calls"]["calls"] == 0 and figures["calls"]["cached"] > 0  # one shared cache
    assert not shards.exists()
