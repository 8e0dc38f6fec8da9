"""Learning curves of an ``omnirm train r1`` run: ``curves.png`` from its ``metrics.jsonl``.

One panel per metric that some step recorded (SFT loss; GRPO reward, its components,
accuracy, format rate, answer length, KL, clip fraction; tokens per second), steps counted
across the stages in the order they ran, a dotted line where a stage begins. Drawn with
matplotlib's Agg canvas (no display needed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from omnirm.errors import UsageError

#: The panels, in order: (metric key, title).
PANELS = (
    ("loss", "SFT loss"),
    ("reward", "reward"),
    ("accuracy", "accuracy"),
    ("format_rate", "format rate"),
    ("completion_length", "answer length (tokens)"),
    ("kl", "KL to the reference"),
    ("clip_fraction", "clip fraction"),
    ("tokens_per_second", "tokens per second"),
)
PLOT_FILE = "curves.png"


def plot_metrics(folder: str | Path, target: str | Path | None = None) -> Path:
    """Draw the learning curves of the run in ``folder`` into ``target`` (default
    ``folder/curves.png``) and return its path; :class:`UsageError` when there is nothing to
    draw."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as missing:  # pragma: no cover - a dependency
        raise UsageError("plotting needs matplotlib: pip install 'matplotlib>=3.7'") from missing
    folder = Path(folder)
    source = folder / "metrics.jsonl"
    entries = [
        json.loads(line)
        for line in source.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ] if source.is_file() else []  # fmt: skip
    steps = [  # training steps (an rs stage logs one summary, not steps)
        e
        for e in entries
        if isinstance(e.get("step"), int) and not str(e.get("stage", "rs")).startswith("rs")
    ]
    x, starts, offset, current, last = [], [], 0, None, 0
    for entry in steps:
        if entry["stage"] != current:
            offset += last
            current, last = entry["stage"], 0
            starts.append((offset, current))
        last = max(last, entry["step"])
        x.append(offset + entry["step"])
    components = sorted({k for e in steps for k in e if k.startswith("reward/")})
    panels = [(key, title) for key, title in PANELS if any(key in e for e in steps)]
    if not panels:
        raise UsageError(f"{source}: no step metrics to plot")
    columns = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(6 * columns, 2.6 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, (key, title) in zip(axes, panels, strict=False):
        points = [(xi, e[key]) for xi, e in zip(x, steps, strict=True) if key in e]
        axis.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=key)
        if key == "reward":
            for name in components:
                shown = [(xi, e[name]) for xi, e in zip(x, steps, strict=True) if name in e]
                axis.plot([p[0] for p in shown], [p[1] for p in shown], alpha=0.6, label=name)
            axis.legend(fontsize="x-small")
        for start, stage in starts:
            axis.axvline(start + 0.5, linestyle=":", color="grey")
            axis.annotate(stage, (start + 0.5, 1.0), xycoords=("data", "axes fraction"),
                          fontsize="x-small", va="top")  # fmt: skip
        axis.set_title(title, fontsize="small")
        axis.set_xlabel("step", fontsize="small")
    for axis in axes[len(panels) :]:
        axis.set_visible(False)
    path = Path(target) if target is not None else folder / PLOT_FILE
    figure.savefig(path, format="png", dpi=100)
    return path
