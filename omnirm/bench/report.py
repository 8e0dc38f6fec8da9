"""Reports of a bench run: a rich table for the terminal, GitHub Markdown, and a PNG plot.

Every function takes a typed result (:class:`~omnirm.bench.run.BenchRun`, turned into its
JSON-ready form as it is printed) or that form itself (a parsed ``--json`` report)::

    {"tasks": [{"task": ..., "n": ..., "accuracy_without_ties": 0.73, ...}, ...],
     "overall": {"accuracy_without_ties": ..., "n_tasks": ..., "n": ...},
     "modalities": {"image": {...}, ...}}

Missing keys show as "—". Accuracies are fractions and are shown as percentages with two
decimals, as the Omni-Reward paper prints them; published rows to compare with come from
:mod:`omnirm.bench.references`. The protocol (tie handling, order swapping, subsets, frames,
threshold method …) is always printed with the numbers: the same model scores points apart
under different protocols.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from omnirm import console
from omnirm.bench.references import (
    SOURCE,
    SOURCE_URL,
    TASK_ABBRS,
    canonical_name,
    reference,
    task_abbr,
)
from omnirm.errors import UsageError

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import Group

Result = Mapping[str, Any]


class Reportable(Protocol):
    """A typed result (``BenchRun``, ``BenchResult``): printed through its ``to_dict()``."""

    def to_dict(self) -> dict[str, Any]: ...


DASH = "—"
THIS_RUN = "this run"


# --- formatting -------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """A finite float, or None for anything else (missing, null, NaN, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _pct(value: Any) -> str:
    """A fraction as a percentage with two decimals (``0.6536`` → ``65.36``)."""
    number = _number(value)
    return DASH if number is None else f"{100 * number:.2f}"


def _interval(ci: Any) -> tuple[float, float] | None:
    """An interval given as ``{"low", "high"}`` or ``[low, high]``, else None."""
    if isinstance(ci, Mapping):
        low, high = ci.get("low"), ci.get("high")
    elif isinstance(ci, Sequence) and not isinstance(ci, str) and len(ci) == 2:
        low, high = ci
    else:
        return None
    low, high = _number(low), _number(high)
    return None if low is None or high is None else (low, high)


def _accuracy(value: Any, ci: Any = None) -> str:
    """``65.36 [62.10, 68.40]``: the accuracy with its interval, both in percent."""
    text = _pct(value)
    bounds = _interval(ci)
    if text != DASH and bounds is not None:
        text += f" [{100 * bounds[0]:.2f}, {100 * bounds[1]:.2f}]"
    return text


def _threshold(value: Any) -> str:
    number = _number(value)
    return DASH if number is None else f"{number:.4g}"


def _count(value: Any) -> str:
    number = _number(value)
    if number is None:
        return DASH
    return str(int(number)) if number.is_integer() else f"{100 * number:.2f}%"


def _tasks_label(k: int) -> str:
    return f"{k} task" if k == 1 else f"{k} tasks"


def _tasks(result: Result) -> list[Mapping[str, Any]]:
    return [t for t in result.get("tasks") or [] if isinstance(t, Mapping)]


def _is_scalar(task: Mapping[str, Any]) -> bool:
    return task.get("kind") == "scalar"


def _is_judge(task: Mapping[str, Any]) -> bool:
    return task.get("kind") == "judge"


def _as_result(result: Result | Reportable) -> Result:
    """The JSON-ready form of a result: a :class:`~omnirm.bench.run.BenchRun` (or a
    ``BenchResult``) is turned into it here, as it is printed; a mapping (a parsed ``--json``
    report) is taken as it is."""
    return result if isinstance(result, Mapping) else result.to_dict()


# --- the main table, shared by rich and Markdown ----------------------------------------------


class _Table:
    """Headers, alignments ("l"/"r") and rows of cell text: one per task, then the overall."""

    def __init__(self, result: Result) -> None:
        tasks = _tasks(result)
        self.scalar = any(_is_scalar(t) for t in tasks)
        self.judge = any(_is_judge(t) for t in tasks)
        self.length = any(
            t.get("length_bias") is not None or t.get("longer_preferred") is not None for t in tasks
        )
        columns = [
            ("Task", "l"),
            ("n", "r"),
            ("Ties", "r"),
            ("Acc w/o ties [CI]", "r"),
            ("Acc w/ ties [CI]", "r"),
        ]
        if self.scalar:
            columns += [("Tie ε", "r"), ("Acc w/ ties, calibrated ε", "r")]
        if self.judge:
            columns += [("Consistency", "r"), ("Unparseable", "r")]
        if self.length:
            columns += [("Length bias", "r")]
        self.headers = [name for name, _ in columns]
        self.aligns = [align for _, align in columns]
        self.rows = [self._task_row(t) for t in tasks]
        self.overall = self._overall_row(result, tasks)

    def _task_row(self, task: Mapping[str, Any]) -> list[str]:
        scalar = _is_scalar(task)
        row = [
            task_abbr(str(task.get("task", DASH))),
            _count(task.get("n")),
            _count(task.get("n_ties")),
            _accuracy(task.get("accuracy_without_ties"), task.get("ci_without_ties")),
            _accuracy(task.get("accuracy_with_ties"), task.get("ci_with_ties")),
        ]
        if self.scalar:
            epsilon = _threshold(task.get("tie_threshold")) if scalar else DASH
            if epsilon != DASH:
                epsilon += f" ({task.get('tie_threshold_source') or 'oracle'})"
            calibrated = _pct(task.get("accuracy_with_ties_calibrated")) if scalar else DASH
            if calibrated != DASH:
                how = [f"ε={_threshold(task.get('calibrated_tie_threshold'))}"]
                if task.get("calibration"):
                    how.append(str(task["calibration"]))
                calibrated += f" ({', '.join(how)})"
            row += [epsilon, calibrated]
        if self.judge:
            row += [_pct(task.get("order_consistency")), _count(task.get("unparseable"))]
        if self.length:
            row.append(_length_bias(task))
        return row

    def _overall_row(self, result: Result, tasks: list[Mapping[str, Any]]) -> list[str]:
        overall = result.get("overall") or {}
        k = _number(overall.get("n_tasks"))
        ties = [_number(t.get("n_ties")) for t in tasks]
        row = [
            f"Overall ({_tasks_label(int(k) if k is not None else len(tasks))})",
            _count(overall.get("n")),
            _count(sum(v for v in ties if v is not None)) if tasks and None not in ties else DASH,
            _pct(overall.get("accuracy_without_ties")),
            _pct(overall.get("accuracy_with_ties")),
        ]
        if self.scalar:
            row += [DASH, _pct(overall.get("accuracy_with_ties_calibrated"))]
        if self.judge:
            row += [DASH, DASH]
        if self.length:
            row.append(DASH)
        return row


def _length_bias(task: Mapping[str, Any]) -> str:
    """``+0.042 (longer 61.20%)``: the bias, and how often the longer response was picked."""
    bias = _number(task.get("length_bias"))
    longer = _pct(task.get("longer_preferred"))
    parts = [] if bias is None else [f"{bias:+.3f}"]
    if longer != DASH:
        parts.append(f"(longer {longer}%)" if parts else f"longer {longer}%")
    return " ".join(parts) or DASH


_MODALITY_HEADERS = [
    "Modality",
    "Tasks",
    "n",
    "Acc w/o ties",
    "Acc w/ ties",
    "Acc w/ ties, calibrated ε",
]


def _modality_rows(result: Result) -> list[list[str]]:
    modalities = result.get("modalities") or {}
    rows = []
    for name, summary in modalities.items():
        if not isinstance(summary, Mapping):
            continue
        rows.append(
            [
                str(name),
                _count(summary.get("n_tasks")),
                _count(summary.get("n")),
                _pct(summary.get("accuracy_without_ties")),
                _pct(summary.get("accuracy_with_ties")),
                _pct(summary.get("accuracy_with_ties_calibrated")),
            ]
        )
    return rows


# --- the official score (RewardBench's own rules) ---------------------------------------------


@dataclass
class _Official:
    """The leaderboard's own score as a table: RewardBench 1 sections (subsets weighted by
    example counts) or RewardBench 2 subsets, then the score row."""

    rule: str
    headers: list[str]
    rows: list[list[str]]
    score: list[str]


def _official(result: Result) -> _Official | None:
    official = result.get("official")
    if not isinstance(official, Mapping):
        return None
    rule = str(official.get("rule") or "official score")
    sections = official.get("sections")
    if isinstance(sections, Mapping):  # RewardBench 1
        details = official.get("section_details") or {}
        rows = []
        for name, score in sections.items():
            detail = details.get(name) or {}
            present, total = len(detail.get("subsets") or []), detail.get("subsets_total")
            rows.append(
                [str(name), f"{present} of {total}" if total else DASH,
                 _count(detail.get("n")), _pct(score)]
            )  # fmt: skip
        rows += [
            [str(name), DASH, "0", "not run"] for name in official.get("missing_sections") or []
        ]
        label = f"Score (mean of {len(sections)} section{'s' * (len(sections) != 1)})"
        return _Official(rule, ["Section", "Subsets", "n", "Score"], rows,
                         [label, "", _count(sum(d.get("n", 0) for d in details.values())),
                          _pct(official.get("score"))])  # fmt: skip
    subsets = official.get("subsets") or {}
    rows = []
    for name, entry in subsets.items():
        score = _pct(entry.get("score"))
        if str(name).lower() == "ties" and official.get("ties_rule"):
            score += f" ({official['ties_rule']} rule)"
        rows.append([str(name), _count(entry.get("n")), score])
    total = sum(_number(e.get("n")) or 0 for e in subsets.values())
    label = f"Score (mean of {len(subsets)} subset{'s' * (len(subsets) != 1)})"
    return _Official(rule, ["Subset", "n", "Score"], rows,
                     [label, _count(total), _pct(official.get("score"))])  # fmt: skip


def official_summary(official: Mapping[str, Any]) -> str:
    """One line: the rule and its score (with what is missing from a full run)."""
    line = f"{official.get('rule')}: score {_pct(official.get('score'))}"
    missing = official.get("missing_sections")
    if missing:
        line += f" (without {', '.join(missing)}: not comparable with the leaderboard)"
    return line


def _protocol_lines(protocol: Mapping[str, str] | None) -> list[str]:
    return [f"{key}: {value}" for key, value in (protocol or {}).items()]


# --- rich -------------------------------------------------------------------------------------


def render_table(
    result: Result | Reportable,
    *,
    title: str = "Benchmark results",
    protocol: Mapping[str, str] | None = None,
) -> Group:
    """The run as a rich renderable: one row per task, the overall, a per-modality block, and
    the protocol lines under the table. Print it with :func:`print_report` (standard error)."""
    result = _as_result(result)
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    main = _Table(result)
    width = len(main.headers)
    table = Table(title=Text(title), title_justify="left", header_style="bold")
    for header, align in zip(main.headers, main.aligns, strict=True):
        table.add_column(header, justify="left" if align == "l" else "right")

    def add(cells: list[str], style: str | None = None) -> None:
        # Text, not markup: task names and intervals may hold brackets
        padded = cells + [""] * (width - len(cells))
        table.add_row(*(Text(cell) for cell in padded), style=style)

    for row in main.rows:
        add(row)
    if main.rows:
        table.add_section()
    add(main.overall, style="bold")
    modalities = _modality_rows(result)
    if modalities:
        table.add_section()
        add(["By modality"], style="dim")
        for name, k, n, without, with_, calibrated in modalities:
            label = f"{name} ({_tasks_label(int(k))})" if k.isdigit() else name
            add([label, n, "", without, with_, *(["", calibrated] if main.scalar else [])])
    parts: list[Any] = [table]
    official = _official(result)
    if official is not None:
        rules = Table(title=Text(f"Official: {official.rule}"), title_justify="left",
                      header_style="bold")  # fmt: skip
        for index, header in enumerate(official.headers):
            rules.add_column(header, justify="left" if index == 0 else "right")
        for row in official.rows:
            rules.add_row(*map(Text, row))
        rules.add_section()
        rules.add_row(*map(Text, official.score), style="bold")
        parts.append(rules)
    lines = [Text(line) for line in _protocol_lines(protocol)]
    return Group(*parts, *lines)


def print_report(
    result: Result | Reportable,
    *,
    title: str = "Benchmark results",
    protocol: Mapping[str, str] | None = None,
) -> None:
    """Print :func:`render_table` to standard error (nothing with ``-q``)."""
    if console.verbosity() >= 0:
        out = console.stderr_console()
        if not out.is_terminal:  # a log file or pipe gets 80 columns, which wraps every cell
            from rich.console import Console

            out = Console(file=out.file, width=150, highlight=False, soft_wrap=True)
        out.print(render_table(result, title=title, protocol=protocol))


# --- Markdown ---------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(headers: list[str], aligns: list[str], rows: list[list[str]]) -> list[str]:
    rule = ["---" if align == "l" else "---:" for align in aligns]
    return [
        "| " + " | ".join(_md_cell(cell) for cell in line) + " |" for line in [headers, rule, *rows]
    ]


def _reference_rows(result: Result, names: Sequence[str]) -> list[list[str]]:
    """This run, then each published model: one w/ ties and one w/o ties row, per task abbr."""
    by_abbr = {task_abbr(str(t.get("task"))): t for t in _tasks(result)}
    overall = result.get("overall") or {}
    k = _number(overall.get("n_tasks"))
    run_k = int(k) if k is not None else len(by_abbr)
    rows = []
    for setting, key in (("w/ ties", "accuracy_with_ties"), ("w/o ties", "accuracy_without_ties")):
        cells = [_pct(by_abbr[a].get(key)) if a in by_abbr else DASH for a in TASK_ABBRS]
        total = _pct(overall.get(key))
        if total != DASH:
            total += f" ({_tasks_label(run_k)})"
        rows.append([THIS_RUN, setting, *cells, total])
    for name in names:
        row = reference(name)
        for setting, key in (("w/ ties", "with_ties"), ("w/o ties", "without_ties")):
            values = row.get(key) or {}
            cells = [_published(values.get(a)) for a in TASK_ABBRS]
            total = _published(row.get(f"overall_{key}"))
            if total != DASH and row.get("tasks_reported"):
                total += f" ({_tasks_label(int(row['tasks_reported']))})"
            rows.append([canonical_name(name), setting, *cells, total])
    return rows


def _published(value: Any) -> str:
    number = _number(value)
    return DASH if number is None else f"{number:.2f}"


def to_markdown(
    result: Result | Reportable,
    *,
    title: str = "Benchmark results",
    protocol: Mapping[str, str] | None = None,
    references: Sequence[str] | None = None,
) -> str:
    """The run as GitHub Markdown: the task table with the overall, the per-modality table,
    optionally the chosen published rows (:mod:`omnirm.bench.references`, by model name; an
    unknown name raises a ``ValueError`` listing the known ones), and the protocol as bullets."""
    result = _as_result(result)
    names = [canonical_name(name) for name in references or []]
    main = _Table(result)
    lines = [f"## {title}", ""]
    overall = [f"**{main.overall[0]}**", *main.overall[1:]]
    lines += _md_table(main.headers, main.aligns, [*main.rows, overall])
    modalities = _modality_rows(result)
    if modalities:
        lines += ["", "### By modality", ""]
        lines += _md_table(_MODALITY_HEADERS, ["l"] + ["r"] * 5, modalities)
    official = _official(result)
    if official is not None:
        lines += ["", f"### Official: {_md_cell(official.rule)}", ""]
        score = [f"**{official.score[0]}**", *official.score[1:]]
        aligns = ["l"] + ["r"] * (len(official.headers) - 1)
        lines += _md_table(official.headers, aligns, [*official.rows, score])
    if names:
        lines += [
            "",
            "### Published references",
            "",
            f"Accuracy (%) as reported in {SOURCE} ({SOURCE_URL}). Overall: the unweighted mean "
            "over the tasks a model was run on (7- and 9-task overalls are not comparable). "
            f"{DASH}: not reported, or not verified for omnirm's reference data (per-task "
            "w/o-ties numbers; see `omnirm.bench.references`).",
            "",
        ]
        headers = ["Model", "Setting", *TASK_ABBRS, "Overall"]
        lines += _md_table(
            headers, ["l", "l"] + ["r"] * (len(TASK_ABBRS) + 1), _reference_rows(result, names)
        )
    protocol_lines = _protocol_lines(protocol)
    if protocol_lines:
        lines += ["", "### Protocol", ""]
        lines += [f"- {_md_cell(line)}" for line in protocol_lines]
    return "\n".join(lines) + "\n"


# --- plot -------------------------------------------------------------------------------------


@dataclass
class _Series:
    """One group member of the bar chart: percentages per task (NaN where missing) and, for
    this run, error bars as (below, above) per task."""

    label: str
    without_ties: list[float]
    with_ties: list[float]
    errors_without_ties: list[tuple[float, float]] = field(default_factory=list)
    errors_with_ties: list[tuple[float, float]] = field(default_factory=list)


def _series(result: Result, names: Sequence[str]) -> tuple[list[str], list[_Series]]:
    """Task labels, then this run and each reference as :class:`_Series`."""
    nan = float("nan")
    tasks = _tasks(result)
    labels = [task_abbr(str(t.get("task"))) for t in tasks]

    def values(key: str) -> list[float]:
        numbers = [_number(task.get(key)) for task in tasks]
        return [nan if number is None else 100 * number for number in numbers]

    def errors(key: str, ci_key: str) -> list[tuple[float, float]]:
        out = []
        for task in tasks:
            number, bounds = _number(task.get(key)), _interval(task.get(ci_key))
            if number is None or bounds is None:
                out.append((nan, nan))
            else:
                out.append((100 * max(number - bounds[0], 0.0), 100 * max(bounds[1] - number, 0.0)))
        return out

    series = [
        _Series(
            THIS_RUN,
            values("accuracy_without_ties"),
            values("accuracy_with_ties"),
            errors("accuracy_without_ties", "ci_without_ties"),
            errors("accuracy_with_ties", "ci_with_ties"),
        )
    ]
    for name in names:
        row = reference(name)
        published = []
        for key in ("without_ties", "with_ties"):
            given = row.get(key) or {}
            numbers = [_number(given.get(label)) for label in labels]
            published.append([nan if number is None else number for number in numbers])
        series.append(_Series(canonical_name(name), published[0], published[1]))
    return labels, series


def plot_figure(
    result: Result | Reportable,
    *,
    references: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """A per-task grouped bar chart in two panels (without ties, with ties): this run plus the
    chosen published rows, matched by task abbreviation. Uses matplotlib's Agg canvas only
    (no pyplot, no global backend switch)."""
    result = _as_result(result)
    names = [canonical_name(name) for name in references or []]
    try:
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as missing:
        raise UsageError("plotting needs matplotlib: pip install 'matplotlib>=3.7'") from missing

    labels, series = _series(result, names)
    width_in = max(6.0, 1.5 + 0.35 * len(labels) * (len(series) + 1))
    figure = Figure(figsize=(width_in, 7.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 1, sharex=True)
    x = np.arange(len(labels))
    width = 0.8 / len(series)
    for i, member in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width
        panels = (
            (axes[0], member.without_ties, member.errors_without_ties),
            (axes[1], member.with_ties, member.errors_with_ties),
        )
        for axis, heights, errs in panels:
            yerr = None
            if any(not math.isnan(below) for below, _ in errs):
                yerr = np.array(errs, dtype=float).T
            axis.bar(x + offset, heights, width, label=member.label, yerr=yerr, capsize=2)
    for axis, panel in zip(axes, ("without ties", "with ties"), strict=True):
        axis.set_title(panel)
        axis.set_ylabel("accuracy (%)")
        axis.set_ylim(0, 100)
        axis.grid(axis="y", alpha=0.3)
    axes[1].set_xticks(x, labels, rotation=30 if any(len(label) > 6 for label in labels) else 0)
    if len(series) > 1 and all(math.isnan(v) for m in series[1:] for v in m.without_ties):
        axes[0].text(
            0.99,
            0.97,
            "published per-task w/o-ties accuracies: not available",
            transform=axes[0].transAxes,
            ha="right",
            va="top",
            fontsize="small",
            color="dimgray",
        )
    handles, names_shown = axes[1].get_legend_handles_labels()
    figure.legend(
        handles,
        names_shown,
        loc="outside lower center",
        ncols=min(4, len(series)),
        fontsize="small",
    )
    if title:
        figure.suptitle(title)
    return figure


def plot(
    result: Result | Reportable,
    path: str | Path,
    *,
    references: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Write :func:`plot_figure` as a PNG at ``path`` (parent folders made); returns the path."""
    figure = plot_figure(result, references=references, title=title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=120)
    return path


#: Another name for :func:`plot` (the command line's).
plot_result = plot

__all__ = ["plot", "plot_figure", "plot_result", "print_report", "render_table", "to_markdown"]
