"""GRPO rewards: built-in components, weighted, plus reward functions with TRL's signature.

Built-in components, each per completion:

- ``correct``: 1 when the answer's verdict (:func:`~omnirm.prompts.verdicts.parse_verdict`) is
  the gold letter for its order, else 0;
- ``correct``: with ``ties`` a tie record's gold letter is C, so the verdict is right or wrong
  among three (A, B, tie);
- ``format``: 1 when the answer holds exactly one verdict mark, else 0; with
  ``answer_format="json"`` the mark must be the answer's one well-formed Omni-RRM object
  (``reasoning``, ``score_A``, ``score_B``, ``better``: :func:`~omnirm.prompts.verdicts.json_verdict`);
- ``rubric``: the share of the criterion's aspects the reasoning mentions — the record's
  ``rubric`` dimensions (an object's keys or a list of names), else the keys of a per-criterion
  ``rationale``, else the content words of its criterion (0 when there are none);
- ``length``: −(completion tokens / ``max_completion_length``), a penalty on long answers;
- ``consistency``: the share of the answers to the same record in the other order that reach
  the same outcome (the same response preferred, or both a tie); 0 for an answer without a
  verdict, or whose record's other order is not in the batch (GRPO takes both orders of a
  record together, so an even ``prompts_per_step`` always has them).

``--reward-fn module:function`` (or ``path/to/file.py:function``) adds functions called as
TRL's ``GRPOTrainer`` calls them: ``f(prompts=…, completions=…, completion_ids=…,
trainer_state=…, **columns)``, with conversational prompts and completions
(``[{"role": "assistant", "content": text}]``) and the dataset's columns (the record's fields
but its prompt, plus ``order`` and ``gold``) as lists, one entry per completion. A function
returns one float (or None: no opinion, counted as 0) per completion. The reward is the
weighted sum of all components.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from omnirm.errors import UsageError
from omnirm.prompts.verdicts import json_verdict, parse_verdict, verdict_marks, without_marks

RewardFn = Callable[..., list[float | None]]


def correct_reward(texts: list[str], golds: list[str]) -> list[float]:
    return [1.0 if parse_verdict(t) == g else 0.0 for t, g in zip(texts, golds, strict=True)]


def format_reward(texts: list[str], answer_format: str = "marks") -> list[float]:
    if answer_format == "json":
        return [
            1.0 if len(verdict_marks(t)) == 1 and json_verdict(t) is not None else 0.0
            for t in texts
        ]
    return [1.0 if len(verdict_marks(t)) == 1 else 0.0 for t in texts]


#: Words a criterion is made of that name no aspect of it.
_COMMON = frozenset(
    [
        "that",
        "this",
        "with",
        "which",
        "what",
        "when",
        "where",
        "than",
        "then",
        "them",
        "they",
        "their",
        "there",
        "these",
        "those",
        "from",
        "into",
        "about",
        "above",
        "over",
        "under",
        "more",
        "most",
        "less",
        "least",
        "very",
        "much",
        "many",
        "also",
        "only",
        "just",
        "both",
        "each",
        "other",
        "such",
        "answer",
        "answers",
        "response",
        "responses",
        "prefer",
        "better",
        "best",
        "worse",
        "should",
        "would",
        "could",
        "does",
        "have",
        "been",
        "being",
        "make",
        "makes",
        "made",
        "user",
        "users",
        "request",
        "requests",
        "judge",
        "overall",
    ]
)


def rubric_aspects(columns: dict[str, Any]) -> list[str]:
    """The aspects a record's judgement should cover (see the module docs), lower case."""
    rubric = columns.get("rubric")
    if isinstance(rubric, dict) and rubric:
        return [str(k).lower() for k in rubric]
    if isinstance(rubric, list) and rubric:
        return [str(k).lower() for k in rubric]
    rationale = columns.get("rationale")
    if isinstance(rationale, dict) and rationale:
        return [str(k).lower() for k in rationale]
    criteria = columns.get("criteria")
    if not isinstance(criteria, str):
        return []
    words = re.findall(r"[a-z][a-z-]{3,}", criteria.lower())
    return list(dict.fromkeys(w for w in words if w not in _COMMON))


