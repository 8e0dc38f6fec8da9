"""Peak memory of ``train bt``'s data path — loading, checking, length-grouping and collating an
epoch of batches — from 10K to 250K records (before any model forward).

Each size runs in its own subprocess (its peak RSS, ``ru_maxrss``, is its own) and goes through
the code ``train_bt`` runs: :func:`~omnirm.train.bt.load_training_records` (every record parsed
and encoded once, kept on disk as byte offsets), the length-grouped training loader, and a
:class:`~omnirm.train.bt.PairCollator` packing each record's prompt and responses into one row.
The input builder is the real :class:`~omnirm.models.inputs.TextInputBuilder` over a small stand-in
tokenizer (a ChatML template and one id per word), so 250K records take seconds, not the hour a
BPE tokenizer would, while every object the data path keeps is the real one.

``--baseline`` runs the same sizes the way ``train bt`` held its data before: every record parsed
into a Python list and every encoding cached without bound.

Run: ``python benchmarks/bench_train_memory.py [--sizes 10000 50000 250000] [--baseline]``
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORDS = ["reward", "model", "answer", "concise", "helpful", "correct", "clear", "wrong", "vague"]


class WordTokenizer:
    """One id per word, a ChatML-like template: fast, deterministic, enough for the data path."""

    pad_token_id = 0
    eos_token_id = 1

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def _ids(self, text: str) -> list[int]:
        return [self.vocab.setdefault(word, len(self.vocab) + 2) for word in text.split()]

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": self._ids(text)}

    def decode(self, ids: list[int]) -> str:
        words = {i: w for w, i in self.vocab.items()}
        return " ".join(words.get(i, "?") for i in ids)

    def apply_chat_template(
        self,
        messages: list[dict[str, Any]],
        tokenize: bool = True,
        add_generation_prompt: bool = False,
        **_: Any,
    ) -> Any:
        text = " ".join(f"<{m['role']}> {m['content']} </s>" for m in messages)
        if add_generation_prompt:
            text += " <assistant>"
        return self._ids(text) if tokenize else text


def write_records(path: Path, count: int) -> None:
    rng = random.Random(0)
    with path.open("w") as out:
        for i in range(count):
            words = lambda n: " ".join(rng.choice(WORDS) for _ in range(n))  # noqa: E731
            record = {
                "id": f"r{i}",
                "criteria": "Prefer the concise, correct answer.",
                "prompt": words(rng.randint(10, 60)),
                "responses": [words(rng.randint(5, 40)), words(rng.randint(5, 40))],
                "preference": i % 2,
            }
            out.write(json.dumps(record) + "\n")


def child(data: Path, baseline: bool) -> None:
    sys.path.insert(0, str(REPO))
    from omnirm.models.inputs import InputSettings, TextInputBuilder
    from omnirm.train.bt import BTConfig, PairCollator, load_training_records, training_loader

    config = BTConfig(model="-", data=str(data), output="-", batch_size=8, max_length=320)
    builder = TextInputBuilder(WordTokenizer(), InputSettings(max_length=config.max_length))
    backbone = object()  # a text backbone: positions count on from the prefix
    start = time.perf_counter()
    collator = PairCollator(
        builder, "skip", backbone=backbone, cache_size=10**9 if baseline else 1024
    )
    records, _, pairs = load_training_records(str(data), collator, report=False)
    dataset: Any = [records[i] for i in range(len(records))] if baseline else records
    loader = training_loader(dataset, collator, config, lengths=records.lengths)
    tokens = 0
    for batch in loader:
        tokens += int(batch.inputs["input_ids"].numel())
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"records": len(records), "pairs": pairs, "tokens": tokens,
                      "seconds": seconds, "peak_mb": peak_mb}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 250_000])
    parser.add_argument("--baseline", action="store_true", help="also hold records in memory")
    parser.add_argument("--child", type=Path)
    parser.add_argument("--in-memory", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.in_memory)
        return
    modes = ["on disk"] + (["in memory"] if args.baseline else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            data = Path(tmp) / f"{size}.jsonl"
            write_records(data, size)
            for mode in modes:
                command = [sys.executable, __file__, "--child", str(data)]
                command += ["--in-memory"] if mode == "in memory" else []
                proc = subprocess.run(command, capture_output=True, text=True, check=True)
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append((mode, size, result))
                print(
                    f"{mode:9s} {size:8d} records  peak RSS {result['peak_mb']:7.0f} MB  "
                    f"{result['seconds']:6.1f} s  ({result['tokens']} padded tokens batched)",
                    flush=True,
                )
    for mode in modes:
        peaks = [r["peak_mb"] for m, _, r in rows if m == mode]
        print(f"{mode}: peak RSS at the largest size / the smallest = {peaks[-1] / peaks[0]:.2f}x")


if __name__ == "__main__":
    main()
