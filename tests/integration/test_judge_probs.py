"""Verdicts read from next-token probabilities, and generation that stops at the verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnirm.models.backends.base import Sampling
from omnirm.models.backends.hf import HFBackend, StopWhen
from omnirm.prompts.verdicts import has_mark
from tests.tiny_models import make_tiny_fixed_answer

CONVERSATION = [
    {"role": "system", "content": "Judge."},
    {"role": "user", "content": "Which is better, A or B?"},
]


@pytest.fixture(scope="module")
def always_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_fixed_answer(tmp_path_factory.mktemp("judge") / "a", "Yes[[A]] Indeed")


def test_generation_stops_once_the_verdict_is_complete(always_a: Path) -> None:
    backend = HFBackend(str(always_a), device="cpu")
    stopped = backend.generate([CONVERSATION], Sampling(max_new_tokens=30))[0]
    assert stopped.text == "Yes[[A]]"
    whole = backend.generate([CONVERSATION], Sampling(max_new_tokens=30, stop_at_mark=False))[0]
    assert whole.text == "Yes[[A]] Indeed"
    assert stopped.completion_tokens is not None and whole.completion_tokens is not None
    assert stopped.completion_tokens < whole.completion_tokens


def test_the_stopping_criterion_looks_at_generated_tokens_only(always_a: Path) -> None:
    import torch

    backend = HFBackend(str(always_a), device="cpu")
    encode = backend.tokenizer.encode
    prompt = encode("Answer like [[A]] or [[B]].")  # the prompt's own marks do not count
    rows = [prompt + encode(" so it is [[B]]"), prompt + encode(" so it is [[B")]
    width = max(map(len, rows))
    pad = backend.tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    done = StopWhen(backend.tokenizer, len(prompt) + 1, has_mark)(ids, None)
    assert done.tolist() == [True, False]


def test_probabilities_of_each_letter_at_the_verdict(always_a: Path) -> None:
    backend = HFBackend(str(always_a), device="cpu")
    direct, reasoned = (
        backend.verdict_probabilities([CONVERSATION], ("A", "B", "C"), rationale=rationale)[0]
        for rationale in (None, Sampling(max_new_tokens=30))
    )
    for result in (direct, reasoned):
        assert sum(result.probabilities.values()) == pytest.approx(1.0)
        assert result.probabilities["A"] > 0.99
    assert reasoned.mass > 0.99  # the letter is what this judge writes after its "[["
    assert reasoned.rationale == "Yes"
    assert reasoned.completion_tokens > 0
    assert direct.rationale is None
