"""``omnirm bench``: reward models and judges on Omni-RewardBench and the public benchmarks.

- :mod:`~omnirm.bench.items`: :class:`BenchItem`, one benchmark example as scored.
- :mod:`~omnirm.bench.metrics`: accuracies with and without ties, tie thresholds (oracle and
  calibrated), bootstrap intervals, length bias, judge consistency; RewardBench 1/2 rules.
- :mod:`~omnirm.bench.suites`: readers for the published layouts of each suite.
- :mod:`~omnirm.bench.report`: rich table, JSON, Markdown and plot, with published references.
- :mod:`~omnirm.bench.run`: :func:`run_bench`, the whole run (what ``omnirm bench`` prints).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:  # run_bench and BenchRun, imported on first use
    if name in ("run_bench", "BenchRun"):
        from omnirm.bench import run

        return getattr(run, name)
    raise AttributeError(f"module 'omnirm.bench' has no attribute {name!r}")
