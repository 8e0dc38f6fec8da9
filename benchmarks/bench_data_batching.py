"""Data-building speed: ``omnirm data criteria`` with its model calls batched against the same
pipeline asking one conversation at a time, on the same backend, records and settings.

The teacher and the verifier are one local ``hf:`` model (default: a tiny random Qwen2 built
here, so every answer runs to ``--max-new-tokens``: equal work per call; ``--model`` takes any
local model, e.g. the SmolLM2 GGUF). The cache is off, so every call is generated. Batched:
``--batch-size`` records per window, their requests in one ``generate`` call per role (padded
together by the backend). One at a time: windows of one record, a batch size of 1. Prints
records/s and model calls/s of both and the speed-up; the outputs must be identical (greedy).

Run: ``python benchmarks/bench_data_batching.py [--model PATH] [--records N] [--batch-size B]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run_once(
    model: str, data: Path, out: Path, batch_size: int, max_new_tokens: int
) -> tuple[float, int]:
    from omnirm.data.build import BuildStats, ModelOptions, Models, run_build
    from omnirm.data.criteria import CriteriaPipeline, CriteriaSettings
    from omnirm.media import MediaResolver
    from omnirm.on_error import OnError
    from omnirm.records import iter_records

    options = ModelOptions(batch_size=batch_size, max_new_tokens=max_new_tokens, use_cache=False,
                           device="cpu", retries=0)  # fmt: skip
    models = Models(options)
    try:
        stats = BuildStats("criteria")
        pipeline = CriteriaPipeline(
            models.caller("teacher", f"hf:{model}"),
            [models.caller("verifier", f"hf:{model}")],
            MediaResolver(data.parent),
            CriteriaSettings(window=batch_size),
            stats,
        )
        began = time.perf_counter()
        run_build(pipeline, lambda: iter_records(data), stats, output=out, rejects=out.with_suffix(".rej"),
                  resume=False, source=str(data), on_error=OnError.FAIL)  # fmt: skip
        return time.perf_counter() - began, stats.to_dict()["calls"]["calls"]
    finally:
        models.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a local model folder or .gguf (default: built here)")
    parser.add_argument("--records", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    args = parser.parse_args()

    from omnirm import console
    from tests.conftest import write_jsonl

    console.quiet_libraries()
    console.set_verbosity(-1)
    work = Path(tempfile.mkdtemp(prefix="bench-data-"))
    if args.model is None:
        from tests.tiny_models import make_tiny_qwen2

        model = str(make_tiny_qwen2(work / "model"))
    else:
        model = args.model
    records = [
        {"id": f"r{i}", "prompt": f"Question {i}: explain why the sky looks blue at noon.",
         "responses": [f"Rayleigh scattering, answer {i}.", f"Because of the sea, answer {i}."],
         "preference": 0}
        for i in range(args.records)
    ]  # fmt: skip
    data = write_jsonl(work / "pairs.jsonl", records)
    print(
        f"model {model}, {args.records} records, --max-new-tokens {args.max_new_tokens}", flush=True
    )
    results = {}
    for name, size in (("one at a time", 1), (f"batched ({args.batch_size})", args.batch_size)):
        seconds, calls = run_once(
            model, data, work / f"out-{size}.jsonl", size, args.max_new_tokens
        )
        results[size] = seconds
        print(f"{name:>16}: {seconds:7.1f} s, {args.records / seconds:6.2f} records/s, "
              f"{calls / seconds:6.2f} calls/s ({calls} calls)", flush=True)  # fmt: skip
    same = (work / "out-1.rej").read_text() == (work / f"out-{args.batch_size}.rej").read_text()
    print(f"speed-up {results[1] / results[args.batch_size]:.2f}x, identical outputs: {same}")


if __name__ == "__main__":
    main()
