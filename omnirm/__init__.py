"""omnirm: omni-modal reward modelling with free-form preferences.

The Python API (the command line runs the same functions)::

    import omnirm

    scorer = omnirm.load_scorer()                    # the embedded default reward model
    scored = omnirm.score(records, scorer)           # rewards, predicted, margin, scored_by
    omnirm.best_of_n("candidates.jsonl", output=Path("ranked.jsonl"))
    run = omnirm.run_bench("scored.jsonl")           # run.result: typed metrics
    omnirm.train_bt(omnirm.BTConfig(model=..., data=..., output=...))
    omnirm.train_r1(omnirm.R1Config(model=..., data=..., output=..., stage="sft,grpo"))

Importing the package is cheap on purpose: nothing here pulls in torch or transformers (the
names above load their modules when first used), so the command line's ``--help``,
``--version`` and completion stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name → the module that defines it (imported on first use, PEP 562).
_EXPORTS = {
    "Scorer": "omnirm.scorer",
    "load_scorer": "omnirm.scorer",
    "score": "omnirm.api",
    "write_records": "omnirm.api",
    "read_records": "omnirm.records",
    "Record": "omnirm.records",
    "best_of_n": "omnirm.bon",
    "BonSettings": "omnirm.bon",
    "run_bench": "omnirm.bench.run",
    "BTConfig": "omnirm.train.bt",
    "train_bt": "omnirm.train.bt",
    "R1Config": "omnirm.train.r1",
    "train_r1": "omnirm.train.r1",
    "JudgeOptions": "omnirm.options",
    "MediaOptions": "omnirm.options",
    "ModelOptions": "omnirm.options",
    "SamplingOptions": "omnirm.options",
    "ServeOptions": "omnirm.options",
}

__all__ = [
    "BTConfig",
    "BonSettings",
    "JudgeOptions",
    "MediaOptions",
    "ModelOptions",
    "R1Config",
    "Record",
    "SamplingOptions",
    "Scorer",
    "ServeOptions",
    "__version__",
    "best_of_n",
    "load_scorer",
    "read_records",
    "run_bench",
    "score",
    "train_bt",
    "train_r1",
    "write_records",
]

if TYPE_CHECKING:
    from omnirm.api import score, write_records
    from omnirm.bench.run import run_bench
    from omnirm.bon import BonSettings, best_of_n
    from omnirm.options import (
        JudgeOptions,
        MediaOptions,
        ModelOptions,
        SamplingOptions,
        ServeOptions,
    )
    from omnirm.records import Record, read_records
    from omnirm.scorer import Scorer, load_scorer
    from omnirm.train.bt import BTConfig, train_bt
    from omnirm.train.r1 import R1Config, train_r1


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'omnirm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