def rubric_reward(texts: list[str], columns: list[dict[str, Any]]) -> list[float]:
    values = []
    for text, row in zip(texts, columns, strict=True):
        aspects = rubric_aspects(row)
        reasoning = without_marks(text).lower()
        covered = sum(
            1
            for aspect in aspects
            if all(re.search(rf"\b{re.escape(w)}", reasoning) for w in aspect.split())
        )
        values.append(covered / len(aspects) if aspects else 0.0)
    return values


def length_reward(lengths: list[int], limit: int) -> list[float]:
    return [-n / limit for n in lengths]


def consistency_reward(texts: list[str], ids: list[Any], orders: list[str]) -> list[float]:
    from omnirm.judging.judge import verdict_outcome

    outcomes = [verdict_outcome(parse_verdict(t), o) for t, o in zip(texts, orders, strict=True)]
    values = []
    for i, outcome in enumerate(outcomes):
        others = [
            outcomes[j] for j in range(len(texts)) if ids[j] == ids[i] and orders[j] != orders[i]
        ]
        agree = sum(1 for other in others if outcome is not None and other == outcome)
        values.append(agree / len(others) if others else 0.0)
    return values


def load_reward_fn(spec: str) -> RewardFn:
    """The function ``module:function`` or ``file.py:function`` names; :class:`UsageError`
    when it cannot be imported or is not callable."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise UsageError(f"--reward-fn {spec!r}: expected module:function or file.py:function")
    try:
        if where.endswith(".py"):
            path = Path(where)
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            if module_spec is None or module_spec.loader is None or not path.is_file():
                raise UsageError(f"--reward-fn {spec!r}: no file {path}")
            module: Any = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except UsageError:
        raise
    except Exception as error:  # any import-time failure of the user's module
        raise UsageError(f"--reward-fn {spec!r}: cannot import {where}: {error}") from error
    function = getattr(module, name, None)
    if not callable(function):
        raise UsageError(f"--reward-fn {spec!r}: {where} has no function {name!r}")
    return function


@dataclass
class RewardWeights:
    correct: float = 1.0
    format: float = 0.5
    length: float = 0.0
    custom: float = 1.0
    consistency: float = 0.0
    rubric: float = 0.0


def score_completions(
    *,
    texts: list[str],
    completion_ids: list[list[int]],
    prompts: list[Any],
    columns: list[dict[str, Any]],
    functions: list[tuple[str, RewardFn]],
    weights: RewardWeights,
    max_completion_length: int,
    step: int,
    answer_format: str = "marks",
) -> tuple[list[float], dict[str, list[float]]]:
    """The total reward of every completion and each component's values (by name)."""
    golds = [c["gold"] for c in columns]
    parts: dict[str, list[float]] = {
        "correct": correct_reward(texts, golds),
        "format": format_reward(texts, answer_format),
        "length": length_reward([len(i) for i in completion_ids], max_completion_length),
        "consistency": consistency_reward(
            texts, [c.get("id") for c in columns], [c["order"] for c in columns]
        ),
        "rubric": rubric_reward(texts, columns),
    }
    scale = {
        "correct": weights.correct,
        "format": weights.format,
        "length": weights.length,
        "consistency": weights.consistency,
        "rubric": weights.rubric,
    }
    keys = sorted({k for c in columns for k in c})
    given = {k: [c.get(k) for c in columns] for k in keys}
    for name, function in functions:
        values = function(
            prompts=prompts,
            completions=[[{"role": "assistant", "content": t}] for t in texts],
            completion_ids=completion_ids,
            trainer_state=SimpleNamespace(global_step=step),
            **given,
        )
        if inspect.isawaitable(values):
            raise UsageError(f"--reward-fn {name}: async reward functions are not supported yet")
        values = list(values)
        if len(values) != len(texts):
            raise UsageError(
                f"--reward-fn {name}: returned {len(values)} rewards for {len(texts)} completions"
            )
        parts[name] = [_number(v, name) for v in values]
        scale[name] = weights.custom
    totals = [
        sum(scale[name] * values[i] for name, values in parts.items()) for i in range(len(texts))
    ]
    return totals, parts


def _number(value: Any, name: str) -> float:
    if value is None:
        return 0.0
    number = float(value)
    if not math.isfinite(number):
        raise UsageError(f"--reward-fn {name}: returned a non-finite reward ({value})")
    return number
