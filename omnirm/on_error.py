"""What a command does with one bad record: ``--on-error fail|skip|record``.

- ``fail`` (default): stop at the first bad record, after everything before it was written.
- ``skip``: leave it out and carry on, as asked: one warning at the end counts the skipped
  records and shows the first (``-v`` shows each); exit code 0.
- ``record``: write it to the output with an ``error`` key (nothing of the input is lost);
  exit code 1 at the end.

Commands end with :meth:`ErrorPolicy.exit_code`.
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
        self,
        mode: OnError | str,
        writer: Sink | None = None,
        *,
        max_shown: int = 20,
        list_skipped: bool = False,
    ) -> None:
        self.mode = OnError(mode)
        self.writer = writer
        self.max_shown = max_shown
        self.list_skipped = list_skipped  # show each skipped record (data validate)
        self.count = 0
        self.first: str | None = None

    def handle(self, bad: InvalidRecord | RecordError, value: object = None) -> None:
        """Deal with one bad record; raises its error in ``fail`` mode."""
        item = bad if isinstance(bad, InvalidRecord) else InvalidRecord(bad.line or 0, bad, value)
        self.count += 1
        if self.mode is OnError.FAIL:
            raise item.error
        if self.mode is OnError.RECORD and self.writer is not None:
            self.writer.write(item.to_error_record())
        if self.first is None:
            self.first = str(item.error)
        if self.mode is OnError.SKIP and not self.list_skipped:
            if console.verbosity() >= 1:
                console.warn(f"skipped: {item.error}")
            return
        if self.count <= self.max_shown:
            console.error(str(item.error))
        elif self.count == self.max_shown + 1:
            console.error(f"… further errors not shown (limit {self.max_shown}); see the summary")

    @property
    def failed(self) -> bool:
        """A bad record was met that was not skipped on purpose (``--on-error record``)."""
        return self.count > 0 and self.mode is not OnError.SKIP

    def exit_code(self) -> int:
        """The command's exit code (0, or 1 when :attr:`failed`), after one warning that counts
        the records skipped, if any."""
        if self.mode is OnError.SKIP and self.count and not self.list_skipped:
            plural = "s" if self.count != 1 else ""
            more = "" if console.verbosity() >= 1 else "; -v shows each"
            console.warn(
                f"{self.count} record{plural} skipped (--on-error skip), the first: "
                f"{self.first}{more}"
            )
        return 1 if self.failed else 0
