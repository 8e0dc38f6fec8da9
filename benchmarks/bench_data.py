"""Throughput of ``omnirm data validate`` (no media) and ``omnirm data convert`` on synthetic text.

Run: ``python benchmarks/bench_data.py [--records 100000]``. Prints records/s for each step and
its ratio against a baseline measured in the same process: reading the same file with nothing
but ``orjson.loads`` per line (the floor any JSONL tool pays). Machines are noisy; compare the
ratios, not the absolute numbers, between runs.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

WORDS = [
    "the",
    "a",
    "reward",
    "model",
    "prefers",
    "concise",
    "answers",
    "with",
    "no",
    "jargon",
    "image",
    "video",
    "audio",
    "mesh",
]


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_records(path: Path, count: int, seed: int = 0) -> None:
    """Write ``count`` realistic omnirm text records (criteria, ties, extra keys) to ``path``."""
    rng = random.Random(seed)
    with path.open("w") as handle:
        for i in range(count):
            record = {
                "id": f"rec-{i}",
                "prompt": _text(rng, rng.randint(8, 40)),
                "criteria": _text(rng, 10) if i % 2 else None,
                "responses": [_text(rng, rng.randint(20, 120)) for _ in range(2)],
                "preference": "tie" if i % 10 == 0 else rng.randint(0, 1),
                "source": {"dataset": "synthetic", "row": i},
            }
            handle.write(json.dumps({k: v for k, v in record.items() if v is not None}) + "\n")


def make_pairs(path: Path, count: int, seed: int = 1) -> None:
    """Write ``count`` TRL-style prompt/chosen/rejected rows to ``path``."""
    rng = random.Random(seed)
    with path.open("w") as handle:
        for i in range(count):
            row = {
                "id": f"pair-{i}",
                "prompt": _text(rng, rng.randint(8, 40)),
                "chosen": _text(rng, rng.randint(20, 120)),
                "rejected": _text(rng, rng.randint(20, 120)),
            }
            handle.write(json.dumps(row) + "\n")


def timed(fn: Callable[[], int], repeat: int = 3) -> tuple[float, int]:
    """Best wall time of ``repeat`` runs and the count the function returned."""
    best, count = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        count = fn()
        best = min(best, time.perf_counter() - start)
    return best, count


def baseline_parse(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if orjson.loads(line) is not None)


def run_validate(path: Path) -> int:
    from omnirm.data.validate import validate_records
    from omnirm.on_error import ErrorPolicy

    report = validate_records(path, ErrorPolicy("fail"))
    assert report.ok
    return report.valid


def run_convert(path: Path, out: Path) -> int:
    from omnirm.formats import SOURCE_FORMATS
    from omnirm.jsonl import JsonlWriter

    reader = SOURCE_FORMATS["pairs"].reader
    with JsonlWriter(out) as writer:
        for item in reader(path):
            assert isinstance(item, dict), item
            writer.write(item)
        return writer.count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        records, pairs = Path(tmp) / "records.jsonl", Path(tmp) / "pairs.jsonl"
        make_records(records, args.records)
        make_pairs(pairs, args.records)
        size_mb = records.stat().st_size / 1e6
        base_t, n = timed(lambda: baseline_parse(records))
        print(f"{n} records, {size_mb:.1f} MB")
        print(f"baseline orjson.loads per line : {n / base_t:>10,.0f} records/s")
        val_t, n = timed(lambda: run_validate(records))
        print(
            f"omnirm data validate (library): {n / val_t:>10,.0f} records/s"
            f"  ({val_t / base_t:.2f}x the baseline's time)"
        )
        try:
            conv_t, n = timed(lambda: run_convert(pairs, Path(tmp) / "out.jsonl"))
        except ImportError:
            print("omnirm data convert: omnirm.formats not available")
            return
        print(
            f"omnirm data convert --from pairs: {n / conv_t:>8,.0f} records/s"
            f"  ({conv_t / base_t:.2f}x the baseline's time)"
        )


if __name__ == "__main__":
    main()
