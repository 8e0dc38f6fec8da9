"""Dynamic batching: records from many requests coalesced into one scorer call.

Requests put their records (or, for ``/classify``, their texts) on one bounded queue and wait.
A single loop takes up to ``max_batch_size`` of them — waiting at most ``max_wait_ms`` after the
oldest arrived for more to come, and not at all when no other request is on its way (being
read: see :meth:`Batcher.arrival`) — and hands them to the scorer in a worker thread (one: a model
is not shared between threads), so the event loop keeps answering ``/health``, ``/metrics`` and
new requests meanwhile. A request that would push the queue past ``max_queue`` is refused
(:class:`QueueFull`, answered 429) instead of growing memory; :meth:`Batcher.close` refuses new
work and lets the queue run dry (graceful drain).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from omnirm.errors import RecordError
from omnirm.on_error import ErrorPolicy, OnError
from omnirm.records import InvalidRecord, Record
from omnirm.resume import item_hash
from omnirm.scorer import Scorer
from omnirm.serve.metrics import ServeMetrics

#: What one queued item comes back as: a scored record, a reward (a text), or its error.
Outcome = dict[str, Any] | float | RecordError
Payload = Record | str


TEXTS_NEED_A_MODEL = "scoring bare texts needs a reward model (--model), not a judge"


class TextScorer(Protocol):
    """A reward model's scorer (``kind == "model"``): it also scores whole formatted texts."""

    def score_texts(self, texts: list[str]) -> list[float | RecordError]: ...


class QueueFull(Exception):
    """The queue holds too many records to take a request's; ask again later (429)."""


class ShuttingDown(Exception):
    """The server is draining and takes no new work (503)."""


class Arrival:
    """A request on its way to the queue (its body being read and checked): while one is, the
    batcher waits for it (up to ``max_wait_ms``) rather than start a batch without it."""

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher
        self.here = False

    def done(self) -> None:
        """The request is queued, or will not be (idempotent)."""
        if not self.here:
            self.here = True
            self.batcher._arriving -= 1
            self.batcher._wakeup.set()


class _Collect(ErrorPolicy):
    """Keeps each bad record's error (by its position in the batch) instead of raising it."""

    def __init__(self) -> None:
        super().__init__(OnError.RECORD)
        self.errors: dict[int, RecordError] = {}

    def handle(self, bad: InvalidRecord | RecordError, value: object = None) -> None:
        line = bad.line if isinstance(bad, InvalidRecord) else bad.line or 0
        self.errors[line] = bad.error if isinstance(bad, InvalidRecord) else bad


def score_payloads(
    scorer: Scorer, payloads: Sequence[Payload], *, fingerprint: str | None = None
) -> list[Outcome]:
    """One scorer call for a batch: the records through :meth:`Scorer.score` (their shared
    prefixes and media caches included), the texts through the model's ``score_texts``; one
    outcome per payload, in order. A bad record's outcome is its error (with no line number:
    lines of a batch mean nothing to a client). With ``fingerprint`` (the digest of the
    scorer's fingerprint) scored records are stamped as ``omnirm score`` stamps its lines:
    ``scored_by.fingerprint`` and ``scored_by.input`` (the hash of the input record)."""
    outcomes: list[Outcome | None] = [None] * len(payloads)
    records = [(i, p) for i, p in enumerate(payloads) if isinstance(p, Record)]
    texts = [(i, p) for i, p in enumerate(payloads) if isinstance(p, str)]
    if records:
        policy = _Collect()
        items = [(line, record) for line, (_, record) in enumerate(records, start=1)]
        scored = iter(list(scorer.score(items, policy)))  # errors are known once it ran
        for line, (index, _) in enumerate(records, start=1):
            error = policy.errors.get(line)
            if error is None:
                out = next(scored)
                if fingerprint is not None:
                    stamp = {"fingerprint": fingerprint, "input": item_hash(records[line - 1][1])}
                    out = {**out, "scored_by": {**out.get("scored_by", {}), **stamp}}
                outcomes[index] = out
            else:
                error.line = None
                outcomes[index] = error
    if texts:
        rewards: list[float | RecordError]
        if scorer.kind == "model":
            rewards = cast(TextScorer, scorer).score_texts([text for _, text in texts])
        else:
            rewards = [RecordError(TEXTS_NEED_A_MODEL, field="input") for _ in texts]
        for (index, _), outcome in zip(texts, rewards, strict=True):
            outcomes[index] = outcome
    assert all(outcome is not None for outcome in outcomes)
    return outcomes  # type: ignore[return-value]


