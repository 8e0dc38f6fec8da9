"""``omnirm serve`` under load, on loopback only, bounded in requests and time.

A real server process (``python -m omnirm serve --model RM --host 127.0.0.1 --port 0``) with a
tiny reward model; clients are threads on persistent HTTP connections, one request = one pair
record on ``POST /score``.

1. **Throughput and latency** at concurrency 1, 4, 16, 64: records/s, p50 and p99 latency, and
   the mean scorer batch the server formed (from its ``/metrics``).
2. **Baselines**, in this script: the same records scored one at a time through the library
   (``omnirm.score([record], scorer)``, one process, model loaded once), and by running
   ``omnirm score`` once per record (a process, a model load per record). Ratios printed.
3. **Overload**: a server with a small queue (``--max-queue``) under many more concurrent
   requests than it holds: counts of 200 and 429 (with Retry-After), the server still answering
   ``/health`` afterwards, its peak RSS against its RSS before.
4. **Drain**: 32 requests of 16 records in flight when SIGTERM arrives (sent before it, queued
   or being scored): how many were answered, how many lost, and the exit code.

Run: ``python benchmarks/bench_serve.py [--model DIR] [--requests N] [--seconds S]``. Without
``--model`` a tiny random Qwen2 reward model is built (as the tests build theirs). Every phase
stops after ``--requests`` requests or ``--seconds`` seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HOST = "127.0.0.1"
WORDS = [
    "the",
    "a",
    "answer",
    "short",
    "long",
    "clear",
    "blue",
    "red",
    "quick",
    "slow",
    "good",
    "bad",
    "yes",
    "no",
    "maybe",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def make_records(count: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "id": f"r{i}",
            "prompt": sentence(rng, 10),
            "responses": [sentence(rng, rng.randint(3, 20)), sentence(rng, rng.randint(3, 20))],
        }
        for i in range(count)
    ]


def build_model(folder: Path) -> Path:
    import torch

    from omnirm.models.checkpoint import build_reward_model, save_reward_model
    from omnirm.train.bt import BTConfig
    from tests.tiny_models import make_tiny_qwen2

    backbone = make_tiny_qwen2(folder / "backbone")
    torch.manual_seed(0)
    model, builder, config = build_reward_model(
        BTConfig(model=str(backbone), data="-", output=str(folder / "rm"), max_length=512)
    )
    save_reward_model(folder / "rm", model, builder, config)
    return folder / "rm"


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    stderr: list[str] = field(default_factory=list)

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def get(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()


@contextmanager
def server(model: Path, *flags: str) -> Iterator[Server]:
    command = [sys.executable, "-m", "omnirm", "serve", "--model", str(model), "--device", "cpu"]
    command += ["--host", HOST, "--port", "0", *flags]
    proc = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=ENV, cwd=REPO
    )
    assert proc.stderr is not None
    seen = ""
    while not (found := re.search(rf"http://{re.escape(HOST)}:(\d+)", seen)):
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"the server did not start: {seen}")
        seen += line
    running = Server(proc, int(found.group(1)))
    drain = threading.Thread(target=lambda: running.stderr.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    drain.start()
    try:
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class Result:
    status: int
    seconds: float
    sent_at: float  # when the request was written (monotonic)


def load(
    port: int,
    bodies: list[bytes],
    concurrency: int,
    seconds: float,
    path: str = "/score",
) -> tuple[list[Result], float, list[str]]:
    """Post ``bodies`` from ``concurrency`` threads (each on its own keep-alive connection)
    until all are sent or ``seconds`` have passed; the results, the wall time, the errors."""
    results: list[Result] = []
    errors: list[str] = []
    lock = threading.Lock()
    position = iter(range(len(bodies)))
    deadline = time.monotonic() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=120)
        try:
            while time.monotonic() < deadline:
                with lock:
                    index = next(position, None)
                if index is None:
                    return
                started = time.monotonic()
                try:
                    conn.request("POST", path, bodies[index], {"Content-Type": "application/json"})
                    sent = time.monotonic()
                    response = conn.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException) as error:
                    with lock:
                        errors.append(repr(error))
                    conn.close()
                    conn = http.client.HTTPConnection(HOST, port, timeout=120)
                    continue
                with lock:
                    results.append(Result(response.status, time.monotonic() - started, sent))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.monotonic() - started, errors


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def bodies_of(records: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps([record]).encode() for record in records]


def throughput(model: Path, records: list[dict[str, Any]], seconds: float) -> dict[int, float]:
    print("\n== throughput and latency (POST /score, one pair record per request) ==")
    print(f"{'concurrency':>11} {'requests':>8} {'records/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'mean batch':>10} {'errors':>6}")  # fmt: skip
    rates: dict[int, float] = {}
    with server(model, "--max-batch-size", "32", "--max-wait-ms", "5") as running:
        load(running.port, bodies_of(records[:8]), 2, seconds)  # warm up
        for concurrency in (1, 4, 16, 64):
            before = running.get("/metrics")[1]
            results, wall, errors = load(running.port, bodies_of(records), concurrency, seconds)
            after = running.get("/metrics")[1]
            ok = [r.seconds for r in results if r.status == 200]
            batches = metric(after, "omnirm_batch_size_count") - metric(
                before, "omnirm_batch_size_count"
            )
            batched = metric(after, "omnirm_batch_size_sum") - metric(
                before, "omnirm_batch_size_sum"
            )
            rates[concurrency] = len(ok) / wall
            print(
                f"{concurrency:>11} {len(results):>8} {len(ok) / wall:>10.1f} "
                f"{percentile(ok, 0.5) * 1000:>8.1f} {percentile(ok, 0.99) * 1000:>8.1f} "
                f"{batched / max(batches, 1):>10.1f} {len(errors) + len(results) - len(ok):>6}"
            )
    return rates


def library_baseline(model: Path, records: list[dict[str, Any]], seconds: float) -> float:
    import torch

    import omnirm
    from omnirm.options import ModelOptions

    torch.set_num_threads(1)
    scorer = omnirm.load_scorer(model, options=ModelOptions(device="cpu"))
    try:
        omnirm.score(records[:4], scorer)  # warm up
        started, done = time.monotonic(), 0
        for record in records:
            omnirm.score([record], scorer)
            done += 1
            if time.monotonic() - started > seconds:
                break
        return done / (time.monotonic() - started)
    finally:
        scorer.close()


def cli_baseline(model: Path, records: list[dict[str, Any]], count: int) -> float:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        for record in records[:count]:
            path = Path(folder) / "one.jsonl"
            path.write_text(json.dumps(record) + "\n")
            command = [sys.executable, "-m", "omnirm", "-q", "score", str(path)]
            command += ["--model", str(model), "--device", "cpu"]
            subprocess.run(command, check=True, capture_output=True, env=ENV, cwd=REPO)
    return count / (time.monotonic() - started)


def overload(model: Path, records: list[dict[str, Any]], seconds: float) -> None:
    print("\n== overload: --max-queue 16 --max-batch-size 4, 128 concurrent clients ==")
    with server(
        model, "--max-queue", "16", "--max-batch-size", "4", "--max-wait-ms", "5"
    ) as running:
        rss_before = running.rss_mb()
        peak = [rss_before]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], running.rss_mb())
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        bodies = bodies_of((records * 8)[:2048])
        results, wall, errors = load(running.port, bodies, 128, seconds)
        stop.set()
        sampler.join()
        statuses: dict[int, int] = {}
        for result in results:
            statuses[result.status] = statuses.get(result.status, 0) + 1
        health = running.get("/health")
        alive = running.proc.poll() is None and health[0] == 200
        print(f"requests {len(results)} in {wall:.1f}s: " + ", ".join(
            f"{status}: {count}" for status, count in sorted(statuses.items())
        ) + f"; connection errors {len(errors)}")  # fmt: skip
        print(f"server alive and healthy afterwards: {alive}")
        print(f"server RSS: {rss_before:.0f} MB before, {peak[0]:.0f} MB at peak "
              f"(+{peak[0] - rss_before:.0f} MB)")  # fmt: skip


def drain(model: Path, records: list[dict[str, Any]]) -> None:
    clients, size = 32, 16
    print(f"\n== drain: SIGTERM with {clients} requests of {size} records in flight ==")
    with server(model, "--max-batch-size", "32") as running:
        outcome: list[tuple[float, int | str, float]] = []
        lock = threading.Lock()
        barrier = threading.Barrier(clients + 1, timeout=60)

        def one(body: bytes) -> None:
            conn = http.client.HTTPConnection(HOST, running.port, timeout=120)
            try:
                conn.connect()
            finally:
                barrier.wait()
            try:
                conn.request("POST", "/score", body, {"Content-Type": "application/json"})
                sent = time.monotonic()
                response = conn.getresponse()
                response.read()
                result: int | str = response.status
            except (OSError, http.client.HTTPException) as error:
                sent, result = time.monotonic(), repr(error)
            with lock:
                outcome.append((sent, result, time.monotonic()))
            conn.close()

        bodies = [json.dumps(records[i * size : (i + 1) * size]).encode() for i in range(clients)]
        threads = [threading.Thread(target=one, args=(body,)) for body in bodies]
        for thread in threads:
            thread.start()
        barrier.wait()
        deadline = time.monotonic() + 30
        while json.loads(running.get("/health")[1])["queue"] == 0:  # until records wait
            if time.monotonic() > deadline:
                raise SystemExit("no request reached the queue")
            time.sleep(0.01)
        signalled = time.monotonic()
        running.proc.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(120)
        code = running.proc.wait(120)
        in_flight = [(result, done) for sent, result, done in outcome if sent < signalled]
        answered = sum(1 for result, _ in in_flight if result == 200)
        later = sum(1 for result, done in in_flight if result == 200 and done > signalled)
        print(f"sent before SIGTERM: {len(in_flight)} requests; answered 200: {answered} "
              f"({later} of them after the signal), lost: {len(in_flight) - answered}; exit "
              f"code {code}; exited {time.monotonic() - signalled:.2f}s after the signal")  # fmt: skip
        after = []
        try:
            after.append(running.get("/health")[0])
        except OSError as error:
            after.append(type(error).__name__)
        print(f"a request after the exit: {after[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a reward model folder (default: built here)")
    parser.add_argument("--requests", type=int, default=400, help="most requests per phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="most seconds per phase")
    parser.add_argument("--cli-records", type=int, default=3, help="records for the CLI baseline")
    args = parser.parse_args()
    records = make_records(args.requests)
    with tempfile.TemporaryDirectory() as folder:
        model = args.model or build_model(Path(folder))
        print(f"model: {model}; {os.cpu_count()} CPUs; OMP_NUM_THREADS=1 everywhere")
        rates = throughput(model, records, args.seconds)
        print("\n== baselines: one record at a time ==")
        library = library_baseline(model, records, args.seconds)
        print(f"library, omnirm.score([record]) in a loop: {library:.1f} records/s")
        cli = cli_baseline(model, records, args.cli_records)
        print(f"omnirm score per record (a process each): {cli:.2f} records/s "
              f"({1 / cli:.1f} s per record)")  # fmt: skip
        for concurrency, rate in rates.items():
            print(f"server at concurrency {concurrency:>2}: x{rate / library:.2f} the library "
                  f"loop, x{rate / cli:.0f} omnirm score per record")  # fmt: skip
        overload(model, records, args.seconds)
        drain(model, make_records(512, seed=1))


if __name__ == "__main__":
    main()
