"""What a command does with one bad record: ``--on-error fail|skip|record``.

- ``fail`` (default): stop at the first bad record, after everything before it was written.
- ``skip``: leave it out, say so on stderr, carry on; exit code 1 at the end.
- ``record``: write it to the output with an ``error`` key (nothing of the input is lost).
"""

from __future__ import annotations

from enum import Enum

from omnirm import console
from omnirm.errors import RecordError
from omnirm.jsonl import Sink
from omnirm.records import InvalidRecord


class OnError(str, Enum):
    FAIL = "fail"
    SKIP = "skip"
    RECORD = "record"


class ErrorPolicy:
    """Applies an :class:`OnError` mode and counts what it saw."""

    def __init__(
        self, mode: OnError | str, writer: Sink | None = None, *, max_shown: int = 20
    ) -> None:
        self.mode = OnError(mode)
        self.writer = writer
        self.max_shown = max_shown
        self.count = 0

    def handle(self, bad: InvalidRecord | RecordError, value: object = None) -> None:
        """Deal with one bad record; raises its error in ``fail`` mode."""
        item = bad if isinstance(bad, InvalidRecord) else InvalidRecord(bad.line or 0, bad, value)
        self.count += 1
        if self.mode is OnError.FAIL:
            raise item.error
        if self.mode is OnError.RECORD and self.writer is not None:
            self.writer.write(item.to_error_record())
        if self.count <= self.max_shown:
            console.error(str(item.error))
        elif self.count == self.max_shown + 1:
            console.error(f"… further errors not shown (limit {self.max_shown}); see the summary")

    @property
    def failed(self) -> bool:
        return self.count > 0
