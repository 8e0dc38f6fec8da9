"""``omnirm data stats``: what a preference file holds, computed in one streaming pass.

Counts per task, modality, number of responses and label kind (ties included), how many records
carry a criterion, and the length distribution (in characters and whitespace-separated words) of
prompts, responses and criteria. Lengths are kept in compact arrays, so memory stays at a few
bytes per record.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from omnirm.records import Record, content_text

LENGTH_FIELDS: tuple[str, ...] = ("prompt", "response", "criteria")
PERCENTILES: tuple[int, ...] = (5, 25, 50, 75, 95)


def label_kind(record: Record) -> str:
    """``tie``, ``preference``, ``ranking``, ``gold_scores`` or ``unlabelled``."""
    if record.preference == "tie":
        return "tie"
    if record.preference is not None:
        return "preference"
    if record.ranking is not None:
        return "ranking"
    if record.gold_scores is not None:
        return "gold_scores"
    return "unlabelled"


def _prompt_text(record: Record) -> str:
    if record.prompt is not None:
        return content_text(record.prompt)
    return "\n".join(content_text(m["content"]) for m in record.messages or [])


@dataclass
class _Lengths:
    chars: array = field(default_factory=lambda: array("L"))
    words: array = field(default_factory=lambda: array("L"))

    def add(self, text: str) -> None:
        self.chars.append(len(text))
        self.words.append(len(text.split()))


def _distribution(values: array) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    n = len(ordered)
    out: dict[str, float | int] = {
        "count": n,
        "mean": round(sum(ordered) / n, 2),
        "min": ordered[0],
    }
    for p in PERCENTILES:
        # Nearest-rank percentile: the smallest value with at least p% of values at or below it.
        out[f"p{p}"] = ordered[max(0, -(-p * n // 100) - 1)]
    out["max"] = ordered[-1]
    return out


@dataclass
class DataStats:
    """Accumulates statistics record by record; :meth:`to_dict` gives the JSON report."""

    records: int = 0
    invalid: int = 0
    tasks: Counter[str] = field(default_factory=Counter)
    modalities: Counter[str] = field(default_factory=Counter)
    num_responses: Counter[int] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    with_criteria: int = 0
    lengths: dict[str, _Lengths] = field(
        default_factory=lambda: {name: _Lengths() for name in LENGTH_FIELDS}
    )

    def add(self, record: Record) -> None:
        """Count one valid record."""
        self.records += 1
        self.tasks[record.resolved_task] += 1
        self.modalities[record.modality] += 1
        self.num_responses[record.num_responses] += 1
        self.labels[label_kind(record)] += 1
        self.lengths["prompt"].add(_prompt_text(record))
        for response in record.responses:
            self.lengths["response"].add(content_text(response))
        if record.criteria is not None and record.criteria.strip():
            self.with_criteria += 1
            self.lengths["criteria"].add(record.criteria)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (the ``--json`` output)."""
        return {
            "records": self.records,
            "invalid": self.invalid,
            "tasks": dict(self.tasks.most_common()),
            "modalities": dict(self.modalities.most_common()),
            "num_responses": {str(k): v for k, v in sorted(self.num_responses.items())},
            "labels": dict(self.labels.most_common()),
            "ties": self.labels.get("tie", 0),
            "with_criteria": self.with_criteria,
            "lengths": {
                name: {
                    "chars": _distribution(lengths.chars),
                    "words": _distribution(lengths.words),
                }
                for name, lengths in self.lengths.items()
            },
        }


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if isinstance(value, float) else str(value)


def render_stats(report: dict[str, Any], title: str) -> Any:
    """A rich renderable (tables) of a :meth:`DataStats.to_dict` report, for stderr."""
    from rich.console import Group
    from rich.table import Table

    total = max(report["records"], 1)
    counts = Table(title=title, title_justify="left", show_edge=False)
    counts.add_column("", style="bold")
    counts.add_column("value")
    counts.add_column("records", justify="right")
    counts.add_column("share", justify="right")
    counts.add_row("records", "", str(report["records"]), "")
    if report["invalid"]:
        counts.add_row("invalid (skipped)", "", str(report["invalid"]), "")
    for section, key in (
        ("task", "tasks"),
        ("modality", "modalities"),
        ("responses", "num_responses"),
        ("label", "labels"),
    ):
        for i, (value, n) in enumerate(report[key].items()):
            counts.add_row(section if i == 0 else "", str(value), str(n), f"{n / total:.1%}")
    n = report["with_criteria"]
    counts.add_row("criteria", "present", str(n), f"{n / total:.1%}")

    lengths = Table(title="lengths", title_justify="left", show_edge=False)
    lengths.add_column("", style="bold", no_wrap=True)
    lengths.add_column("unit", no_wrap=True)
    stats = ("count", "mean", "min", *(f"p{p}" for p in PERCENTILES), "max")
    for name in stats:
        lengths.add_column(name, justify="right")
    for name, dists in report["lengths"].items():
        for unit in ("chars", "words"):
            dist = dists[unit]
            lengths.add_row(
                name if unit == "chars" else "", unit, *(_cell(dist.get(s)) for s in stats)
            )
    return Group(counts, "", lengths)