@dataclass
class _Job:
    payload: Payload
    future: asyncio.Future[Outcome]
    enqueued: float = field(default_factory=time.monotonic)


class Batcher:
    """The queue and the loop that empties it into ``score`` calls (see the module docs)."""

    def __init__(
        self,
        score: Callable[[Sequence[Payload]], list[Outcome]],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        metrics: ServeMetrics,
    ) -> None:
        self._score = score
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.metrics = metrics
        self._jobs: deque[_Job] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._arriving = 0
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omnirm-scorer")

    @property
    def depth(self) -> int:
        """Records (or texts) waiting."""
        return len(self._jobs)

    @property
    def closing(self) -> bool:
        """Draining: no new work is taken."""
        return self._closing

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def arrival(self) -> Arrival:
        """Count a request as on its way until its :meth:`Arrival.done` (called by
        :meth:`submit`, or by the request when it fails before)."""
        self._arriving += 1
        return Arrival(self)

    async def submit(
        self, payloads: Sequence[Payload], arrival: Arrival | None = None
    ) -> list[Outcome]:
        """Queue ``payloads`` and wait for their outcomes, in order. Raises :class:`QueueFull`
        when they do not fit in the queue, :class:`ShuttingDown` while draining."""
        if arrival is not None:
            arrival.done()
        if self._closing or self._task is None:
            raise ShuttingDown
        if len(self._jobs) + len(payloads) > self.max_queue:
            raise QueueFull
        loop = asyncio.get_running_loop()
        jobs = [_Job(payload, loop.create_future()) for payload in payloads]
        self._jobs.extend(jobs)
        self.metrics.queue_depth.set(len(self._jobs))
        self._wakeup.set()
        try:
            return list(await asyncio.gather(*(job.future for job in jobs)))
        except asyncio.CancelledError:  # the client went away: its jobs need not run
            for job in jobs:
                job.future.cancel()
            raise

    async def close(self) -> None:
        """Take no new work, score what is queued, stop the loop and the worker thread."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)

    async def _next_batch(self) -> list[_Job]:
        """Up to ``max_batch_size`` live jobs, once enough wait or the oldest waited long
        enough; empty when closing with nothing left."""
        while True:
            while self._jobs and self._jobs[0].future.done():  # cancelled by their client
                self._jobs.popleft()
            if self._jobs:
                break
            if self._closing:
                return []
            self._wakeup.clear()
            await self._wakeup.wait()
        deadline = self._jobs[0].enqueued + self.max_wait
        while len(self._jobs) < self.max_batch_size and self._arriving > 0 and not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:  # TimeoutError only from 3.11
                break
        batch: list[_Job] = []
        while self._jobs and len(batch) < self.max_batch_size:
            job = self._jobs.popleft()
            if not job.future.done():
                batch.append(job)
        self.metrics.queue_depth.set(len(self._jobs))
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                if self._closing and not self._jobs:
                    return
                continue
            self.metrics.batch_size.observe(len(batch))
            started = time.monotonic()
            try:
                outcomes = await loop.run_in_executor(
                    self._executor, self._score, [job.payload for job in batch]
                )
            except Exception as error:  # the scorer itself failed: every job of the batch fails
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            finally:
                self.metrics.batch_seconds.observe(time.monotonic() - started)
            for job, outcome in zip(batch, outcomes, strict=True):
                failed = isinstance(outcome, RecordError)
                self.metrics.records.labels(outcome="failed" if failed else "scored").inc()
                if not job.future.done():
                    job.future.set_result(outcome)
