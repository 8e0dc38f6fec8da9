"""``omnirm data validate``: check records against the format, ids, labels and (optionally) media."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omnirm import console
from omnirm.errors import RecordError
from omnirm.jsonl import MAX_RECORD_BYTES, display_name
from omnirm.on_error import ErrorPolicy
from omnirm.records import InvalidRecord, Record, iter_records

#: Checks one record's media and returns how many files it opened; raises
#: :class:`~omnirm.errors.MediaError` (a :class:`RecordError`) naming the field and path.
MediaCheck = Callable[[Record], int]


@dataclass
class ValidationReport:
    """Counts from one validation run."""

    records: int = 0
    valid: int = 0
    invalid: int = 0
    media_files: int = 0

    @property
    def ok(self) -> bool:
        return self.invalid == 0

    def summary(self) -> str:
        media = f", {self.media_files} media files ok" if self.media_files else ""
        verdict = "all valid" if self.ok else f"{self.valid} valid, {self.invalid} invalid"
        return f"{self.records} records: {verdict}{media}"


def validate_records(
    source: str | Path,
    policy: ErrorPolicy,
    *,
    media_check: MediaCheck | None = None,
    max_bytes: int | None = MAX_RECORD_BYTES,
) -> ValidationReport:
    """Validate every record of ``source``: schema, labels, unique ids, and media if asked.

    Each bad record goes to ``policy`` (which raises in ``fail`` mode); the report counts all.
    """
    shown = display_name(source)
    report = ValidationReport()
    first_line: dict[str, int] = {}
    for line, item in console.progress(
        iter_records(source, name=shown, max_bytes=max_bytes), "validating"
    ):
        report.records += 1
        if isinstance(item, InvalidRecord):
            report.invalid += 1
            policy.handle(item)
            continue
        try:
            seen = first_line.setdefault(item.id, line)
            if seen != line:
                raise RecordError(f"duplicate id (first seen on line {seen})", field="id")
            if media_check is not None:
                report.media_files += media_check(item)
        except RecordError as error:
            error.located(source=shown, line=line, record_id=item.id)
            report.invalid += 1
            policy.handle(InvalidRecord(line, error, item.to_dict()))
            continue
        report.valid += 1
    return report
