"""Train → save → reload → score, end to end on tiny random text models through the CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_jsonl
from tests.tiny_models import make_tiny_llama, make_tiny_qwen2

GOOD = [
    "a clear correct helpful answer",
    "a kind precise useful reply",
    "the right answer, well put",
]
BAD = ["nonsense", "wrong wrong wrong", "no idea, go away"]


def synthetic_pairs(n: int, seed: int, prefix: str) -> list[dict[str, Any]]:
    """Learnable pairs: the good-sounding response is preferred; positions are shuffled."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        good, bad = rng.choice(GOOD), rng.choice(BAD)
        swap = rng.random() < 0.5
        records.append(
            {
                "id": f"{prefix}-{i}",
                "prompt": f"Question {i}: how do I do thing number {i}?",
                "criteria": "Prefer the helpful answer.",
                "responses": [bad, good] if swap else [good, bad],
                "preference": 1 if swap else 0,
            }
        )
    return records


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_qwen2(tmp_path_factory.mktemp("qwen2"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("data")
    train = synthetic_pairs(48, 0, "train")
    train.append(  # a ranked record (3 implied pairs) and a tie, which is skipped by default
        {
            "id": "ranked",
            "prompt": "Rank these.",
            "responses": [BAD[0], GOOD[0], BAD[1]],
            "ranking": [1, 0, 2],
        }
    )
    train.append(
        {"id": "tie", "prompt": "Either.", "responses": [GOOD[0], GOOD[1]], "preference": "tie"}
    )
    return write_jsonl(folder / "train.jsonl", train), write_jsonl(
        folder / "eval.jsonl", synthetic_pairs(16, 1, "eval")
    )


@pytest.fixture(scope="module")
def trained(qwen2: Path, data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from omnirm.cli.main import main

    out = tmp_path_factory.mktemp("rm") / "rm"
    train, evaluation = data
    code = main(
        [
            "-q", "train", "bt", "--model", str(qwen2), "--data", str(train), "--eval",
            str(evaluation), "-o", str(out), "--epochs", "3", "--batch-size", "8", "--lr", "2e-3",
            "--max-length", "256", "--merge", "--no-bf16",  # fp32: eval_rewards equal score's
        ]
    )  # fmt: skip
    assert code == 0
    return out


def test_bf16_training_evaluates_in_bf16(
    cli, qwen2: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    train, evaluation = data
    out = tmp_path / "rm"
    result = cli("-q", "train", "bt", "--model", str(qwen2), "--data", str(train), "--eval",
                 str(evaluation), "-o", str(out), "--epochs", "1", "--batch-size", "8",
                 "--lr", "2e-3", "--max-length", "256", "--bf16")  # fmt: skip
    assert result.code == 0, result.stderr
    at_training = [
        json.loads(line) for line in (out / "eval_rewards.jsonl").read_text().splitlines()
    ]
    assert {r["scored_by"]["precision"] for r in at_training} == {"bf16"}
    reloaded = cli("score", "--model", str(out), str(evaluation)).jsonl()
    assert [r["id"] for r in reloaded] == [r["id"] for r in at_training]
    differences = [
        abs(a - b)
        for x, y in zip(at_training, reloaded, strict=True)
        for a, b in zip(x["rewards"], y["rewards"], strict=True)
    ]
    # the head reads bf16 hidden states in fp32: rewards are not rounded to bf16 (8 bits of
    # mantissa: multiples of 1/256 from 0.5 up)
    rewards = [r for x in at_training for r in x["rewards"] if abs(r) >= 0.5]
    assert len(rewards) > 10
    assert sum(abs(r * 256 - round(r * 256)) > 1e-6 for r in rewards) > len(rewards) / 2
    assert max(differences) < 0.1 and 0 < sum(differences) / len(differences) < 0.02


def test_checkpoint_layout_and_training_learns(trained: Path) -> None:
    for name in ("omnirm_config.json", "head.safetensors", "adapter", "tokenizer",
                 "training_config.json", "eval_rewards.jsonl", "merged"):  # fmt: skip
        assert (trained / name).exists(), name
    result = json.loads((trained / "train_result.json").read_text())
    assert result["train_pairs"] == 48 + 3  # the tie is skipped, the ranking gives 3 pairs
    assert result["evals"][-1]["accuracy"] >= 0.9
    config = json.loads((trained / "omnirm_config.json").read_text())
    assert config["head"] == "native" and config["adapter"] == "lora"
    assert config["reward_std"] > 0


def test_reload_reproduces_training_scores(cli, trained: Path, data: tuple[Path, Path]) -> None:  # type: ignore[no-untyped-def]
    _, evaluation = data
    result = cli("score", "--model", str(trained), str(evaluation), "--batch-size", "3")
    assert result.code == 0, result.stderr
    at_training = [
        json.loads(line) for line in (trained / "eval_rewards.jsonl").read_text().splitlines()
    ]
    reloaded = result.jsonl()
    assert [r["id"] for r in reloaded] == [r["id"] for r in at_training]
    for a, b in zip(at_training, reloaded, strict=True):
        assert b["rewards"] == pytest.approx(a["rewards"], abs=1e-5)
        assert b["predicted"] == (0 if b["margin"] > 0 else 1)
        assert b["margin"] == pytest.approx(b["rewards"][0] - b["rewards"][1])
        assert b["scored_by"]["model"] == str(trained)
        assert b["scored_by"]["shared_prefix"] is True
    correct = sum(r["predicted"] == r["preference"] for r in reloaded)
    assert correct / len(reloaded) >= 0.9
    # training scored whole sequences with the adapter unmerged; so does --no-share-prefix
    assert f"{len(reloaded)} with their prompt run once" in result.stderr
    whole = cli("score", "--model", str(trained), str(evaluation), "--no-share-prefix").jsonl()
    for a, b in zip(reloaded, whole, strict=True):
        assert b["rewards"] == pytest.approx(a["rewards"], abs=1e-5)
        assert b["scored_by"]["shared_prefix"] is False


def test_scores_do_not_depend_on_batch_size_or_order(  # type: ignore[no-untyped-def]
    cli, trained: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:
    _, evaluation = data
    one = cli("score", "--model", str(trained), str(evaluation), "--batch-size", "1").jsonl()
    records = [json.loads(line) for line in evaluation.read_text().splitlines()]
    reversed_file = write_jsonl(tmp_path / "rev.jsonl", list(reversed(records)))
    many = cli("score", "--model", str(trained), str(reversed_file), "--batch-size", "7").jsonl()
    by_id = {r["id"]: r["rewards"] for r in many}
    assert [r["id"] for r in many] == [r["id"] for r in reversed(records)]  # input order kept
    for record in one:
        assert by_id[record["id"]] == pytest.approx(record["rewards"], abs=1e-5)


def test_merged_checkpoint_loads_in_plain_transformers(trained: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    merged = trained / "merged"
    model = AutoModelForSequenceClassification.from_pretrained(merged).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged)
    scored = [
        json.loads(line) for line in (trained / "eval_rewards.jsonl").read_text().splitlines()
    ]
    texts = []
    for record in scored[:4]:
        for response in record["responses"]:
            messages = [
                {"role": "system", "content": record["criteria"]},
                {"role": "user", "content": record["prompt"]},
                {"role": "assistant", "content": response},
            ]
            texts.append(tokenizer.apply_chat_template(messages, tokenize=False))
    tokenizer.padding_side = "right"
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        logits = model(**batch).logits.squeeze(-1).tolist()
    expected = [r for record in scored[:4] for r in record["rewards"]]
    assert logits == pytest.approx(expected, abs=1e-4)


def test_criteria_override_changes_scores_and_is_recorded(  # type: ignore[no-untyped-def]
    cli, trained: Path, data: tuple[Path, Path]
) -> None:
    _, evaluation = data
    plain = cli("score", "--model", str(trained), str(evaluation)).jsonl()
    overridden = cli(
        "score", "--model", str(trained), "--criteria", "short answers", str(evaluation)
    ).jsonl()
    assert overridden[0]["scored_by"]["criteria_override"] == "short answers"
    assert overridden[0]["rewards"] != plain[0]["rewards"]


def test_over_length_policy(cli, trained: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    long_prompt = "word " * 400
    path = write_jsonl(
        tmp_path / "long.jsonl",
        [
            {"id": "long-prompt", "prompt": long_prompt, "responses": ["ok", "fine"]},
            {"id": "long-response", "prompt": "hi", "responses": ["ok", "word " * 400]},
            {"id": "short", "prompt": "hi", "responses": ["ok", "fine"]},
        ],
    )
    result = cli(
        "score", "--model", str(trained), "--on-error", "record", "--max-length", "256", str(path)
    )
    assert result.code == 1
    out = result.jsonl()
    assert [r["id"] for r in out] == ["long-prompt", "long-response", "short"]
    assert len(out[0]["rewards"]) == 2  # prompt truncated from the left, scored
    assert "error" in out[1] and out[1]["error"]["field"] == "responses[1]"
    assert "2 sequences had their prompt truncated" in result.stderr
    assert "1 failed" in result.stderr


def test_score_resume_continues_an_interrupted_run(  # type: ignore[no-untyped-def]
    cli, trained: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:
    _, evaluation = data
    full = cli("score", "--model", str(trained), str(evaluation)).jsonl()
    out = tmp_path / "scored.jsonl"
    lines = [json.dumps(r) for r in full]
    out.write_text("\n".join(lines[:5]) + "\n" + lines[5][:40])  # cut off mid-record
    result = cli("score", "--model", str(trained), str(evaluation), "-o", str(out), "--resume")
    assert result.code == 0, result.stderr
    resumed = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in resumed] == [r["id"] for r in full]
    assert "5 records were already scored" in result.stderr


def test_llama_family_and_davidson_ties(tmp_path: Path, data: tuple[Path, Path]) -> None:
    from omnirm.train.bt import BTConfig, train_bt

    llama = make_tiny_llama(tmp_path / "llama")
    train, _ = data
    result = train_bt(
        BTConfig(
            model=str(llama), data=str(train), output=str(tmp_path / "rm"), epochs=1,
            batch_size=16, ties="davidson", max_length=256,
        )
    )  # fmt: skip
    assert result.train_pairs == 48 + 3 + 1  # the tie pair is trained
    assert result.steps == 4


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_process_gloo_training(  # type: ignore[no-untyped-def]
    cli, qwen2: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:
    """A real 2-process data-parallel run on CPU (torchrun + accelerate → gloo)."""
    import os
    import subprocess
    import sys

    train, evaluation = data
    out = tmp_path / "rm"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(_free_port()), "-m", "omnirm", "train", "bt", "--model", str(qwen2),
        "--data", str(train), "--eval", str(evaluation), "-o", str(out), "--batch-size", "4",
        "--max-length", "256",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "evaluating on 16, 2 processes (gloo) on cpu" in proc.stderr
    (summary,) = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    # 50 trainable records, 4 per step on each of 2 processes: 7 steps, not 13
    assert summary["steps"] == 7
    assert summary["evals"][-1]["pairs"] == 16  # exact across processes, no padded duplicates
    scored = cli("score", "--model", str(out), str(evaluation))
    assert scored.code == 0 and len(scored.jsonl()) == 16


def test_accelerate_launch_of_one_cpu_process_is_refused(
    qwen2: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:
    """Without GPUs, ``accelerate launch --num_processes 2`` starts a single process: refused
    before anything is trained or written, naming the launches that do run two."""
    import os
    import subprocess
    import sys

    train, _ = data
    out = tmp_path / "rm"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2",
        "--main_process_port", str(_free_port()), "-m", "omnirm", "train", "bt", "--model",
        str(qwen2), "--data", str(train), "-o", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    assert "error: accelerate launch started one process" in proc.stderr
    assert "accelerate launch --multi_gpu --num_processes N" in proc.stderr
    assert "training on" not in proc.stderr and not out.exists()


def test_launch_check_tells_one_process_from_a_single_run() -> None:
    from omnirm.errors import UsageError
    from omnirm.train.bt import check_launch

    simple = {"ACCELERATE_MIXED_PRECISION": "no", "MASTER_ADDR": "127.0.0.1"}
    with pytest.raises(UsageError, match="started one process"):
        check_launch(1, simple)
    check_launch(1, {"ACCELERATE_MIXED_PRECISION": "no"})  # accelerate launch, one process
    check_launch(1, {})  # plain python
    check_launch(1, {**simple, "WORLD_SIZE": "1"})  # torchrun --nproc_per_node 1
    check_launch(2, simple)


def test_config_file_with_flags_on_top_and_a_saved_config_reused(  # type: ignore[no-untyped-def]
    cli, trained: Path, qwen2: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:
    train, _ = data
    config = tmp_path / "bt.yaml"
    config.write_text(
        f"model: {qwen2}\ndata: {train}\noutput: {tmp_path / 'from-file'}\nepochs: 2\n"
        "max-length: 256\nwarmup_ratio: 0.2\nlora_alpha: 8\nmedia_limits:\n  max_image_pixels: 4096\n"
    )
    result = cli("-q", "train", "bt", "--config", str(config), "--epochs", "0.25",
                 "--max-image-pixels", "2048")  # fmt: skip
    assert result.code == 0, result.stderr
    saved = json.loads((tmp_path / "from-file" / "training_config.json").read_text())
    assert saved["epochs"] == 0.25  # the flag wins
    assert saved["warmup_ratio"] == 0.2 and saved["lora_alpha"] == 8  # fields without a flag
    assert saved["max_length"] == 256 and saved["batch_size"] == 8
    assert saved["media_limits"]["max_image_pixels"] == 2048
    assert json.loads(result.stdout)["output"] == str(tmp_path / "from-file")
    # a run's resolved config is a config: the same run again, into another folder
    again = cli("-q", "train", "bt", "--config", str(trained / "training_config.json"), "-o",
                str(tmp_path / "again"), "--epochs", "0.25")  # fmt: skip
    assert again.code == 0, again.stderr
    first = json.loads((trained / "training_config.json").read_text())
    second = json.loads((tmp_path / "again" / "training_config.json").read_text())
    assert {k: v for k, v in second.items() if k not in ("output", "epochs")} == {
        k: v for k, v in first.items() if k not in ("output", "epochs")
    }
    # without the required settings, and with a setting it does not know
    missing = cli("train", "bt", "--data", str(train))
    assert missing.code == 2 and "missing --model, --output" in missing.stderr
    config.write_text("model: x\nlora_rank: 4\n")
    unknown = cli("train", "bt", "--config", str(config))
    assert (
        unknown.code == 2 and "unknown setting 'lora_rank' (did you mean lora_r?)" in unknown.stderr
    )
    config.write_text(f"model: {qwen2}\ndata: {train}\noutput: o\ntrust_remote_code: true\n")
    remote = cli("train", "bt", "--config", str(config))
    assert remote.code == 2 and "honoured only as --trust-remote-code" in remote.stderr
