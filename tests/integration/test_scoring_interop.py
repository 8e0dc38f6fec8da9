"""Scoring past the training length (--max-length at scoring time), and merged/ checkpoints
that score records without criteria as omnirm does (its default criterion kept in the chat
template)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_record, write_jsonl
from tests.integration.test_bench import saved_reward_model

Cli = Callable[..., Any]
LONG = "word " * 600  # about 600 tokens: over the 512 the model was "trained" at


@pytest.fixture(scope="module")
def reward_model(tiny_qwen2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_reward_model(tiny_qwen2, tmp_path_factory.mktemp("interop") / "rm")


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))


def test_training_length_is_not_a_scoring_limit(
    cli: Cli, reward_model: Path, tmp_path: Path
) -> None:
    records = [
        make_record("short"),
        make_record("long", responses=["ok", LONG], preference=1),
        make_record("many", responses=["ok", "fine", LONG], ranking=[2, 0, 1], preference=None),
    ]
    path = write_jsonl(tmp_path / "records.jsonl", records)
    scored = cli("score", str(path), "--model", str(reward_model))
    assert scored.code == 0, scored.stderr
    assert [len(r["rewards"]) for r in scored.jsonl()] == [2, 2, 3]
    best = cli("bon", str(path), "--model", str(reward_model))
    assert best.code == 0, best.stderr
    assert [r["id"] for r in best.jsonl()] == ["short", "long", "many"]
    bench = cli("bench", str(path), "--model", str(reward_model), "--json", "--bootstrap", "0")
    assert bench.code == 0, bench.stderr
    (report,) = bench.jsonl()
    assert "max length 4096" in report["protocol"]["reward model"]  # tiny Qwen2's window

    limited = cli("score", str(path), "--model", str(reward_model), "--max-length", "64")
    assert limited.code == 1
    assert "over --max-length 64" in limited.stderr and "raise --max-length" in limited.stderr
    for command in ("bon", "bench"):
        result = cli(command, str(path), "--model", str(reward_model), "--max-length", "64")
        assert result.code == 1 and "over --max-length 64" in result.stderr, command
    bad = cli("score", str(path), "--model", str(reward_model), "--max-length", "0")
    assert bad.code == 2 and "--max-length must be at least 1" in bad.stderr


def test_merged_checkpoint_scores_records_without_criteria_the_same(
    cli: Cli, reward_model: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from omnirm.models.checkpoint import export_merged
    from omnirm.models.inputs import DEFAULT_CRITERIA

    records = [
        make_record("plain", prompt="Name a colour.", responses=["Blue.", "I refuse."]),
        make_record("judged", criteria="Prefer refusals.", responses=["Blue.", "I refuse."]),
    ]
    path = write_jsonl(tmp_path / "records.jsonl", records)
    scored = cli("score", str(path), "--model", str(reward_model))
    assert scored.code == 0, scored.stderr
    merged = export_merged(reward_model, tmp_path / "merged")
    model = AutoModelForSequenceClassification.from_pretrained(merged).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert DEFAULT_CRITERIA in tokenizer.chat_template
    for record, out in zip(records, scored.jsonl(), strict=True):
        system = [{"role": "system", "content": record["criteria"]}] if "criteria" in record else []
        texts = []
        for response in record["responses"]:
            turns = [{"role": "user", "content": record["prompt"]}]
            turns.append({"role": "assistant", "content": response})
            texts.append(tokenizer.apply_chat_template([*system, *turns], tokenize=False))
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            rewards = model(**batch).logits.squeeze(-1).tolist()
        assert rewards == pytest.approx(out["rewards"], abs=1e-4), record["id"]
