"""Training records kept on disk: a JSONL file read back by byte offset.

A training run reads its data once to check it (labels, lengths, media) and then every epoch in
a shuffled order. Holding the parsed records (or their encodings) in memory makes a run's memory
grow with its data set — Omni-RewardData has 248K pairs. :class:`RecordFile` keeps two numbers
per record instead (the line's byte offset, and its length in tokens for length-grouped
batching), in compact arrays, and parses a record again when a batch needs it: a seek and one
``orjson`` line, far cheaper than the forward pass the record goes through.
"""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import IO, Any

from torch.utils.data import Dataset

from omnirm.jsonl import read_json_line_at
from omnirm.records import Record, parse_record


class RecordFile(Dataset[Record]):
    """The records of ``path`` that :meth:`add` kept, by byte offset, with their lengths."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.offsets = array("q")
        self.lengths = array("l")  # tokens of what one record puts into a batch
        self._handle: IO[bytes] | None = None

    def add(self, offset: int, length: int) -> None:
        self.offsets.append(offset)
        self.lengths.append(length)

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, index: int) -> Record:
        if self._handle is None:
            self._handle = self.path.open("rb")
        return parse_record(read_json_line_at(self._handle, self.offsets[index]))

    def __getstate__(self) -> dict[str, Any]:  # data-loader workers open their own handle
        return {**self.__dict__, "_handle": None}

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
