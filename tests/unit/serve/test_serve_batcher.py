"""The batcher: requests coalesced into scorer calls, a bounded queue, drained on close."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
from serve_fakes import FakeScorer

from omnirm.errors import RecordError
from omnirm.records import parse_record
from omnirm.serve.batcher import Batcher, Outcome, Payload, QueueFull, ShuttingDown, score_payloads
from omnirm.serve.metrics import ServeMetrics


def record(record_id: str, *responses: str) -> Payload:
    return parse_record(
        {"id": record_id, "prompt": "p", "responses": list(responses)}, min_responses=1
    )


def test_score_payloads_keeps_order_and_errors_in_place() -> None:
    scorer = FakeScorer()
    payloads = [record("a", "xx"), "text!", record("bad-1", "y"), record("c", "zzz", "z")]
    outcomes = score_payloads(scorer, payloads)
    assert isinstance(outcomes[0], dict) and outcomes[0]["rewards"] == [2.0]
    assert outcomes[1] == 5.0
    error = outcomes[2]
    assert isinstance(error, RecordError)
    assert (error.record_id, error.field, error.line) == ("bad-1", "responses[0]", None)
    assert isinstance(outcomes[3], dict) and outcomes[3]["rewards"] == [3.0, 1.0]
    assert scorer.calls == [3, 1]  # the records in one call, the texts in another


def test_texts_need_a_reward_model() -> None:
    scorer = FakeScorer()
    scorer.kind = "judge"
    text, scored = score_payloads(scorer, ["text", record("a", "xy")])
    assert isinstance(text, RecordError) and "needs a reward model" in str(text)
    assert isinstance(scored, dict) and scored["rewards"] == [2.0]  # the batch goes on


def make_batcher(scorer: FakeScorer, **settings: float) -> Batcher:
    options = {"max_batch_size": 4, "max_wait_ms": 50.0, "max_queue": 64, **settings}

    def score(payloads: Sequence[Payload]) -> list[Outcome]:
        return score_payloads(scorer, payloads)

    return Batcher(
        score,
        max_batch_size=int(options["max_batch_size"]),
        max_wait_ms=options["max_wait_ms"],
        max_queue=int(options["max_queue"]),
        metrics=ServeMetrics.create(int(options["max_batch_size"])),
    )


def test_concurrent_requests_share_scorer_calls() -> None:
    scorer = FakeScorer()

    async def main() -> list[list[Outcome]]:
        batcher = make_batcher(scorer)
        batcher.start()
        results = await asyncio.gather(
            *(batcher.submit([record(f"r{i}", "x" * i)]) for i in range(10))
        )
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert [r[0]["rewards"] for r in results] == [[float(i)] for i in range(10)]  # type: ignore[index]
    assert sum(scorer.calls) == 10
    assert max(scorer.calls) <= 4 and len(scorer.calls) == 3  # 4 + 4 + 2


def test_waits_only_for_requests_on_their_way() -> None:
    scorer = FakeScorer()

    async def main() -> tuple[float, float, float]:
        batcher = make_batcher(scorer, max_wait_ms=400.0)
        batcher.start()
        started = time.monotonic()
        await batcher.submit([record("alone", "x")])  # nobody else coming: no wait
        alone = time.monotonic() - started

        coming = batcher.arrival()  # a request being read

        async def late() -> list[Outcome]:
            await asyncio.sleep(0.1)
            return await batcher.submit([record("late", "xx")], coming)

        started = time.monotonic()
        await asyncio.gather(batcher.submit([record("early", "x")]), late())
        together = time.monotonic() - started

        gone = batcher.arrival()  # a request that fails before it is queued

        async def fail() -> None:
            await asyncio.sleep(0.1)
            gone.done()

        started = time.monotonic()
        await asyncio.gather(batcher.submit([record("left", "x")]), fail())
        left = time.monotonic() - started
        await batcher.close()
        return alone, together, left

    alone, together, left = asyncio.run(main())
    assert alone < 0.3
    assert 0.1 <= together < 0.4  # waited for the late one, not the whole 400 ms
    assert 0.1 <= left < 0.4
    assert scorer.calls == [1, 2, 1]


def test_full_queue_refuses_and_close_drains() -> None:
    scorer = FakeScorer()
    scorer.release.clear()  # the scorer holds its first call until released

    async def main() -> None:
        batcher = make_batcher(scorer, max_batch_size=1, max_wait_ms=0.0, max_queue=2)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit([record("a", "x")]))
        while not scorer.entered.is_set():  # the first record is being scored
            await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(batcher.submit([record("b", "xx"), record("c", "xxx")]))
        await asyncio.sleep(0.05)
        assert batcher.depth == 2
        with pytest.raises(QueueFull):
            await batcher.submit([record("d", "x")])
        closing = asyncio.ensure_future(batcher.close())
        await asyncio.sleep(0.05)
        with pytest.raises(ShuttingDown):  # draining: nothing new
            await batcher.submit([record("e", "x")])
        scorer.release.set()
        await closing
        assert (await first)[0]["rewards"] == [1.0]  # type: ignore[index]
        assert [o["rewards"] for o in await queued] == [[2.0], [3.0]]  # type: ignore[index]

    asyncio.run(main())
    assert scorer.calls == [1, 1, 1]


def test_a_failing_scorer_fails_its_batch_only() -> None:
    scorer = FakeScorer()

    def score(payloads: Sequence[Payload]) -> list[Outcome]:
        if any(isinstance(p, str) for p in payloads):
            raise RuntimeError("out of memory")
        return score_payloads(scorer, payloads)

    async def main() -> None:
        batcher = Batcher(
            score, max_batch_size=1, max_wait_ms=0, max_queue=8, metrics=ServeMetrics.create(1)
        )
        batcher.start()
        with pytest.raises(RuntimeError, match="out of memory"):
            await batcher.submit(["text"])
        assert (await batcher.submit([record("a", "x")]))[0]["rewards"] == [1.0]  # type: ignore[index]
        await batcher.close()

    asyncio.run(main())
