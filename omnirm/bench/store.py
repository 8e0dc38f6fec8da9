"""Scores kept per record and scorer, so an interrupted or repeated bench run scores nothing twice.

A store is one JSONL file per scorer fingerprint (model files or judge backend, and the
settings that change scores): ``$OMNIRM_CACHE_DIR/bench/<fingerprint hash>.jsonl`` unless
``--scores FILE`` names one. Each line holds the scorer's fingerprint digest, a hash of the
input record and the scored record; a record is reused only by the same scorer and only when
its input is unchanged (a ``--scores`` file used by several scorers keeps each one's apart). Lines are appended as records are scored,
so a run cut off (Ctrl-C, a crash, a lost machine) keeps everything scored before; a cut-off
last line is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from omnirm.jsonl import JsonlWriter, complete_lines
from omnirm.records import Record
from omnirm.resume import item_hash


def default_store_path(digest: str) -> Path:
    from omnirm.judging.cache import default_cache_path

    return default_cache_path().parent / "bench" / f"{digest}.jsonl"


class ScoreStore:
    """Scored records by scorer, id and input hash (see the module docs). The file is locked
    while the store is open: a second run using it at the same time is refused."""

    def __init__(
        self, path: str | Path, scorer: str, *, inputs: Iterable[str | Path | None] = ()
    ) -> None:
        self.path = Path(path)
        self.scorer = scorer
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = JsonlWriter(self.path, append=True, inputs=inputs, option="--scores")
        self._scored: dict[str, tuple[str, dict[str, Any]]] = {}
        for entry in _entries(self.path):
            if entry.get("scorer") == scorer:
                self._scored[str(entry["record"]["id"])] = (entry["input"], entry["record"])

    def __len__(self) -> int:
        return len(self._scored)

    def get(self, record: Record) -> dict[str, Any] | None:
        found = self._scored.get(record.id)
        if found is None or found[0] != item_hash(record):
            return None
        return found[1]

    def add(self, record: Record, scored: dict[str, Any]) -> None:
        digest = item_hash(record)
        self._scored[record.id] = (digest, scored)
        self._writer.write({"scorer": self.scorer, "input": digest, "record": scored})

    def close(self) -> None:
        self._writer.close()


def _entries(path: Path) -> Iterator[dict[str, Any]]:
    """The complete entries of a store (a cut-off last line is dropped)."""
    for _, raw in complete_lines(path):
        try:
            entry = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and "input" in entry and isinstance(entry.get("record"), dict):
            yield entry
