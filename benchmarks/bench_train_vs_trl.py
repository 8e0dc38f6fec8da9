"""Training speed and peak memory: ``omnirm train bt`` against TRL's ``RewardTrainer``.

Both train the same text model on the same pairs with the same settings (LoRA r16 on all linear
layers, batch of 8 pairs, max length 320, lr 5e-4, one epoch, fp32, seed 0). Each trainer runs
in its own subprocess so its peak resident memory (ru_maxrss) is its own; the script prints
seconds per epoch, peak RSS, and the ratios omnirm / TRL (below 1 is better for omnirm).

Run: ``python benchmarks/bench_train_vs_trl.py [--model DIR_OR_GGUF] [--data FILE] [--records N]``
(needs ``pip install trl``). Without ``--model`` a small random Qwen2 (hidden 256, 4 layers, real
Qwen vocabulary) is built; without ``--data`` synthetic criteria-conditioned pairs are used.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {"lora_r": 16, "batch_size": 8, "max_length": 320, "lr": 5e-4, "epochs": 1, "seed": 0}


def synthetic_records(count: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    words = [
        "reward",
        "model",
        "answer",
        "concise",
        "helpful",
        "correct",
        "clear",
        "wrong",
        "vague",
        "long",
        "short",
    ]
    out = []
    for i in range(count):
        good = " ".join(rng.choice(words) for _ in range(rng.randint(30, 90)))
        bad = " ".join(rng.choice(words) for _ in range(rng.randint(30, 90)))
        out.append(
            {
                "id": f"r{i}",
                "prompt": " ".join(rng.choice(words) for _ in range(rng.randint(10, 40))),
                "criteria": "Prefer the concise, correct answer.",
                "responses": [good, bad],
                "preference": 0,
            }
        )
    return out


def build_model(folder: Path) -> Path:
    sys.path.insert(0, str(REPO))
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tests.tiny_models import build_qwen_tokenizer

    tokenizer = build_qwen_tokenizer()
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer) + (-len(tokenizer)) % 64,
        hidden_size=256,
        intermediate_size=704,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
    )
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_omnirm(model: str, data: Path, out: Path) -> None:
    from omnirm.cli.main import main

    code = main(
        [
            "-q", "train", "bt", "--model", model, "--data", str(data), "-o", str(out),
            "--lora-r", str(SETTINGS["lora_r"]), "--batch-size", str(SETTINGS["batch_size"]),
            "--max-length", str(SETTINGS["max_length"]), "--lr", str(SETTINGS["lr"]),
            "--epochs", str(SETTINGS["epochs"]), "--seed", str(SETTINGS["seed"]),
        ]
    )  # fmt: skip
    assert code == 0


def run_trl(model: str, data: Path, out: Path) -> None:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    folder, gguf = (
        (str(Path(model).parent), Path(model).name) if model.endswith(".gguf") else (model, None)
    )
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    net = AutoModelForSequenceClassification.from_pretrained(folder, gguf_file=gguf, num_labels=1)
    net.config.pad_token_id = tokenizer.pad_token_id
    rows = []
    for line in data.read_text().splitlines():
        record = json.loads(line)
        better = record["responses"][record["preference"]]
        worse = record["responses"][1 - record["preference"]]
        rows.append(
            {
                "prompt": [
                    {"role": "system", "content": record.get("criteria") or "Overall quality."},
                    {"role": "user", "content": record["prompt"]},
                ],
                "chosen": [{"role": "assistant", "content": better}],
                "rejected": [{"role": "assistant", "content": worse}],
            }
        )
    args = RewardConfig(
        output_dir=str(out),
        per_device_train_batch_size=SETTINGS["batch_size"],
        num_train_epochs=SETTINGS["epochs"],
        learning_rate=SETTINGS["lr"],
        max_length=SETTINGS["max_length"],
        seed=SETTINGS["seed"],
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = RewardTrainer(
        model=net,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=SETTINGS["lora_r"],
            lora_alpha=2 * SETTINGS["lora_r"],
            target_modules="all-linear",
            task_type="SEQ_CLS",
        ),
    )
    trainer.train()


def child(which: str, model: str, data: Path, out: Path) -> None:
    """Run one trainer; print its wall time and peak RSS as JSON on the last line."""
    start = time.perf_counter()
    (run_omnirm if which == "omnirm" else run_trl)(model, data, out)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb}))


def measure(which: str, model: str, data: Path, out: Path) -> dict[str, float]:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            which,
            "--model",
            model,
            "--data",
            str(data),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)},
    )
    if proc.returncode != 0:
        raise SystemExit(f"{which} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--records", type=int, default=256)
    parser.add_argument("--child", choices=["omnirm", "trl"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model, args.data, args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = args.model or str(build_model(root / "model"))
        data = args.data
        if data is None:
            data = root / "train.jsonl"
            data.write_text("".join(json.dumps(r) + "\n" for r in synthetic_records(args.records)))
        pairs = sum(1 for _ in data.read_text().splitlines())
        print(f"model {model}, {pairs} records, settings {SETTINGS}")
        results = {which: measure(which, model, data, root / which) for which in ("trl", "omnirm")}
    for which, r in results.items():
        print(f"{which:7s} {r['seconds']:8.1f} s/epoch   peak RSS {r['peak_mb']:8.0f} MB")
    ratio_t = results["omnirm"]["seconds"] / results["trl"]["seconds"]
    ratio_m = results["omnirm"]["peak_mb"] / results["trl"]["peak_mb"]
    print(
        f"omnirm / TRL: time {ratio_t:.2f}x, peak memory {ratio_m:.2f}x (below 1 = omnirm better)"
    )


if __name__ == "__main__":
    main()
