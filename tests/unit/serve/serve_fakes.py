"""A scorer that needs no model: rewards are response lengths; it can be held to fill a queue."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Literal

from omnirm.errors import RecordError
from omnirm.on_error import ErrorPolicy
from omnirm.records import InvalidRecord, Record, content_text
from omnirm.scorer import Items


class FakeScorer:
    kind: Literal["model", "judge"] = "model"
    pairwise = False
    label = "model:fake"
    verb = "scoring"

    def __init__(self) -> None:
        self.calls: list[int] = []  # payloads per call
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()

    def _hold(self, size: int) -> None:
        self.calls.append(size)
        self.entered.set()
        assert self.release.wait(30)

    def score(self, items: Items, policy: ErrorPolicy) -> Iterator[dict[str, Any]]:
        items = list(items)
        self._hold(len(items))
        for line, record in items:
            assert isinstance(record, Record)
            if record.id.startswith("bad"):
                error = RecordError("cannot score", record_id=record.id, field="responses[0]")
                policy.handle(InvalidRecord(line, error, record.to_dict()))
                continue
            out = record.to_dict()
            out["rewards"] = [float(len(content_text(r))) for r in record.responses]
            out["scored_by"] = self.provenance()
            yield out

    def score_texts(self, texts: list[str]) -> list[float | RecordError]:
        self._hold(len(texts))
        return [float(len(text)) for text in texts]

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "model", "model": "fake"}

    def describe(self) -> dict[str, str]:
        return {}

    def provenance(self) -> dict[str, Any]:
        return {"model": "fake"}

    def summary(self) -> list[str]:
        return []

    def close(self) -> None:
        return None
