"""``omnirm data criteria --verifier-verdict probs|rationale-probs``: verifiers' verdicts read from
their probabilities of the verdict letters (as ``score --verdict probs``), on tiny local models: a
fixed-answer teacher (the same criterion for every pair), a random tiny Qwen2 verifier (an
opinion that depends on the pair) and a fixed-answer verifier that always says ``[[A]]``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_jsonl
from tests.integration.test_data_build_hf import CRITERION, arithmetic_pairs, lines
from tests.tiny_models import make_tiny_fixed_answer


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("probs-models")
    answers = {"teacher": CRITERION, "always_a": "The first. [[A]]"}
    return {name: make_tiny_fixed_answer(root / name, text) for name, text in answers.items()}


def criteria(cli: Callable[..., Any], data: Path, teacher: Path, *args: str) -> Any:
    return cli("data", "criteria", str(data), "--teacher", f"hf:{teacher}",
               "--max-new-tokens", "24", "--batch-size", "4", "--no-structured", *args)  # fmt: skip


def written(out: Path) -> list[dict[str, Any]]:
    rejects = out.with_name(out.name.replace(".jsonl", ".rejected.jsonl"))
    return lines(out) + (lines(rejects) if rejects.exists() else [])


def test_every_pair_gets_a_verdict_and_the_accept_rule_is_exact(
    cli: Callable[..., Any], fixed: dict[str, Path], tiny_qwen2: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", arithmetic_pairs())
    out, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    args = ["--verifier", f"hf:{tiny_qwen2}", "--verifier-verdict", "probs", "--contrastive",
            "--accept", "unanimous", "-o", str(out), "--stats", str(stats)]  # fmt: skip
    result = criteria(cli, data, fixed["teacher"], *args)
    assert result.code == 0, result.stderr
    built = written(out)
    assert sorted(line["id"] for line in built) == sorted(
        f"q{i}:c{part}" for i in range(5) for part in (0, 1)
    )
    kept_ids = {line["id"] for line in lines(out)}
    for line in built:
        stamp = line["provenance"]
        assert stamp["verifier_verdict"] == "probs"
        (verdict,) = stamp["verdicts"]
        ab, ba = verdict["probabilities"]["ab"], verdict["probabilities"]["ba"]
        assert set(ab) == set(ba) == {"A", "B"}
        assert ab["A"] + ab["B"] == pytest.approx(1) and ba["A"] + ba["B"] == pytest.approx(1)
        assert 0 < verdict["mass"]["ab"] <= 1 and 0 < verdict["mass"]["ba"] <= 1
        # the margin is p(response 0) − p(response 1) averaged over both orders (in "ba"
        # response 0 is shown as B), and the verifier agrees when it favours the target
        margin = (ab["A"] + ba["B"]) / 2 - (ab["B"] + ba["A"]) / 2
        assert verdict["margin"] == pytest.approx(margin, abs=1e-5)
        assert verdict["predicted"] == (0 if margin > 0 else 1)  # a random model never ties
        assert verdict["ab"] == (0 if ab["A"] > ab["B"] else 1)  # each order's likelier letter
        assert verdict["ba"] == (1 if ba["A"] > ba["B"] else 0)
        assert verdict["agrees"] == (verdict["predicted"] == stamp["target"])
        assert (line["id"] in kept_ids) == verdict["agrees"]
        assert line["criteria"] == "Prefer the shorter answer."
    # both of a pair's criteria are the same text, so the verifier reads the same pair twice:
    # exactly one of the two (opposite targets) is kept
    for i in range(5):
        assert len(kept_ids & {f"q{i}:c0", f"q{i}:c1"}) == 1
    figures = json.loads(stats.read_text())
    assert figures["kept"] == 5 and figures["rejected"] == 5
    verifier = figures["roles"]["verifier 1"]
    assert verifier["requests"] == 20 and verifier["unusable"] == 0 and verifier["reasks"] == 0
    assert verifier["calls"] + verifier["cached"] == 20 and verifier["calls"] > 0
    # a rerun reads every verdict from the cache and writes the same lines
    again = criteria(cli, data, fixed["teacher"], *args[:-4], "-o", str(tmp_path / "again.jsonl"),
                     "--stats", str(stats))  # fmt: skip
    assert again.code == 0, again.stderr
    assert json.loads(stats.read_text())["roles"]["verifier 1"]["calls"] == 0
    strip = [({**r, "provenance": {**r["provenance"], "fingerprint": None}}) for r in built]
    assert strip == [
        {**r, "provenance": {**r["provenance"], "fingerprint": None}}
        for r in written(tmp_path / "again.jsonl")
    ]


def test_a_position_biased_verifier_ties_by_probability(
    cli: Callable[..., Any], fixed: dict[str, Path], tiny_qwen2: Path, tmp_path: Path
) -> None:
    """``[[A]]`` in both orders: text verdicts say 0 then 1; the probabilities average to an
    exact tie, which agrees with no target, so with a second verifier nothing passes majority
    (2 of 2) and each line says how many agreed."""
    data = write_jsonl(tmp_path / "in.jsonl", arithmetic_pairs(3))
    out = tmp_path / "out.jsonl"
    result = criteria(cli, data, fixed["teacher"], "--verifier", f"hf:{tiny_qwen2}",
                      "--verifier", f"hf:{fixed['always_a']}", "--verifier-verdict", "probs",
                      "-o", str(out))  # fmt: skip
    assert result.code == 0, result.stderr
    assert lines(out) == []
    rejected = lines(tmp_path / "out.rejected.jsonl")
    assert len(rejected) == 3
    for line in rejected:
        random_verifier, biased = line["provenance"]["verdicts"]
        assert (biased["ab"], biased["ba"]) == (0, 1)
        assert biased["predicted"] == "tie" and biased["margin"] == 0 and not biased["agrees"]
        assert biased["probabilities"]["ab"]["A"] > 0.99
        agree = int(random_verifier["agrees"])
        assert line["provenance"]["agree"] == agree
        assert line["rejected"]["reason"] == f"verifiers: {agree} of 2 agree (majority needed)"


def test_rationale_first_then_the_letter(
    cli: Callable[..., Any], fixed: dict[str, Path], tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", arithmetic_pairs(1))
    out = tmp_path / "out.jsonl"
    result = criteria(cli, data, fixed["teacher"], "--verifier", f"hf:{fixed['always_a']}",
                      "--verifier-verdict", "rationale-probs", "-o", str(out))  # fmt: skip
    assert result.code == 0, result.stderr
    (line,) = lines(tmp_path / "out.rejected.jsonl")
    (verdict,) = line["provenance"]["verdicts"]
    assert line["provenance"]["verifier_verdict"] == "rationale-probs"
    assert verdict["rationales"] == {"ab": "The first.", "ba": "The first."}
    assert verdict["predicted"] == "tie"


def test_the_verdict_mode_is_part_of_the_fingerprint_and_the_cache_key(
    cli: Callable[..., Any], fixed: dict[str, Path], tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", arithmetic_pairs(2))
    out, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    verifier = ["--verifier", f"hf:{fixed['always_a']}"]
    text = criteria(cli, data, fixed["teacher"], *verifier, "-o", str(out), "--stats", str(stats))
    assert text.code == 0, text.stderr
    (text_stamp, _) = (line["provenance"] for line in lines(tmp_path / "out.rejected.jsonl"))
    assert text_stamp["verifier_verdict"] == "text"
    resumed = criteria(cli, data, fixed["teacher"], *verifier, "--verifier-verdict", "probs",
                       "-o", str(out), "--resume")  # fmt: skip
    assert resumed.code == 2
    assert "written with other models, prompts or settings" in resumed.stderr
    # the text answers cached by the first run are not taken for probability readings
    fresh = tmp_path / "probs.jsonl"
    probs = criteria(cli, data, fixed["teacher"], *verifier, "--verifier-verdict", "probs",
                     "-o", str(fresh), "--stats", str(stats))  # fmt: skip
    assert probs.code == 0, probs.stderr
    figures = json.loads(stats.read_text())
    assert figures["roles"]["teacher"]["calls"] == 0  # the teacher's answers are reused
    assert figures["roles"]["verifier 1"]["calls"] == 4  # 2 pairs x 2 orders, read afresh
    probs_stamp = lines(tmp_path / "probs.rejected.jsonl")[0]["provenance"]
    assert probs_stamp["fingerprint"] != text_stamp["fingerprint"]


def test_a_server_verifier_cannot_read_probabilities(
    cli: Callable[..., Any], fixed: dict[str, Path], tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", arithmetic_pairs(1))
    result = criteria(cli, data, fixed["teacher"], "--verifier", "openai:some-model",
                      "--base-url", "http://127.0.0.1:9/v1", "--verifier-verdict", "probs",
                      "-o", str(tmp_path / "out.jsonl"))  # fmt: skip
    assert result.code == 2 and result.stdout == ""
    assert (
        "--verifier-verdict probs needs a verifier whose next-token probabilities can be read; "
        "openai: verifiers do not expose them (use an hf: verifier)"
    ) in result.stderr
    assert not (tmp_path / "out.jsonl").exists()
