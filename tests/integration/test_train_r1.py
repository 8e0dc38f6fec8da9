"""omnirm train r1 end to end on tiny random text models: SFT, GRPO, the judge it saves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_jsonl
from tests.tiny_models import make_tiny_qwen2, make_tiny_verdict_prone


def records(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"r{i}",
            "prompt": f"What is {i} plus one?",
            "responses": [f"It is {i + 1}.", "No idea."] if i % 2 == 0 else ["No.", f"{i + 1}."],
            "preference": i % 2,
            "criteria": "Prefer the correct answer.",
            "rationale": "Response A gives the sum; response B does not."
            if i % 2 == 0
            else "Response B gives the sum; response A does not.",
        }
        for i in range(n)
    ]


def metrics(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_qwen2(tmp_path_factory.mktemp("qwen2"))


@pytest.fixture(scope="module")
def train_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "train.jsonl", records(6))


@pytest.fixture(scope="module")
def sft_judge(qwen2: Path, train_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from omnirm.cli.main import main

    out = tmp_path_factory.mktemp("judge") / "judge"
    code = main(
        [
            "-q", "train", "r1", "--model", str(qwen2), "--data", str(train_file), "-o", str(out),
            "--stage", "sft", "--epochs", "8", "--batch-size", "4", "--lr", "3e-3", "--full",
        ]
    )  # fmt: skip
    assert code == 0
    return out


def test_sft_labels_only_the_answer(qwen2: Path) -> None:
    from transformers import AutoTokenizer

    from omnirm.train.r1.policy import answer_ids, prompt_ids

    tokenizer = AutoTokenizer.from_pretrained(qwen2)
    conversation = [
        {"role": "system", "content": "Judge."},
        {"role": "user", "content": [{"type": "text", "text": "Which?"}]},
    ]
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids, labels = answer_ids(tokenizer, conversation, "B is right.\n\n[[B]]", {im_end})
    start = len(prompt_ids(tokenizer, conversation))
    assert labels[:start] == [-100] * start
    kept = [t for t in labels if t != -100]
    assert tokenizer.decode(kept) == "B is right.\n\n[[B]]<|im_end|>"
    assert labels[-1] == -100 and ids[-1] != im_end  # the template's newline after the turn


def test_sft_learns_and_saves_a_judge(sft_judge: Path) -> None:
    for name in ("config.json", "model.safetensors", "tokenizer_config.json",
                 "training_config.json", "metrics.jsonl", "train_result.json"):  # fmt: skip
        assert (sft_judge / name).is_file(), name
    assert not (sft_judge / "adapters").exists()  # --full: no adapter to keep
    steps = metrics(sft_judge)
    assert [s["step"] for s in steps] == list(range(1, 25))  # 12 examples / 4, eight epochs
    assert {s["stage"] for s in steps} == {"sft"}
    assert steps[-1]["loss"] < 0.75 * steps[0]["loss"]
    config = json.loads((sft_judge / "training_config.json").read_text())
    assert (
        config["stage"] == "sft"
        and config["lr_by_stage"] == {"sft": 3e-3}
        and config["bf16"] is False
    )
    result = json.loads((sft_judge / "train_result.json").read_text())
    assert result["records"] == 6 and result["examples"] == 12 and result["steps"] == {"sft": 24}


def test_score_runs_the_trained_judge(cli, sft_judge: Path, train_file: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("score", "--judge", f"hf:{sft_judge}", str(train_file), "--max-new-tokens", "24")
    assert result.code == 0, result.stderr
    scored = result.jsonl()
    assert [r["id"] for r in scored] == [f"r{i}" for i in range(6)]
    for record in scored:
        assert [j["order"] for j in record["judgements"]] == ["ab", "ba"]
        assert record["scored_by"]["judge"] == f"hf:{sft_judge}"
        assert all(j["answer"] is not None for j in record["judgements"])


def test_bench_and_bon_run_the_trained_judge(cli, sft_judge: Path, train_file: Path) -> None:  # type: ignore[no-untyped-def]
    spec = f"hf:{sft_judge}"
    bench = cli("bench", str(train_file), "--judge", spec, "--max-new-tokens", "24", "--json",
                "--bootstrap", "0")  # fmt: skip
    assert bench.code == 0, bench.stderr
    (report,) = bench.jsonl()
    assert [(t["kind"], t["n"]) for t in report["tasks"]] == [("judge", 6)]
    assert "orders both" in report["protocol"]["judge"]
    bon = cli("bon", str(train_file), "--judge", spec, "--max-new-tokens", "24")
    assert bon.code == 0, bon.stderr
    picked = bon.jsonl()
    assert [r["id"] for r in picked] == [f"r{i}" for i in range(6)]
    assert all(r["best"] in (0, 1) for r in picked)
    assert spec in json.dumps(picked[0]["scored_by"])


def test_output_folder_needs_force(cli, qwen2: Path, train_file: Path, sft_judge: Path) -> None:  # type: ignore[no-untyped-def]
    again = cli(
        "train", "r1", "--model", str(qwen2), "--data", str(train_file), "-o", str(sft_judge)
    )
    assert again.code == 2
    assert f"-o {sft_judge}: folder is not empty" in again.stderr
    assert "or --resume to continue the run saved there" in again.stderr


def test_sft_refuses_a_record_without_rationale(cli, qwen2: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = records(3)
    del data[1]["rationale"]
    path = write_jsonl(tmp_path / "bad.jsonl", data)
    result = cli(
        "train", "r1", "--model", str(qwen2), "--data", str(path), "-o", str(tmp_path / "o"),
        "--stage", "sft",
    )  # fmt: skip
    assert result.code != 0
    assert f"{path}:2: record 'r1': rationale:" in result.stderr


def test_grpo_kl_starts_at_zero_and_reward_functions_get_the_columns(  # type: ignore[no-untyped-def]
    cli, qwen2: Path, train_file: Path, tmp_path: Path
) -> None:
    calls = tmp_path / "calls.jsonl"
    module = tmp_path / "judge_rewards.py"
    module.write_text(
        "import json\n"
        "def echo(prompts, completions, completion_ids, preference, gold, order, id, **kwargs):\n"
        f"    with open({str(calls)!r}, 'a') as handle:\n"
        "        handle.write(json.dumps({'n': len(prompts), 'preference': preference,\n"
        "            'gold': gold, 'order': order, 'id': id, 'roles': [m['role'] for m in\n"
        "            prompts[0]], 'completion': completions[0], 'ids': len(completion_ids),\n"
        "            'step': kwargs['trainer_state'].global_step,\n"
        "            'criteria': kwargs['criteria']}) + '\\n')\n"
        "    return [0.25] * len(prompts)\n"
    )
    out = tmp_path / "grpo"
    result = cli(
        "train", "r1", "--model", str(qwen2), "--data", str(train_file), "-o", str(out),
        "--stage", "grpo", "--max-steps", "2", "--generations", "3", "--prompts-per-step", "2",
        "--max-completion-length", "6", "--reward-fn", f"{module}:echo", "--lr", "1e-2",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    summary = result.jsonl()[0]
    assert summary["steps"] == {"grpo": 2}
    steps = metrics(out)
    assert [s["step"] for s in steps] == [1, 2]
    assert steps[0]["kl"] == 0.0  # the adapter starts as the identity: policy = reference
    for key in ("reward", "reward/correct", "reward/format", "reward/length", "accuracy",
                "format_rate", "completion_length", "clip_fraction", "seconds"):  # fmt: skip
        assert key in steps[0], key
    assert steps[0][f"reward/{module}:echo"] == 0.25
    assert "grpo: 1/2 (50%) reward" in result.stderr
    seen = [json.loads(line) for line in calls.read_text().splitlines()]
    assert [c["step"] for c in seen] == [1, 2]
    first = seen[0]
    assert first["n"] == 6 and first["ids"] == 6  # two prompts, three answers each
    assert first["roles"] == ["system", "user"]
    assert first["completion"][0]["role"] == "assistant"
    for column in ("preference", "gold", "order", "id", "criteria"):
        assert len(first[column]) == 6
    for preference, gold, order in zip(
        first["preference"], first["gold"], first["order"], strict=True
    ):
        assert gold == ("A" if (preference == 0) == (order == "ab") else "B")
    assert (out / "adapters" / "grpo" / "adapter_model.safetensors").is_file()


def test_grpo_raises_the_format_reward(tmp_path: Path) -> None:
    """A tiny model that writes a well-formed verdict about a third of the time learns, from
    the format reward alone, to write one more often."""
    from omnirm.train.r1 import R1Config, train_r1

    model = make_tiny_verdict_prone(tmp_path / "prone", bonus=1.5)
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [{"id": f"q{i}", "prompt": f"Q{i}", "responses": ["yes", "no"], "preference": i % 2}
         for i in range(4)],
    )  # fmt: skip
    out = tmp_path / "out"
    train_r1(
        R1Config(
            model=str(model), data=str(data), output=str(out), stage="grpo", max_steps=10,
            generations=8, prompts_per_step=4, max_completion_length=8, batch_size=32,
            lr=1e-3, correct_weight=0.0, format_weight=1.0, grpo_epochs=100.0,
            warmup_ratio=0.0, loss_norm="sequence",
        )
    )  # fmt: skip
    rates = [s["format_rate"] for s in metrics(out)]
    assert rates[0] > 0.1  # reachable by sampling from the start
    assert sum(rates[-4:]) / 4 > sum(rates[:2]) / 2 + 0.1, rates


@pytest.mark.parametrize("full", [False, True], ids=["lora", "full"])
def test_sft_then_grpo(cli, qwen2: Path, train_file: Path, tmp_path: Path, full: bool) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "both"
    result = cli(
        "train", "r1", "--model", str(qwen2), "--data", str(train_file), "-o", str(out),
        "--stage", "sft,grpo", "--max-steps", "2", "--generations", "2",
        "--prompts-per-step", "2", "--max-completion-length", "4",
        *(["--full"] if full else []),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    steps = metrics(out)
    assert [(s["stage"], s["step"]) for s in steps] == [
        ("sft", 1),
        ("sft", 2),
        ("grpo", 1),
        ("grpo", 2),
    ]
    # GRPO's reference is the model SFT left: the KL starts at 0 (a frozen copy with --full)
    assert steps[2]["kl"] == 0.0
    adapters = sorted(p.name for p in (out / "adapters").iterdir()) if not full else []
    assert adapters == ([] if full else ["grpo", "sft"])
    assert (out / "model.safetensors").is_file()
    config = json.loads((out / "training_config.json").read_text())
    assert config["lr"] is None  # as asked: the defaults per stage
    assert config["lr_by_stage"] == (
        {"sft": 1e-5, "grpo": 1e-6} if full else {"sft": 2e-4, "grpo": 1e-5}
    )
    again = cli(
        "train", "r1", "--model", str(qwen2), "--data", str(train_file), "-o", str(out),
        "--stage", "sft", "--max-steps", "1", "--force",
    )  # fmt: skip
    assert again.code == 0, again.stderr
    assert [s["stage"] for s in metrics(out)] == ["sft"]
    assert not (out / "adapters" / "grpo").exists()


def test_a_saved_run_config_reruns_with_flags_on_top(  # type: ignore[no-untyped-def]
    cli, sft_judge: Path, tmp_path: Path
) -> None:
    saved = json.loads((sft_judge / "training_config.json").read_text())
    assert saved["lr"] == 3e-3 and saved["lr_by_stage"] == {"sft": 3e-3}
    result = cli("-q", "train", "r1", "--config", str(sft_judge / "training_config.json"),
                 "-o", str(tmp_path / "again"), "--max-steps", "1")  # fmt: skip
    assert result.code == 0, result.stderr
    again = json.loads((tmp_path / "again" / "training_config.json").read_text())
    assert again["max_steps"] == 1 and again["output"] == str(tmp_path / "again")
    differ = {"output", "max_steps", "lr_by_stage"}
    assert {k: v for k, v in again.items() if k not in differ} == {
        k: v for k, v in saved.items() if k not in differ
    }
    missing = cli("train", "r1", "--model", "x")
    assert missing.code == 2 and "missing --data, --output" in missing.stderr
