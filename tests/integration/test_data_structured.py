"""Structured teacher answers on ``hf:``: a tiny random model never writes JSON on its own, but
decoded under the answer's schema (xgrammar) every answer parses and validates; with
``--no-structured`` the same teacher's answers are all unusable, as before."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from omnirm.data.criteria import validate_criterion
from omnirm.data.pairs import SCORES_SCHEMA, validate_scores
from omnirm.data.teach import Caller
from omnirm.models.backends.base import Sampling, open_backend
from tests.conftest import write_jsonl

pytest.importorskip("xgrammar")


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))


PAIRS = [
    {"id": f"q{i}", "prompt": f"What is {i} + {i}?", "responses": [str(2 * i), f"It is {2 * i}."],
     "preference": i % 2}
    for i in range(2)
]  # fmt: skip


def _criteria(cli: Callable[..., Any], model: Path, tmp_path: Path, *flags: str) -> dict[str, Any]:
    data = write_jsonl(tmp_path / "in.jsonl", PAIRS)
    stats = tmp_path / f"stats{''.join(flags)}.json"
    result = cli(
        "data", "criteria", str(data), "--teacher", f"hf:{model}", "--verifier", f"hf:{model}",
        "--contrastive", "--retries", "0", "--batch-size", "4", "--device", "cpu",
        "-o", str(tmp_path / f"out{''.join(flags)}.jsonl"), "--stats", str(stats), *flags,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    figures: dict[str, Any] = json.loads(stats.read_text())
    return figures


def test_structured_random_teacher_always_answers(
    cli: Callable[..., Any], tiny_qwen2: Path, tmp_path: Path
) -> None:
    teacher = _criteria(cli, tiny_qwen2, tmp_path)["roles"]["teacher"]
    assert teacher["requests"] == 4  # two pairs, contrastive
    assert teacher["unusable"] == 0 and teacher["reasks"] == 0 and teacher["failed"] == 0
    rejected = [
        json.loads(line) for line in (tmp_path / "out.rejected.jsonl").read_text().splitlines()
    ]
    # every criterion reached the verifiers (a random verifier gives no verdict: rejected there)
    assert all("teacher" not in line["rejected"]["reason"] for line in rejected)


def test_no_structured_keeps_the_old_path(
    cli: Callable[..., Any], tiny_qwen2: Path, tmp_path: Path
) -> None:
    teacher = _criteria(cli, tiny_qwen2, tmp_path, "--no-structured")["roles"]["teacher"]
    assert teacher["requests"] == 4 and teacher["unusable"] == 4  # prose, never JSON


def test_constrained_answers_parse_and_validate(tiny_qwen2: Path) -> None:
    backend = open_backend(f"hf:{tiny_qwen2}", device="cpu", batch_size=4)
    caller = Caller("teacher", f"hf:{tiny_qwen2}", backend, Sampling(max_new_tokens=400), retries=0)
    assert caller.structured  # default: on where the backend can
    asks = [[{"role": "user", "content": f"Score the pair, take {i}."}] for i in range(4)]
    answers = caller.ask_json(asks, validate_scores, SCORES_SCHEMA)
    assert all(answer.value is not None for answer in answers), [a.problem for a in answers]
    for answer in answers:
        parsed = json.loads(answer.text or "")  # the whole answer is the JSON object
        assert validate_scores(parsed) == answer.value
    off = Caller("teacher", "t", backend, Sampling(max_new_tokens=24), retries=0, structured=False)
    unconstrained = off.ask_json(asks[:2], validate_criterion, SCORES_SCHEMA)
    assert all(answer.value is None for answer in unconstrained)
    backend.close()
