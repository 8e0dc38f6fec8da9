"""``omnirm bench`` end to end: suites read from their published layouts, scored by tiny reward
models and judges, reports written, scores cached per record and scorer, runs resumed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_jsonl
from tests.tiny_models import make_tiny_fixed_answer
from tests.unit.bench.test_suites import VL_ROWS, make_rb, make_rb2, make_vl_hub


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))


def saved_reward_model(backbone: Path, folder: Path) -> Path:
    """An untrained reward model saved as ``omnirm train bt`` saves one (random head)."""
    import torch

    from omnirm.models.checkpoint import build_reward_model, save_reward_model
    from omnirm.train.bt import BTConfig

    torch.manual_seed(0)  # the head is drawn at random: the same one every run

    model, builder, config = build_reward_model(
        BTConfig(model=str(backbone), data="-", output=str(folder), max_length=512)
    )
    save_reward_model(folder, model, builder, config)
    return folder


@pytest.fixture(scope="module")
def text_rm(tiny_qwen2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_reward_model(tiny_qwen2, tmp_path_factory.mktemp("text-rm") / "rm")


def gold_pairs(n: int) -> list[dict[str, Any]]:
    tasks = ["text_to_text", "text_to_text", "safety"]
    return [
        {
            "id": f"g{i}",
            "task": tasks[i % 3],
            "prompt": f"Question {i}?",
            "responses": [f"Answer {i}." + " more" * (i % 4), f"Reply {i}."],
            "preference": [0, 1, "tie"][i % 3],
        }
        for i in range(n)
    ]


def test_scored_records_through_a_pipe(cli: Callable[..., Any], tmp_path: Path) -> None:
    records = gold_pairs(12)
    for position, record in enumerate(records):  # reward 0 wins on even ids: half right
        record["rewards"] = [1.0, 0.0] if position % 2 == 0 else [0.0, 1.0]
    path = write_jsonl(tmp_path / "scored.jsonl", records)
    result = cli(
        "bench", str(path), "--json", "--markdown", str(tmp_path / "r.md"),
        "--plot", str(tmp_path / "r.png"), "--reference", "GPT-4o", "--bootstrap", "200",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    (report,) = result.jsonl()
    by_task = {t["task"]: t for t in report["tasks"]}
    # text_to_text: ids 0,1,3,4,6,7,9,10 — gold 0,1,0,1,…; rewards say 0 on even positions
    t2t = by_task["text_to_text"]
    assert t2t["n"] == 8 and t2t["n_ties"] == 0
    assert t2t["accuracy_without_ties"] == pytest.approx(4 / 8)
    assert report["overall"]["n_tasks"] == 2
    assert report["protocol"]["overall"].startswith("unweighted mean")
    assert "Overall" in result.stderr and "oracle" in result.stderr
    markdown = (tmp_path / "r.md").read_text()
    assert "| GPT-4o | w/ ties |" in markdown and "### Protocol" in markdown
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_counts_against_the_number_of_records(
    cli: Callable[..., Any], text_rm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnirm import console

    monkeypatch.setattr(console, "PLAIN_INTERVAL", 1e-9)  # a progress line for every record
    records = gold_pairs(6)
    for record in records:
        record["rewards"] = [1.0, 0.0]
    scored = write_jsonl(tmp_path / "scored.jsonl", records)
    assert "reading: 6/6 (100%)" in cli("bench", str(scored)).stderr
    unscored = write_jsonl(tmp_path / "gold.jsonl", gold_pairs(5))
    result = cli("bench", "--suite", "jsonl", "--data", str(unscored), "--model", str(text_rm))
    assert result.code == 0, result.stderr
    assert "5/5 (100%)" in result.stderr and "1/5 (20%)" in result.stderr


def test_unscored_or_unlabelled_records_are_located_errors(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    records = gold_pairs(3)
    records[0]["rewards"] = [1.0, 0.0]
    path = write_jsonl(tmp_path / "half.jsonl", records)
    result = cli("bench", str(path))
    assert result.code == 1
    assert "record 'g1'" in result.stderr and "not scored" in result.stderr
    assert cli("bench", "--suite", "jsonl").code == 2
    # scored in part, no scorer: the unscored records are record errors (as for a FILE)
    assert cli("bench", "--suite", "jsonl", "--data", str(path)).code == 1
    both = cli("bench", str(path), "--model", "x", "--judge", "hf:y")
    assert both.code == 2 and "not both" in both.stderr


def test_reward_model_on_a_jsonl_suite_is_cached_and_resumes(
    cli: Callable[..., Any], text_rm: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "gold.jsonl", gold_pairs(9))
    scores = tmp_path / "scores.jsonl"
    args = ["bench", "--suite", "jsonl", "--data", str(data), "--model", str(text_rm), "--json"]
    first = cli(*args, "--scores", str(scores))
    assert first.code == 0, first.stderr
    (report,) = first.jsonl()
    assert {t["task"] for t in report["tasks"]} == {"text_to_text", "safety"}
    assert all(
        t["kind"] == "scalar" and t["tie_threshold_source"] == "oracle" for t in report["tasks"]
    )
    assert "reward model" in report["protocol"]
    assert len(scores.read_text().splitlines()) == 9
    # an interrupted run: 4 records kept, the 5th cut off mid-line
    lines = scores.read_text().splitlines(keepends=True)
    scores.write_text("".join(lines[:4]) + lines[4][:30])
    resumed = cli(*args, "--scores", str(scores))
    assert "4 records reused" in resumed.stderr and "5 records scored" in resumed.stderr
    # the same accuracies (rewards agree to float rounding, whatever the batches)
    again_tasks = resumed.jsonl()[0]["tasks"]
    for before, after in zip(report["tasks"], again_tasks, strict=True):
        assert before["accuracy_without_ties"] == after["accuracy_without_ties"]
        assert before["n"] == after["n"] and before["n_ties"] == after["n_ties"]
    assert len(scores.read_text().splitlines()) == 9
    # a changed record is scored again; the default store lives in the cache folder
    again = cli(*args)
    assert "9 records scored" in again.stderr
    assert "9 records reused" in cli(*args).stderr
    changed = gold_pairs(9)
    changed[0]["prompt"] = "Another question?"
    write_jsonl(data, changed)
    assert "8 records reused" in cli(*args).stderr


def test_rewardbench2_official_score(
    cli: Callable[..., Any], text_rm: Path, tmp_path: Path
) -> None:
    bench = make_rb2(tmp_path)
    result = cli(
        "bench", "--suite", "rewardbench2", "--data", str(bench), "--model", str(text_rm),
        "--json", "--on-error", "skip",
    )  # fmt: skip
    # the fixture holds one malformed row (num_correct disagrees): left out, one warning, exit 0
    assert result.code == 0 and "1 record skipped" in result.stderr
    assert "num_correct" in result.stderr
    (report,) = result.jsonl()
    official = report["official"]
    assert official["rule"].startswith("RewardBench 2")
    # the Ties rule's weights sum to 1.01 and its tanh term can be negative (as the original)
    assert -0.01 <= official["score"] <= 1.01 and official["subsets"]
    assert "RewardBench 2" in result.stderr


def test_rewardbench_records_from_a_file_get_the_official_rule(
    cli: Callable[..., Any], text_rm: Path, tmp_path: Path
) -> None:
    """``--suite rewardbench FILE``: records converted (then scored) elsewhere get the same
    official score as the suite read from its folder."""
    from omnirm.bench.suites import read_suite_items

    subsets = ["alpacaeval-easy", "alpacaeval-length", "mt-bench-hard", "math-prm", "hep-go"]
    bench = make_rb(tmp_path, subsets * 2)
    folder = cli("bench", "--suite", "rewardbench", "--data", str(bench), "--model", str(text_rm),
                 "--json", "--bootstrap", "0")  # fmt: skip
    assert folder.code == 0, folder.stderr
    records = write_jsonl(tmp_path / "rb.jsonl", list(read_suite_items("rewardbench", bench)))
    scored = cli("score", str(records), "--model", str(text_rm))
    assert scored.code == 0, scored.stderr
    path = tmp_path / "rb-scored.jsonl"
    path.write_text(scored.stdout)
    from_file = cli("bench", "--suite", "rewardbench", str(path), "--json", "--bootstrap", "0")
    assert from_file.code == 0, from_file.stderr
    (expected,), (actual,) = folder.jsonl(), from_file.jsonl()
    assert actual["official"]["sections"] == pytest.approx(expected["official"]["sections"])
    assert actual["official"]["score"] == pytest.approx(expected["official"]["score"])
    assert set(actual["official"]["sections"]) == {"chat", "chat-hard", "reasoning"}
    assert "Official: RewardBench 1" in from_file.stderr
    # unscored records of the suite are scored here, as any records file
    again = cli("bench", "--suite", "rewardbench", str(records), "--model", str(text_rm),
                "--json", "--bootstrap", "0")  # fmt: skip
    assert again.code == 0, again.stderr
    assert again.jsonl()[0]["official"]["score"] == pytest.approx(expected["official"]["score"])


def test_position_biased_judge_on_rewardbench(cli: Callable[..., Any], tmp_path: Path) -> None:
    bench = make_rb(
        tmp_path, ["alpacaeval-easy", "mt-bench-hard", "refusals-dangerous", "math-prm"]
    )
    judge = make_tiny_fixed_answer(tmp_path / "judge", "The first. [[A]]")
    args = ["bench", "--suite", "rewardbench", "--data", str(bench), "--judge", f"hf:{judge}"]
    result = cli(*args, "--max-new-tokens", "12", "--json")
    assert result.code == 0, result.stderr
    (report,) = result.jsonl()
    for task in report["tasks"]:
        assert task["kind"] == "judge"
        assert task["order_consistency"] == 0.0  # "A" in both orders
        assert task["accuracy_without_ties"] == 0.0  # contradicting orders give a tie: wrong
    assert report["official"]["rule"].startswith("RewardBench 1")
    assert "orders both" in report["protocol"]["judge"]


def test_vision_language_reward_model_on_vl_rewardbench(
    cli: Callable[..., Any], tiny_qwen2_5_vl: Path, tmp_path: Path
) -> None:
    rm = saved_reward_model(tiny_qwen2_5_vl, tmp_path / "vl-rm")
    bench = make_vl_hub(tmp_path)
    result = cli(
        "bench", "--suite", "vl-rewardbench", "--data", str(bench), "--model", str(rm),
        "--json", "--on-error", "skip",
    )  # fmt: skip
    assert result.code == 0 and "human_ranking" in result.stderr  # the fixture's one bad row
    (report,) = result.jsonl()
    assert report["tasks"] and all(t["modality"] == "image" for t in report["tasks"])
    assert report["modalities"]["image"]["n"] == sum(t["n"] for t in report["tasks"])
    assert sum(t["n"] for t in report["tasks"]) == len(VL_ROWS) - 1  # all but the bad row
    for task in report["tasks"]:
        low, high = task["ci_without_ties"]
        assert 0.0 <= low <= task["accuracy_without_ties"] <= high <= 1.0
        assert task["kind"] == "scalar" and task["n_ties"] == 0
