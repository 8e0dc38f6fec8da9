"""``omnirm train r1 --stage sft``: both orders' common conversation start run once (a packed row
per record) against the two orders as whole sequences, and length-grouped batches against
batches shuffled record by record — on the same model, records and settings, in one script.

Variants (all with gradient checkpointing, LoRA r16, fp32, seed 0):

- ``shared``: ``--share-prefix --group-by-length`` (the defaults);
- ``whole``: ``--no-share-prefix --group-by-length``;
- ``whole-shuffled``: ``--no-share-prefix --no-group-by-length`` (the batching before).

Each runs in its own subprocess (so its peak resident memory, ``ru_maxrss``, is its own) with
one thread (``OMP_NUM_THREADS=1``) and reports the training steps' **CPU seconds** (the sum of
``metrics.jsonl``'s per-step ``seconds``, timed here with the process's CPU clock instead of the
wall clock, so that other jobs on a shared machine do not skew the ratios; no model loading),
the tokens the model ran, the peak RSS, and the first step's loss (equal across variants up to
float order when the batches are the same: ``shared`` and ``whole`` are). The
ratio of tokens run, shared / whole, would be the time ratio if cost were linear in tokens; the
packed row's attention is quadratic in its length (the mask is dense), which takes back part.

Records: the criteria records ``scripts/default_model.py`` builds from ``data/`` (PRD Vicuna80
and LFQA; ``bench_train_vs_trl.real_records``), each given a short rationale naming the
better response. Models: by default a small random Qwen2 (hidden 256, 4 layers, Qwen
vocabulary; seconds); ``--smollm2`` SmolLM2-135M-Instruct converted once to an fp32 folder
(``bench_train_vs_trl.smollm2_folder``); ``--model DIR`` any causal LM folder.

Run: ``python benchmarks/bench_r1_sft_shared.py [--smollm2] [--records 16] [--batch-size 8]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_train_vs_trl import REPO, build_model, real_records, smollm2_folder

VARIANTS = {
    "shared": {"share_prefix": True, "group_by_length": True},
    "whole": {"share_prefix": False, "group_by_length": True},
    "whole-shuffled": {"share_prefix": False, "group_by_length": False},
}


def sft_records(root: Path, count: int) -> Path:
    """``count`` real criteria records, each with a rationale for its label."""
    train, _ = real_records(root, count)
    rows = [json.loads(line) for line in train.open()]
    for row in rows:
        better = "A" if row["preference"] == 0 else "B"
        other = "B" if better == "A" else "A"
        row["rationale"] = (
            f"Response {better} follows the criterion more closely than response {other}, "
            "which misses part of what it asks."
        )
    path = root / "sft.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def child(variant: str, model: str, data: Path, out: Path, batch_size: int, length: int) -> None:
    """Train one variant; print its figures as JSON on the last line."""
    import time
    import types

    import omnirm.train.r1.sft as sft
    from omnirm.train.r1 import R1Config, train_r1

    sft.time = types.SimpleNamespace(perf_counter=time.process_time)  # type: ignore[assignment]
    config = R1Config(model=model, data=str(data), output=str(out), stage="sft", epochs=1.0,
                      batch_size=batch_size, max_length=length, lr=2e-4, seed=0,
                      **VARIANTS[variant])  # fmt: skip
    train_r1(config)
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    print(
        json.dumps(
            {
                "seconds": sum(s["seconds"] for s in steps),
                "tokens": sum(s["tokens_per_second"] * s["seconds"] for s in steps),
                "first_loss": steps[0]["loss"],
                "steps": len(steps),
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def measure(variant: str, model: str, data: Path, out: Path, args: Any) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", variant, "--model", model, "--data",
               str(data), "--out", str(out), "--batch-size", str(args.batch_size),
               "--max-length", str(args.max_length)]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="a causal LM folder (default: a small random Qwen2)")
    parser.add_argument("--smollm2", action="store_true", help="SmolLM2-135M-Instruct, fp32")
    parser.add_argument("--records", type=int, default=16, help="records (two sequences each)")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per batch")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="which to run")
    parser.add_argument("--child", choices=list(VARIANTS))
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model, args.data, args.out, args.batch_size, args.max_length)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = args.model or str(smollm2_folder() if args.smollm2 else build_model(root / "model"))
        data = args.data or sft_records(root, args.records)
        print(f"model {model}, {args.records} records, batch {args.batch_size} sequences, "
              f"max length {args.max_length}, checkpointing on", flush=True)  # fmt: skip
        results = {}
        for variant in args.variants.split(","):
            r = measure(variant, model, data, root / variant, args)
            results[variant] = r
            print(f"{variant:15s} {r['seconds']:7.2f} CPU s  {r['tokens']:8.0f} tokens  peak RSS "
                  f"{r['peak_mb']:6.0f} MB  first-step loss {r['first_loss']:.5f}",
                  flush=True)  # fmt: skip
    for new, old in (
        ("shared", "whole"),
        ("whole", "whole-shuffled"),
        ("shared", "whole-shuffled"),
    ):
        if new in results and old in results:
            a, b = results[new], results[old]
            print(f"{new} / {old}: CPU time {a['seconds'] / b['seconds']:.2f}×, tokens run "
                  f"{a['tokens'] / b['tokens']:.2f}×, peak RSS {a['peak_mb'] / b['peak_mb']:.2f}×")  # fmt: skip


if __name__ == "__main__":
    main()
