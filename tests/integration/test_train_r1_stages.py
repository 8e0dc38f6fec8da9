"""omnirm train r1: rejection sampling, exact resume, metrics and curves, reward components."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_jsonl
from tests.tiny_models import make_tiny_qwen2, make_tiny_verdict_prone


def records(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": f"q{i}",
            "prompt": f"Q{i}",
            "responses": ["yes", "no"],
            "preference": i % 2,
            "criteria": "Prefer the concise, polite answer.",
            "rationale": "Response A is polite." if i % 2 == 0 else "Response B is polite.",
            **extra,
        }
        for i in range(n)
    ]


def metrics(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = weights(a), weights(b)
    assert first.keys() == second.keys()
    for name in first:
        difference = float((first[name].float() - second[name].float()).abs().max())
        assert difference <= 1e-6, (name, difference)


@pytest.fixture(scope="module")
def prone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_verdict_prone(tmp_path_factory.mktemp("prone") / "m", bonus=5.0)


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_qwen2(tmp_path_factory.mktemp("qwen2"))


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))


def rs_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- rejection sampling ----------------------------------------------------------------------


def test_rs_keeps_answers_right_in_both_orders_and_sft_trains_on_them(  # type: ignore[no-untyped-def]
    cli, prone: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [{k: v for k, v in r.items() if k != "rationale"}
                                              for r in records(6)])  # fmt: skip
    out = tmp_path / "out"
    args = ["train", "r1", "--model", str(prone), "--data", str(data), "-o", str(out),
            "--stage", "rs,sft", "--rs-samples", "6", "--max-completion-length", "8"]  # fmt: skip
    result = cli(*args)
    assert result.code == 0, result.stderr
    kept = rs_lines(out / "rs.jsonl")
    assert kept, "the verdict-prone model is right in both orders now and then"
    golds = {r["id"]: r["preference"] for r in records(6)}
    for line in kept:
        answers = line["scored_by"]["answers"]
        ab, ba = ("A" if golds[line["id"]] == 0 else "B"), ("B" if golds[line["id"]] == 0 else "A")
        assert f"[[{ab}]]" in answers["ab"] and f"[[{ba}]]" in answers["ba"], line
        assert line["rationale"] == answers["ab"]
        by = line["scored_by"]
        assert by["model"] == str(prone) and by["temperature"] == 0.8 and by["samples"] == 6
        assert 0 <= by["sample"] < 6 and len(by["weights_sha256"]) == 64
        assert by["fingerprint"] and by["input"]
    assert len({(r["id"], r["scored_by"]["sample"]) for r in kept}) == len(kept)
    steps = metrics(out)
    assert steps[0]["stage"] == "rs" and steps[0]["kept"] == len(kept)
    assert steps[0]["generated"] == 6 * 6 * 2
    sft = [s for s in steps if s["stage"] == "sft"]
    # SFT trained on the kept samples, both orders: ceil(2 × kept / 4) steps
    assert len(sft) == -(-2 * len(kept) // 4)
    summary = result.jsonl()[0]
    assert summary["rs_files"] == {"rs": str(out / "rs.jsonl")}

    # the same run again: every answer comes from the judge's answer cache
    again = cli(*args, "--force")
    assert again.code == 0, again.stderr
    first = metrics(out)[0]
    assert first["generated"] == 0 and first["cached"] == 72
    assert rs_lines(out / "rs.jsonl") == kept


def test_rs_resumes_without_duplicates_and_refuses_other_settings(  # type: ignore[no-untyped-def]
    cli, prone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnirm.resume import ResumableOutput
    from omnirm.train.r1 import R1Config, train_r1

    data = write_jsonl(tmp_path / "d.jsonl", records(8))
    target = tmp_path / "kept.jsonl"

    def config(out: str, **changes: Any) -> R1Config:
        return R1Config(**{**dict(model=str(prone), data=str(data), output=str(tmp_path / out),
                          stage="rs", rs_samples=8, max_completion_length=8, batch_size=2,
                          rs_output=str(target)), **changes})  # fmt: skip

    train_r1(config("whole"))
    whole = rs_lines(target)
    assert len({r["id"] for r in whole}) >= 2
    target.unlink()

    written = []
    original = ResumableOutput.write

    def stop_after_one(self: ResumableOutput, obj: dict[str, Any]) -> None:
        if written:
            raise KeyboardInterrupt
        written.append(obj["id"])
        original(self, obj)

    monkeypatch.setattr(ResumableOutput, "write", stop_after_one)
    with pytest.raises(KeyboardInterrupt):
        train_r1(config("cut"))
    monkeypatch.setattr(ResumableOutput, "write", original)
    # the stopped run's line is in its process's shard; the file is not written
    shards = tmp_path / ".kept.jsonl.shards"
    assert not target.exists()
    assert [p.name for p in shards.iterdir()] == ["rank-00000-of-00001.jsonl"]
    (cut,) = rs_lines(shards / "rank-00000-of-00001.jsonl")
    assert cut == whole[0]
    anew = cli("train", "r1", "--model", str(prone), "--data", str(data), "-o",
               str(tmp_path / "anew"), "--stage", "rs", "--rs-output", str(target))  # fmt: skip
    assert anew.code == 2 and f"a stopped run left its lines in {shards}" in anew.stderr
    # as if a run had merged that shard and been killed before removing it, and a stopped run
    # of 3 processes had left the last record's lines in its third shard
    target.write_text(json.dumps(cut) + "\n")
    last = [line for line in whole if line["id"] == whole[-1]["id"]]
    (shards / "rank-00002-of-00003.jsonl").write_text("".join(json.dumps(r) + "\n" for r in last))
    refused = cli("train", "r1", "--model", str(prone), "--data", str(data), "-o",
                  str(tmp_path / "cut"), "--stage", "rs", "--rs-samples", "8",
                  "--max-completion-length", "8", "--batch-size", "2", "--rs-output",
                  str(target), "--resume", "--rs-temperature", "0.5")  # fmt: skip
    assert refused.code == 2 and "--rs-temperature was 0.8, now 0.5" in refused.stderr
    train_r1(config("cut", resume=True))
    resumed = rs_lines(target)
    key = lambda r: (r["id"], r["scored_by"]["sample"])  # noqa: E731
    assert sorted(map(key, resumed)) == sorted(map(key, whole))  # nothing twice, nothing lost
    assert resumed == whole  # in input order, the same answers (the cache's)
    assert not shards.exists()
    (entry,) = metrics(tmp_path / "cut")
    assert entry["records_done_before"] == 2 and entry["records"] == 6

    other = write_jsonl(tmp_path / "other.jsonl", records(8))
    mixed = cli("train", "r1", "--model", str(prone), "--data", str(other), "-o",
                str(tmp_path / "fresh"), "--stage", "rs", "--rs-output", str(target))  # fmt: skip
    assert mixed.code == 2 and "exists; pass --resume" in mixed.stderr
    before = data.read_bytes()  # --force replaces an earlier rs file, never the training data
    onto_data = cli("train", "r1", "--model", str(prone), "--data", str(data), "-o",
                    str(tmp_path / "onto"), "--stage", "rs", "--rs-output", str(data), "--force")  # fmt: skip
    assert onto_data.code == 2 and "is the input file" in onto_data.stderr, onto_data.stderr
    assert data.read_bytes() == before


def test_rs_in_two_processes_keeps_what_one_process_keeps(prone: Path, tmp_path: Path) -> None:
    """--stage rs under torchrun with 2 CPU processes (gloo): each judges its share (whole
    batches, dealt round-robin) into its shard and the main one merges them: one rs.jsonl equal
    line for line to a 1-process run's, in input order, no shard left, the metrics totals; a
    2-process --resume takes the lines of the file and of a stopped run's shard, once each."""
    import os
    import subprocess
    import sys

    from tests.integration.test_bt_text import _free_port

    data = write_jsonl(tmp_path / "d.jsonl", records(10))

    def run(processes: int, *extra: str) -> tuple[Path, str]:
        out = tmp_path / f"out{processes}"
        launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                    "--master_port", str(_free_port())] if processes > 1 else []  # fmt: skip
        command = [sys.executable, *launcher, "-m", "omnirm", "train", "r1", "--model",
                   str(prone), "--data", str(data), "-o", str(out), "--stage", "rs",
                   "--rs-samples", "4", "--max-completion-length", "8", "--batch-size", "4", *extra]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1",
               "OMNIRM_CACHE_DIR": str(tmp_path / f"cache{processes}")}  # fmt: skip
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return out, proc.stderr

    one, _ = run(1)
    two, stderr = run(2)
    assert "2 processes (gloo) on cpu" in stderr
    assert stderr.count("answers generated, 0 from the cache, by 2 processes") == 1  # main's
    single, both = rs_lines(one / "rs.jsonl"), rs_lines(two / "rs.jsonl")
    assert both == single  # every field, scored_by included
    position = {r["id"]: i for i, r in enumerate(records(10))}
    at = [position[line["id"]] for line in both]
    assert at == sorted(at)  # input order
    # batches of 4 records dealt round-robin (records 0-3 and 8-9 to the first process, 4-7
    # to the second): both kept some, each sampled in the batch one process samples it in
    assert {(p // 4) % 2 for p in at} == {0, 1}, at
    assert [p.name for p in two.iterdir() if p.name.startswith(".")] == []  # shards removed
    steps = [metrics(one)[0], metrics(two)[0]]
    for entry in steps:
        entry.pop("seconds")
        entry.pop("path")
    assert steps[0] == steps[1]
    assert steps[1]["records"] == 10 and steps[1]["kept"] == len(both)
    assert steps[1]["generated"] == 10 * 4 * 2

    # killed after the merge, before the state after the stage was saved (the state before it
    # is the newest), with a shard of a stopped run left beside the file: one record's lines
    # only there, the first record's in both (merged before the shards were removed)
    import shutil

    shutil.rmtree(two / "state")
    ids = list(dict.fromkeys(line["id"] for line in both))
    assert len(ids) >= 3, ids
    moved = [line for line in both if line["id"] == ids[1]]
    stay = [line for line in both if line["id"] != ids[1]]
    (two / "rs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in stay))
    shards = two / ".rs.jsonl.shards"
    shards.mkdir()
    again = [line for line in both if line["id"] == ids[0]] + moved
    (shards / "rank-00001-of-00002.jsonl").write_text("".join(json.dumps(r) + "\n" for r in again))
    _, stderr = run(2, "--resume")
    assert rs_lines(two / "rs.jsonl") == single and not shards.exists()
    (entry,) = metrics(two)
    assert entry["records_done_before"] == len(ids) and entry["records"] == 10 - len(ids)
    assert entry["generated"] == 0 and entry["kept"] == 0  # the rest: from the answer cache


def test_stage_lists_are_checked(cli, qwen2: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "d.jsonl", records(2))
    for stage, message in (("rs,grpo", "the stage after it must be sft"),
                           ("sft,dpo", "--stage takes a comma-separated list")):  # fmt: skip
        result = cli("train", "r1", "--model", str(qwen2), "--data", str(data),
                     "-o", str(tmp_path / "o"), "--stage", stage)  # fmt: skip
        assert result.code == 2 and message in result.stderr, result.stderr


# -- exact resume ------------------------------------------------------------------------------


class Interrupted(Exception):
    pass


@pytest.mark.parametrize(
    ("stage", "full", "stop_in"),
    [("sft", False, "sft"), ("sft,grpo", False, "grpo"), ("sft,grpo", True, "grpo")],
    ids=["sft-lora", "sft-grpo-lora", "sft-grpo-full"],
)
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(
    qwen2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str, full: bool,
    stop_in: str,
) -> None:  # fmt: skip
    from omnirm.train.r1 import R1Config, StageCheckpoints, train_r1

    data = write_jsonl(tmp_path / "d.jsonl", records(6))

    def config(out: str, **changes: Any) -> R1Config:
        return R1Config(**{**dict(model=str(qwen2), data=str(data), output=str(tmp_path / out),
                          stage=stage, full=full, epochs=2.0, batch_size=2, save_steps=2,
                          lr=1e-2, generations=2, prompts_per_step=2, max_completion_length=4,
                          max_steps=5, temperature=1.0, warmup_ratio=0.2, lora_dropout=0.1),
                          **changes})  # fmt: skip

    whole = train_r1(config("whole"))
    original = StageCheckpoints.after_step

    def stop_at_three(self: StageCheckpoints, step: int) -> None:
        original(self, step)
        if step == 3 and self.output.name == "cut" and Path(self.output).exists():
            label = stage.split(",")[self.stage]
            if label == stop_in:
                raise Interrupted

    monkeypatch.setattr(StageCheckpoints, "after_step", stop_at_three)
    with pytest.raises(Interrupted):
        train_r1(config("cut"))
    monkeypatch.setattr(StageCheckpoints, "after_step", original)
    progress = json.loads((tmp_path / "cut" / "state" / "progress.json").read_text())
    assert progress["position"] == {"stage": stage.split(",").index(stop_in), "step": 2}
    resumed = train_r1(config("cut", resume=True))
    assert_same_weights(tmp_path / "whole", tmp_path / "cut")
    assert resumed.steps == whole.steps
    drop = {"seconds", "elapsed", "tokens_per_second", "generation_seconds"}
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(metrics(tmp_path / "cut")) == strip(metrics(tmp_path / "whole"))


def test_resume_refuses_other_settings_and_a_folder_without_state(  # type: ignore[no-untyped-def]
    cli, qwen2: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", records(4))
    out = tmp_path / "o"
    base = ["train", "r1", "--model", str(qwen2), "--data", str(data), "-o", str(out),
            "--stage", "sft", "--max-steps", "2", "--save-steps", "1"]  # fmt: skip
    assert cli(*base).code == 0
    changed = cli(*base, "--resume", "--lr", "0.5")
    assert changed.code == 2 and "--lr was null, now 0.5" in changed.stderr
    again = cli(*base, "--resume", "--plot")  # a harmless change; the run was finished
    assert again.code == 0, again.stderr
    assert (out / "curves.png").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x").write_text("")
    none = cli(*base[:6], "-o", str(empty), "--resume")
    assert none.code == 2 and "holds no saved training state" in none.stderr


# -- metrics, display and curves ------------------------------------------------------------


def test_metrics_keys_progress_lines_and_curves(  # type: ignore[no-untyped-def]
    cli, prone: Path, tmp_path: Path
) -> None:
    from PIL import Image

    data = write_jsonl(tmp_path / "d.jsonl", records(4))
    out = tmp_path / "o"
    result = cli("train", "r1", "--model", str(prone), "--data", str(data), "-o", str(out),
                 "--stage", "sft,grpo", "--max-steps", "2", "--generations", "2",
                 "--prompts-per-step", "2", "--max-completion-length", "6", "--plot",
                 "--rubric-weight", "0.5", "--length-weight", "0.1")  # fmt: skip
    assert result.code == 0, result.stderr
    steps = metrics(out)
    sft = [s for s in steps if s["stage"] == "sft"]
    grpo = [s for s in steps if s["stage"] == "grpo"]
    for key in ("loss", "lr", "tokens_per_second", "seconds", "elapsed"):
        assert all(key in s for s in sft), key
    for key in ("reward", "reward/correct", "reward/format", "reward/consistency",
                "reward/rubric", "reward/length", "accuracy", "format_rate",
                "completion_length", "kl", "clip_fraction", "tokens_per_second",
                "generation_seconds", "seconds", "elapsed"):  # fmt: skip
        assert all(key in s for s in grpo), key
    assert all(s["tokens_per_second"] > 0 for s in steps)
    assert "sft: 2/2 (100%) loss" in result.stderr and "grpo: 2/2 (100%) reward" in result.stderr
    image = Image.open(out / "curves.png")
    assert image.format == "PNG" and image.size[0] > 300
    quiet = cli("-q", "train", "r1", "--model", str(prone), "--data", str(data), "-o", str(out),
                "--stage", "sft", "--max-steps", "1", "--force")  # fmt: skip
    assert quiet.code == 0 and "sft: 1/1" not in quiet.stderr


# -- data parallel -----------------------------------------------------------------------------


def test_two_process_gloo_training_agrees_on_the_weights(  # type: ignore[no-untyped-def]
    cli, qwen2: Path, tmp_path: Path
) -> None:
    """SFT then GRPO in 2 CPU processes (torchrun + accelerate → gloo): both end with the same
    weights, and the judge they save loads and judges."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    data = write_jsonl(tmp_path / "d.jsonl", records(8))
    out = tmp_path / "judge"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(port), "-m", "omnirm", "train", "r1", "--model", str(qwen2),
        "--data", str(data), "-o", str(out), "--stage", "sft,grpo", "--batch-size", "2",
        "--max-steps", "2", "--generations", "2", "--prompts-per-step", "2",
        "--max-completion-length", "4", "--save-steps", "1",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMNIRM_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes (gloo) on cpu" in proc.stderr
    (summary,) = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert summary["processes_agree"] is True and summary["steps"] == {"sft": 2, "grpo": 2}
    steps = metrics(out)
    assert [(s["stage"], s["step"]) for s in steps] == [
        ("sft", 1), ("sft", 2), ("grpo", 1), ("grpo", 2)
    ]  # fmt: skip
    from transformers import AutoModelForCausalLM

    from omnirm.train.r1.rs import weights_digest

    saved = AutoModelForCausalLM.from_pretrained(out)
    assert weights_digest(saved) == summary["weights_sha256"]
    scored = cli("score", "--judge", f"hf:{out}", str(data), "--max-new-tokens", "4")
    assert scored.code == 0, scored.stderr
    assert len(scored.jsonl()) == 8


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_weights(qwen2: Path, tmp_path: Path) -> None:
    """SIGKILL once metrics.jsonl holds GRPO's first step (a checkpoint every step), then
    --resume: the judge equals an uninterrupted run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    data = write_jsonl(tmp_path / "d.jsonl", records(6))

    def args(out: Path) -> list[str]:
        return [sys.executable, "-m", "omnirm", "-q", "train", "r1", "--model", str(qwen2),
                "--data", str(data), "-o", str(out), "--stage", "sft,grpo", "--max-steps", "4",
                "--batch-size", "2", "--generations", "2", "--prompts-per-step", "2",
                "--max-completion-length", "4", "--save-steps", "1", "--lr", "1e-2"]  # fmt: skip

    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMNIRM_CACHE_DIR": str(tmp_path / "cache")}
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert subprocess.run(args(whole), env=env, capture_output=True, timeout=600).returncode == 0
    process = subprocess.Popen(args(cut), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        path = cut / "metrics.jsonl"
        if path.is_file() and b'"stage": "grpo"' in path.read_bytes():
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert process.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    resumed = subprocess.run([*args(cut), "--resume"], env=env, capture_output=True, text=True,
                             timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_weights(whole, cut)
    assert [(s["stage"], s["step"]) for s in metrics(cut)] == [
        (s["stage"], s["step"]) for s in metrics(whole)
    ]
