"""Data-parallel ``score`` and ``bench`` as real 2-process runs (torchrun, gloo on CPU): the same
records, values and order as one process; a rank killed with SIGKILL, then ``--resume``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import write_jsonl
from tests.integration.test_bench import gold_pairs, saved_reward_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rm(tiny_qwen2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_reward_model(tiny_qwen2, tmp_path_factory.mktemp("shard-rm") / "rm")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
        "OMNIRM_CACHE_DIR": str(tmp_path / "cache"),
    }


def torchrun(args: list[str], tmp_path: Path, processes: int = 2) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes),
        "--master-port", str(_free_port()), "-m", "omnirm", *args,
    ]  # fmt: skip


def run(args: list[str], tmp_path: Path, processes: int = 2) -> subprocess.CompletedProcess[str]:
    command = torchrun(args, tmp_path, processes)
    return subprocess.run(
        command, capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path, timeout=300
    )


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same(sharded: list[dict[str, Any]], single: list[dict[str, Any]]) -> None:
    assert [r["id"] for r in sharded] == [r["id"] for r in single]
    for a, b in zip(sharded, single, strict=True):
        assert a["rewards"] == pytest.approx(b["rewards"], abs=1e-5)
        assert a["predicted"] == b["predicted"]
        assert a["scored_by"] == b["scored_by"]


def test_two_ranks_score_as_one_process(cli: Callable[..., Any], rm: Path, tmp_path: Path) -> None:
    records = gold_pairs(11)  # odd: the ranks' shares differ in size
    source = write_jsonl(tmp_path / "in.jsonl", records)
    single = cli("score", "--model", str(rm), str(source))
    assert single.code == 0, single.stderr
    out = tmp_path / "out.jsonl"
    proc = run(["score", "--model", str(rm), str(source), "-o", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "11 lines of 2 shards merged in input order" in proc.stderr
    assert "5 records scored" in proc.stderr and "6 records scored" in proc.stderr
    assert_same(read(out), single.jsonl())
    assert not (tmp_path / ".out.jsonl.shards").exists()  # removed once merged

    # no -o: rank 0 writes the merged stream to stdout, rank 1 nothing
    proc = run(["score", "--model", str(rm), str(source)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same([json.loads(line) for line in proc.stdout.splitlines()], single.jsonl())
    assert not list(tmp_path.glob(".omnirm-shards-*"))


def assert_close(a: Any, b: Any, path: str = "") -> None:
    """Equal JSON values, numbers to 1e-4 (a bench's statistics of rewards equal to 1e-6)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for key in a:
            assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{path}[{index}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, abs=1e-4), path
    else:
        assert a == b, path


@pytest.mark.slow
def test_bench_and_bon_under_two_ranks(cli: Callable[..., Any], rm: Path, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "gold.jsonl", gold_pairs(15))
    args = ["bench", "--model", str(rm), str(source), "--json", "--bootstrap", "50"]
    single = cli(*args, "--scores", str(tmp_path / "one-store.jsonl"))
    assert single.code == 0, single.stderr
    proc = run([*args, "--scores", str(tmp_path / "store.jsonl")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (report,) = [json.loads(line) for line in proc.stdout.splitlines()]  # rank 0 only
    assert_close(report, single.jsonl()[0])
    # one store a rank (each is locked by its writer)
    assert (tmp_path / "store.rank-00001-of-00002.jsonl").exists()

    candidates = [
        {"id": f"c{i}", "prompt": f"Q {i}?", "responses": [f"a{i}", f"b {i} b", "c"],
         "gold_scores": [0.1, 0.5, 0.2 + i / 100]}
        for i in range(9)
    ]  # fmt: skip
    source = write_jsonl(tmp_path / "candidates.jsonl", candidates)
    single = cli("bon", "--model", str(rm), str(source))
    assert single.code == 0, single.stderr
    out = tmp_path / "best.jsonl"
    proc = run(["bon", "--model", str(rm), str(source), "-o", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    merged, expected = read(out), single.jsonl()
    assert [r["id"] for r in merged] == [r["id"] for r in expected]
    assert [r["best"] for r in merged] == [r["best"] for r in expected]
    for a, b in zip(merged, expected, strict=True):
        assert a["rewards"] == pytest.approx(b["rewards"], abs=1e-5)
    quality = [line for line in proc.stderr.splitlines() if "selection quality" in line]
    assert quality == [line for line in single.stderr.splitlines() if "selection quality" in line]
    proc = run(["bon", "--model", str(rm), str(source), "--pairs", str(tmp_path / "p")], tmp_path)
    assert proc.returncode != 0 and "--group-by and --pairs run in one process" in proc.stderr


@pytest.mark.slow
def test_bad_records_skipped_or_recorded_across_ranks(
    cli: Callable[..., Any], rm: Path, tmp_path: Path
) -> None:
    lines = [json.dumps(r) for r in gold_pairs(6)]
    lines.insert(3, "{not json")
    lines.insert(5, json.dumps({"id": "one", "prompt": "p", "responses": ["only"]}))
    source = tmp_path / "in.jsonl"
    source.write_text("".join(line + "\n" for line in lines))
    for policy in ("skip", "record"):
        single = cli("score", "--model", str(rm), str(source), "--on-error", policy)
        out = tmp_path / f"{policy}.jsonl"
        args = ["score", "--model", str(rm), str(source), "-o", str(out), "--on-error", policy]
        proc = run(args, tmp_path)
        assert proc.returncode == single.code, proc.stderr[-3000:]
        merged = read(out)
        expected = single.jsonl()
        assert [r.get("id") for r in merged] == [r.get("id") for r in expected]
        assert [("error" in r) for r in merged] == [("error" in r) for r in expected]
        if policy == "skip":
            assert "2 records skipped" in proc.stderr


def _rank_process(launcher: psutil.Process, rank: int) -> psutil.Process | None:
    for child in launcher.children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank) and "omnirm" in child.cmdline():
                return child
        except psutil.Error:
            continue
    return None


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_a_killed_rank_resumes_its_shard(cli: Callable[..., Any], rm: Path, tmp_path: Path) -> None:
    records = gold_pairs(400)
    source = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    shard = tmp_path / ".out.jsonl.shards" / "rank-00001-of-00002.jsonl"
    args = ["score", "--model", str(rm), str(source), "-o", str(out), "--batch-size", "1"]
    launcher = subprocess.Popen(
        torchrun(args, tmp_path), env=_env(tmp_path), cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    killed_at = None
    while launcher.poll() is None and time.monotonic() < deadline:
        if _lines(shard) >= 1:
            victim = _rank_process(psutil.Process(launcher.pid), 1)
            if victim is not None:
                victim.send_signal(signal.SIGKILL)
                killed_at = _lines(shard)
                break
        time.sleep(0.003)
    _, stderr = launcher.communicate(timeout=120)
    assert killed_at is not None, stderr[-3000:]
    assert launcher.returncode != 0
    assert not out.exists() or out.stat().st_size == 0  # nothing merged
    kept = _lines(shard)
    assert 0 < kept < 200, "the rank was killed mid-run"

    proc = run([*args, "--resume"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resumed: {kept} records were already scored" in proc.stderr
    merged = read(out)
    assert len({r["id"] for r in merged}) == len(merged) == 400
    single = cli("score", "--model", str(rm), str(source))
    assert_same(merged, single.jsonl())


def test_standard_input_is_refused_under_several_ranks(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    result = cli("score", "-")
    assert result.code == 2
    assert "score under 2 processes reads a FILE, not standard input" in result.stderr


@pytest.mark.slow
def test_resume_refuses_shards_of_another_world(rm: Path, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", gold_pairs(4))
    folder = tmp_path / ".out.jsonl.shards"
    folder.mkdir()
    (folder / "rank-00000-of-00003.jsonl").write_text("")
    args = ["score", "--model", str(rm), str(source), "-o", str(tmp_path / "out.jsonl")]
    proc = run([*args, "--resume"], tmp_path)
    assert proc.returncode != 0
    assert "holds shards of another number of processes" in proc.stderr


def test_merge_finds_lost_and_duplicated_lines() -> None:
    from omnirm.distributed import merge
    from omnirm.errors import UsageError
    from omnirm.records import parse_record

    items = [(n + 1, parse_record({"id": f"r{n}", "prompt": "p", "responses": ["a", "b"]}))
             for n in range(4)]  # fmt: skip

    def lines(*ids: str) -> list[dict[str, Any]]:
        return [{"id": i, "scored_by": {"fingerprint": "f"}} for i in ids]

    class Sink:
        def __init__(self) -> None:
            self.lines: list[dict[str, Any]] = []

        def write(self, obj: Any) -> None:
            self.lines.append(obj)

    sink = Sink()
    assert merge(items, [iter(lines("r0", "r2")), iter(lines("r1", "r3"))], sink) == (4, 0)
    assert [line["id"] for line in sink.lines] == ["r0", "r1", "r2", "r3"]
    with pytest.raises(UsageError, match="record 'r2' has no line in shard 0"):
        merge(items, [iter(lines("r0")), iter(lines("r1", "r3"))], Sink())
    assert merge(items, [iter(lines("r0")), iter(lines("r1", "r3"))], Sink(), may_drop=True) == (
        3,
        1,
    )
    with pytest.raises(UsageError, match="shard 1: line of record 'r3' matches no record"):
        merge(items, [iter(lines("r0", "r2")), iter(lines("r1", "r3", "r3"))], Sink())


def test_merge_of_built_lines_keeps_each_inputs_lines_together() -> None:
    """The builders' merge: an input's lines come from the kept and the rejects shards of its
    rank, several in a row; a lost or doubled part is an error."""
    from omnirm.data.build import _all_parts, _built_key
    from omnirm.distributed import ShardedOutput, merge_outputs
    from omnirm.errors import UsageError
    from omnirm.records import parse_record
    from omnirm.resume import item_hash

    items = [(n + 1, parse_record({"id": f"r{n}", "prompt": "p", "responses": ["a", "b"]}))
             for n in range(3)]  # fmt: skip
    digest = {record.id: item_hash(record) for _, record in items}

    def built(source: str, part: int, of: int) -> dict[str, Any]:
        stamp = {"source_id": source, "input": digest[source], "part": part, "of": of}
        return {"id": f"{source}:{part}", "provenance": stamp}

    class Sink:
        def __init__(self) -> None:
            self.ids: list[str] = []

        def write(self, obj: Any) -> None:
            self.ids.append(obj["id"])

    def merged(kept: list[list[Any]], rejected: list[list[Any]]) -> tuple[Sink, Sink]:
        sinks = Sink(), Sink()
        outputs = [
            ShardedOutput([iter(lines) for lines in kept], sinks[0], ["k0", "k1"]),
            ShardedOutput([iter(lines) for lines in rejected], sinks[1], ["x0", "x1"]),
        ]
        assert merge_outputs(items, outputs, several=True, key=_built_key, check=_all_parts)
        return sinks

    # r0 (rank 0): part 0 kept, part 1 rejected; r1 (rank 1): both rejected; r2 (rank 0): kept
    kept = [[built("r0", 0, 2), built("r2", 0, 1)], []]
    rejected = [[built("r0", 1, 2)], [built("r1", 0, 2), built("r1", 1, 2)]]
    good, bad = merged(kept, rejected)
    assert good.ids == ["r0:0", "r2:0"]
    assert bad.ids == ["r0:1", "r1:0", "r1:1"]
    with pytest.raises(UsageError, match=r"record 'r1': lines \[0\] of its 2"):
        merged(kept, [[built("r0", 1, 2)], [built("r1", 0, 2)]])
    with pytest.raises(UsageError, match=r"record 'r0': lines \[0, 1, 1\] of its 2"):
        merged(kept, [[built("r0", 1, 2), built("r0", 1, 2)], rejected[1]])
    with pytest.raises(UsageError, match="record 'r1' has no line in k1 or x1"):
        merged(kept, [rejected[0], []])
