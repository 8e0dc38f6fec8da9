"""Exceptions shared by the library and the command line.

Every error that comes from the user's data carries where it was found (file, line, record id,
field) so the message can point at it directly.
"""

from __future__ import annotations


class OmnirmError(Exception):
    """Base class for errors the command line reports without a traceback (exit code 1)."""


class OutputClosed(Exception):
    """The reader of our standard output went away (``omnirm … | head -1``); not an error.

    Deliberately not an ``OSError``, so that it reaches :func:`omnirm.cli.main.main` intact.
    """


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler stopping the job) while a command runs: it ends the
    command as Ctrl-C does, so outputs are finished or discarded and their temporary files
    removed (:func:`omnirm.cli.main.main` raises it from its SIGTERM handler)."""


class UsageError(OmnirmError):
    """The user asked for something that cannot work (bad option combination, missing file).

    The command line maps it to exit code 2.
    """


class RecordError(OmnirmError):
    """A record (or a line of a JSONL file) is malformed.

    ``str(error)`` reads like ``pairs.jsonl:12: record 'ab-3': responses[1][0].path: expected a
    string, got int``; each location part is left out when unknown.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        record_id: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.line = line
        self.record_id = record_id
        self.field = field

    def located(
        self,
        *,
        source: str | None = None,
        line: int | None = None,
        record_id: str | None = None,
    ) -> RecordError:
        """Fill in location parts that are still unknown and return self."""
        self.source = self.source if self.source is not None else source
        self.line = self.line if self.line is not None else line
        self.record_id = self.record_id if self.record_id is not None else record_id
        return self

    def to_dict(self) -> dict[str, object]:
        """The error as a JSON-ready dict (used by ``--on-error record``)."""
        return {
            "message": self.message,
            "source": self.source,
            "line": self.line,
            "id": self.record_id,
            "field": self.field,
        }

    def __str__(self) -> str:
        where = ""
        if self.source is not None:
            where = self.source if self.line is None else f"{self.source}:{self.line}"
        elif self.line is not None:
            where = f"line {self.line}"
        parts = [p for p in (where, _quote_id(self.record_id), self.field) if p]
        return ": ".join([*parts, self.message])


class MediaError(RecordError):
    """A media file is missing, corrupt, over a limit, or outside the media root."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        source: str | None = None,
        line: int | None = None,
        record_id: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, source=source, line=line, record_id=record_id, field=field)
        self.path = path

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "path": self.path}

    def __str__(self) -> str:
        base = super().__str__()
        if self.path and self.path not in self.message:
            return f"{base} ({self.path})"
        return base


def _quote_id(record_id: str | None) -> str:
    return f"record {record_id!r}" if record_id is not None else ""
