"""Benchmark metrics on hand-computed examples (each number worked out in a comment)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from omnirm.bench.items import BenchItem
from omnirm.bench.metrics import (
    RB1_EXAMPLE_COUNTS,
    RB1_SECTIONS,
    Interval,
    bootstrap_interval,
    cv_folds,
    evaluate,
    evaluate_task,
    oracle_threshold,
    pearson,
    rewardbench_v1,
    rewardbench_v2,
    tie_accuracy,
)


def item(
    item_id: str,
    gold: int | str,
    rewards: tuple[float | None, ...] | None = None,
    predicted: Any = None,
    *,
    task: str = "t",
    lengths: tuple[int, ...] = (10, 10),
    **extra: Any,
) -> BenchItem:
    return BenchItem(
        id=item_id,
        task=task,
        gold=gold,
        rewards=rewards,
        predicted=predicted,
        lengths=lengths,
        **extra,
    )


def judge_items(task: str = "j", modality: str = "text") -> list[BenchItem]:
    return [
        item("a", 0, predicted=0, consistent=True, task=task, modality=modality),  # right
        item("b", 1, predicted=0, consistent=False, task=task, modality=modality),  # wrong
        item("c", 0, predicted="tie", consistent=True, task=task, modality=modality),  # wrong
        item("d", "tie", predicted="tie", task=task, modality=modality),  # right (w/ ties only)
        item("e", 1, predicted=None, task=task, modality=modality),  # no verdict: wrong
    ]


def scalar_items(task: str = "s", modality: str = "text") -> list[BenchItem]:
    # oriented margin d (toward gold) for non-ties, |margin| for ties:
    return [
        item("a", 0, (2.0, 1.0), task=task, modality=modality),  # d = 1
        item("b", 1, (1.0, 1.0), task=task, modality=modality),  # d = 0: wrong w/o ties
        item("c", 1, (0.0, 3.0), task=task, modality=modality),  # d = 3
        item("d", "tie", (1.0, 1.5), task=task, modality=modality),  # |m| = 0.5
        item("e", "tie", (2.0, 0.0), task=task, modality=modality),  # |m| = 2
        item("f", 0, (None, 1.0), task=task, modality=modality),  # missing: always wrong
        item("g", 0, (1.8, 0.0), task=task, modality=modality),  # d = 1.8
    ]


# --------------------------------------------------------------------------------------------
# accuracies
# --------------------------------------------------------------------------------------------


def test_judge_accuracies_consistency_and_unparseable() -> None:
    result = evaluate_task(judge_items(), bootstrap=0)
    assert result.kind == "judge"
    assert (result.n, result.n_ties) == (5, 1)
    # w/o ties: a, b, c, e; only a right ("tie" for c and None for e are wrong) → 1/4
    assert result.accuracy_without_ties == pytest.approx(0.25)
    # w/ ties: a and d right out of 5 → 2/5
    assert result.accuracy_with_ties == pytest.approx(0.4)
    # consistent known for a (True), b (False), c (True) → 2/3
    assert result.order_consistency == pytest.approx(2 / 3)
    # predicted None: e → 1/5
    assert result.unparseable == pytest.approx(0.2)
    assert result.tie_threshold is None and result.calibration is None
    assert result.ci_without_ties is None  # bootstrap=0


def test_order_consistency_none_when_unknown() -> None:
    items = [item("a", 0, predicted=0), item("b", 1, predicted=1)]
    assert evaluate_task(items, bootstrap=0).order_consistency is None


def test_scalar_accuracies_and_oracle_threshold() -> None:
    result = evaluate_task(scalar_items(), bootstrap=0)
    assert result.kind == "scalar"
    # w/o ties: a (d=1 ✓), b (d=0 ✗: margin 0 counts wrong), c (d=3 ✓), f (✗), g (d=1.8 ✓) → 3/5
    assert result.accuracy_without_ties == pytest.approx(0.6)
    # oracle over eps in {0, 0.5, 1, 1.8, 2, 3}; right = ties with |m| <= eps + others with d > eps:
    #   eps 0   → a c g            = 3/7
    #   eps 0.5 → a c g + d        = 4/7   ← best
    #   eps 1   → c g + d          = 3/7
    #   eps 1.8 → c + d            = 2/7
    #   eps 2   → c + d e          = 3/7
    #   eps 3   → d e              = 2/7
    assert result.tie_threshold == pytest.approx(0.5)
    assert result.tie_threshold_source == "oracle"
    assert result.accuracy_with_ties == pytest.approx(4 / 7)
    assert oracle_threshold(scalar_items()) == (pytest.approx(0.5), pytest.approx(4 / 7))
    assert tie_accuracy(scalar_items(), 2.0) == pytest.approx(3 / 7)
    assert result.order_consistency is None and result.unparseable is None


def test_oracle_prefers_the_smallest_best_threshold() -> None:
    # ties |m| 1 and 3, one non-tie d = 2: eps 0 → 1/3 (x), eps 1 → 2/3 (t1, x), eps 2 → 1/3 (t1),
    # eps 3 → 2/3 (t1, t3): best 2/3 at eps 1 and 3 → the smaller, 1
    items = [item("t1", "tie", (1.0, 0.0)), item("t3", "tie", (0.0, 3.0)), item("x", 0, (2.0, 0.0))]
    assert oracle_threshold(items) == (pytest.approx(1.0), pytest.approx(2 / 3))


def test_calibration_file_is_applied_honestly() -> None:
    # calibration items: a tie with |m| = 2 and a non-tie with d = 3:
    #   eps 0 → 1/2, eps 2 → 2/2, eps 3 → 1/2 → eps = 2
    calibration = [item("k1", "tie", (3.0, 1.0), task="s"), item("k2", 0, (3.0, 0.0), task="s")]
    result = evaluate(scalar_items(), calibration=calibration, bootstrap=0).tasks[0]
    assert result.calibration == "file"
    assert result.calibrated_tie_threshold == pytest.approx(2.0)
    assert (result.calibration_n, result.calibration_pooled) == (2, False)
    # eps 2 on the test items (table in the test above) → c + d e = 3/7, below the oracle's 4/7
    assert result.accuracy_with_ties_calibrated == pytest.approx(3 / 7)
    assert result.accuracy_with_ties == pytest.approx(4 / 7)


def test_calibration_pools_other_tasks_when_the_task_has_none() -> None:
    calibration = [item("k1", "tie", (3.0, 1.0), task="x"), item("k2", 0, (3.0, 0.0), task="y")]
    result = evaluate(scalar_items(), calibration=calibration, bootstrap=0).tasks[0]
    # same two items pooled → eps 2 → 3/7
    assert (result.calibration, result.calibration_pooled) == ("file", True)
    assert result.calibrated_tie_threshold == pytest.approx(2.0)
    assert result.accuracy_with_ties_calibrated == pytest.approx(3 / 7)


def test_cross_validation_leave_one_out_by_hand() -> None:
    # 3 items, folds=5 → k = 3: leave-one-out, whatever the shuffle
    items = [item("t1", "tie", (1.2, 1.0)), item("t2", "tie", (1.0, 1.4)), item("x", 0, (2.0, 1.0))]
    #   hold out t1: train t2 (|m| .4), x (d 1): eps .4 → 2/2; t1: .2 <= .4 ✓
    #   hold out t2: train t1 (|m| .2), x: eps .2 → 2/2; t2: .4 <= .2 ✗
    #   hold out x: train t1, t2: eps .4 → 2/2; x: 1 > .4 ✓
    # CV accuracy 2/3; the oracle on all three: eps .4 → 3/3
    result = evaluate_task(items, bootstrap=0)
    assert result.calibration == "cv3"
    assert result.accuracy_with_ties_calibrated == pytest.approx(2 / 3)
    assert result.accuracy_with_ties == pytest.approx(1.0)
    assert sorted(result.fold_tie_thresholds) == pytest.approx([0.2, 0.4, 0.4])
    assert result.calibrated_tie_threshold == pytest.approx(0.4)  # their median


def test_cross_validation_is_deterministic_by_seed() -> None:
    folds = cv_folds(20, 5, seed=0, task="s")
    assert sorted(np.concatenate(folds).tolist()) == list(range(20))
    assert [len(f) for f in folds] == [4] * 5
    again = cv_folds(20, 5, seed=0, task="s")
    assert all(np.array_equal(a, b) for a, b in zip(folds, again, strict=True))
    other = cv_folds(20, 5, seed=1, task="s")
    assert not all(np.array_equal(a, b) for a, b in zip(folds, other, strict=True))

    items = [item(f"i{n}", "tie" if n % 3 == 0 else n % 2, (n * 0.1, 0.5)) for n in range(20)]
    first = evaluate(items, bootstrap=0, seed=3).to_dict()
    assert first == evaluate(items, bootstrap=0, seed=3).to_dict()
    assert first["tasks"][0]["calibration"] == "cv5"
    assert len(first["tasks"][0]["fold_tie_thresholds"]) == 5


# --------------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------------


def test_bootstrap_interval_contains_estimate_and_is_deterministic() -> None:
    items = [item(f"i{n}", 0, predicted=0 if n % 4 else 1) for n in range(40)]  # 30/40 right
    result = evaluate_task(items, bootstrap=1000, seed=0)
    assert result.accuracy_without_ties == pytest.approx(0.75)
    ci = result.ci_without_ties
    assert ci is not None and ci.low <= 0.75 <= ci.high and ci.low < ci.high
    assert evaluate_task(items, bootstrap=1000, seed=0).ci_without_ties == ci
    assert evaluate_task(items, bootstrap=1000, seed=1).ci_with_ties is not None

    # scalar w/ ties: correctness at the oracle eps is resampled
    scalar = evaluate_task(scalar_items(), bootstrap=500)
    assert scalar.ci_with_ties is not None
    assert scalar.ci_with_ties.low <= 4 / 7 <= scalar.ci_with_ties.high


def test_bootstrap_interval_edges() -> None:
    assert bootstrap_interval([1.0, 1.0, 1.0], resamples=100) == Interval(1.0, 1.0)
    assert bootstrap_interval([], resamples=100) is None
    assert bootstrap_interval([0.0, 1.0], resamples=0) is None


# --------------------------------------------------------------------------------------------
# length bias
# --------------------------------------------------------------------------------------------


def test_length_bias_scalar_rewards_equal_lengths() -> None:
    # rewards = lengths → r = 1.0; in both pairs the longer response (index 1) has the higher reward
    items = [
        item("a", 1, (10.0, 20.0), lengths=(10, 20)),
        item("b", 1, (5.0, 30.0), lengths=(5, 30)),
    ]
    result = evaluate_task(items, bootstrap=0)
    assert result.length_bias == pytest.approx(1.0)
    assert result.longer_preferred == pytest.approx(1.0)
    # rewards = −lengths → r = −1.0, the shorter always wins
    flipped = [
        item("a", 0, (-10.0, -20.0), lengths=(10, 20)),
        item("b", 0, (-5.0, -30.0), lengths=(5, 30)),
    ]
    result = evaluate_task(flipped, bootstrap=0)
    assert result.length_bias == pytest.approx(-1.0)
    assert result.longer_preferred == pytest.approx(0.0)


def test_length_bias_judge_votes() -> None:
    items = [
        item("a", 0, predicted=0, lengths=(30, 10)),  # x = 20, vote +1; longer (0) won
        item("b", 1, predicted=1, lengths=(10, 40)),  # x = −30, vote −1; longer (1) won
        item("c", "tie", predicted="tie", lengths=(20, 20)),  # x = 0, vote 0; equal: not counted
        item("d", 0, predicted=None, lengths=(50, 1)),  # no verdict: skipped
    ]
    # x = [20, −30, 0] (mean −10/3), y = [1, −1, 0] (mean 0):
    # Σdx·dy = 70/3 + 80/3 = 50, Σdx² = (70² + 80² + 10²)/9 = 11400/9, Σdy² = 2
    # r = 50 / sqrt(11400/9 · 2) = 150 / sqrt(22800) ≈ 0.993399
    result = evaluate_task(items, bootstrap=0)
    assert result.length_bias == pytest.approx(150 / math.sqrt(22800))
    assert result.longer_preferred == pytest.approx(1.0)


def test_pearson_undefined() -> None:
    assert pearson([1.0], [2.0]) is None
    assert pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None
    assert pearson([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx(1.0)
    same_length = [item("a", 0, predicted=0), item("b", 1, predicted=1)]  # lengths (10, 10): x = 0
    result = evaluate_task(same_length, bootstrap=0)
    assert result.length_bias is None and result.longer_preferred is None


# --------------------------------------------------------------------------------------------
# overall and modalities
# --------------------------------------------------------------------------------------------


def test_overall_is_unweighted_mean_over_tasks() -> None:
    result = evaluate(judge_items("j") + scalar_items("s"), bootstrap=0)
    assert [t.task for t in result.tasks] == ["j", "s"]
    overall = result.overall
    assert overall["n_tasks"] == 2 and overall["n"] == 12
    # w/o ties: (0.25 + 0.6) / 2 = 0.425 (item-weighted would be 4/9 ≈ 0.444)
    assert overall["accuracy_without_ties"] == pytest.approx(0.425)
    # w/ ties: (0.4 + 4/7) / 2 ≈ 0.485714
    assert overall["accuracy_with_ties"] == pytest.approx((0.4 + 4 / 7) / 2)
    # calibrated: only the scalar task has it
    assert overall["accuracy_with_ties_calibrated"] == pytest.approx(
        result.tasks[1].accuracy_with_ties_calibrated
    )


def test_modalities_group_tasks_by_most_common_item_modality() -> None:
    judge = judge_items("j")
    judge = [
        BenchItem(**{**i.__dict__, "modality": "image" if n < 3 else "text"})
        for n, i in enumerate(judge)
    ]  # 3 image, 2 text → image
    items = judge + scalar_items("s", "video") + judge_items("v", "video")
    result = evaluate(items, bootstrap=0)
    assert [t.modality for t in result.tasks] == ["image", "video", "video"]
    assert list(result.modalities) == ["image", "video"]
    video = result.modalities["video"]
    assert (video["n_tasks"], video["n"], video["tasks"]) == (2, 12, ["s", "v"])
    # video: s (0.6, 4/7) and v (0.25, 0.4) → (0.6 + 0.25)/2 = 0.425, (4/7 + 0.4)/2
    assert video["accuracy_without_ties"] == pytest.approx(0.425)
    assert video["accuracy_with_ties"] == pytest.approx((4 / 7 + 0.4) / 2)
    assert result.modalities["image"]["accuracy_with_ties"] == pytest.approx(0.4)


def test_to_dict_is_json_ready() -> None:
    result = evaluate(judge_items() + scalar_items(), bootstrap=50)
    data = result.to_dict()
    json.dumps(data)
    task = data["tasks"][1]
    assert task["accuracy_with_ties"] == round(4 / 7, 6)
    low, high = task["ci_with_ties"]
    assert low <= high
    assert set(data["overall"]) >= {"accuracy_without_ties", "accuracy_with_ties", "n_tasks", "n"}


def test_evaluate_task_rejects_mixed_tasks() -> None:
    with pytest.raises(ValueError, match="several tasks"):
        evaluate_task([item("a", 0, predicted=0, task="x"), item("b", 0, predicted=0, task="y")])


# --------------------------------------------------------------------------------------------
# RewardBench
# --------------------------------------------------------------------------------------------


def test_rewardbench_v1_weights_subsets_by_example_counts() -> None:
    sections = {"A": ["s1", "s2"], "B": ["s3"], "C": ["s4"]}
    counts = {"s1": 3, "s2": 1, "s3": 10, "s4": 5}
    items = [
        item("1", 0, (2.0, 1.0), subset="s1"),  # chosen > rejected → 1
        item("2", 0, (1.0, 1.0), subset="s1"),  # equal rewards → 0; s1 = 0.5
        item("3", 1, predicted=1, subset="s2"),  # judge right → 1
        item("4", 1, predicted="tie", subset="s2"),  # tie/no verdict → 0.5; s2 = 0.75
        item("5", 1, (0.0, 1.0), subset="s3"),  # → 1; s3 = 1.0
        item("6", 0, (0.0, 1.0), subset="extra"),  # in no section
    ]
    result = rewardbench_v1(items, sections, counts)
    assert result["subsets"]["s1"] == {"accuracy": 0.5, "n": 2, "weight": 3}
    assert result["subsets"]["s2"]["accuracy"] == 0.75
    # A = (0.5·3 + 0.75·1) / 4 = 0.5625 (an unweighted mean would give 0.625); B = 1.0
    assert result["sections"] == {"A": 0.5625, "B": 1.0}
    # final = (0.5625 + 1.0) / 2 = 0.78125; C has no subset present: left out, named
    assert result["score"] == pytest.approx(0.78125)
    assert result["missing_sections"] == ["C"]
    assert result["unassigned_subsets"] == ["extra"]


def test_rewardbench_v1_constants_serve_the_suite_reader() -> None:
    from omnirm.bench.suites import get_suite

    assert get_suite("rewardbench").tasks == tuple(RB1_SECTIONS)
    assert sum(len(v) for v in RB1_SECTIONS.values()) == 23
    assert set(RB1_EXAMPLE_COUNTS) == {s for v in RB1_SECTIONS.values() for s in v}


def test_metrics_import_no_file_reader() -> None:
    code = "import sys, omnirm.bench.metrics; print('omnirm.bench.suites' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_rewardbench_v2_one_over_k_tie_credit() -> None:
    items = [
        item("m1", 0, (3.0, 3.0, 1.0, 0.0), subset="Math"),  # top 3 shared by 2 → 1/2
        item("m2", 0, (2.0, 5.0, 1.0, 0.0), subset="Math"),  # not top → 0
        item("m3", 0, (4.0, 1.0, 1.0, 1.0), subset="Math"),  # alone at top → 1
        item("m4", 0, (2.0, 2.0, 2.0, 2.0), subset="Math"),  # 4-way tie → 1/4
        item("f1", 0, (1.0, 0.0, 0.0, 0.0), subset="Focus"),  # → 1
    ]
    result = rewardbench_v2(items)
    # Math = (0.5 + 0 + 1 + 0.25) / 4 = 0.4375; Focus = 1; final = (0.4375 + 1) / 2 = 0.71875
    assert result["subsets"]["Math"] == {"score": 0.4375, "n": 4}
    assert result["subsets"]["Focus"]["score"] == 1.0
    assert result["score"] == pytest.approx(0.71875)
    assert "ties_rule" not in result


def ties_items() -> list[BenchItem]:
    return [
        item("ties-ref:0", 0, (5.0, 2.0, 1.0), subset="Ties"),
        item("ties-tied:0", 0, (5.0, 4.5, 3.0, 1.0), subset="Ties"),
        item("ties-ref:1", 0, (1.0, 2.0), subset="Ties"),
        item("ties-tied:1", 0, (6.0, 2.0, 3.0), subset="Ties"),
    ]


def test_rewardbench_v2_ties_official_rule() -> None:
    # ref rows have 1 correct answer; tied rows 2 (first two responses):
    #   ref:0  correct [5] vs [2, 1]: margin 3 → accurate
    #   tied:0 correct [5, 4.5] vs [3, 1]: margin 1.5 → accurate, spread 0.5
    #   ref:1  correct [1] vs [2]: margin −1 → not
    #   tied:1 correct [6, 2] vs [3]: margin −1 → not, spread 4
    # ref accuracy 1/2, tied accuracy 1/2
    # correctness_preferred: tied margin > spread: 1.5 > 0.5 ✓, −1 > 4 ✗ → 1/2
    # hard: min(ref, tied margin) > spread: 1.5 > 0.5 ✓, −1 > 4 ✗ → 1/2
    # margin score: mean(tanh(1.5/0.5 − 1), tanh(−1/4 − 1)) = (tanh 2 + tanh −1.25) / 2
    # score = 0.3·½ + 0.3·½ + 0.2·½ + 0.2·½ + 0.01·margin score
    result = rewardbench_v2(ties_items(), num_correct={"ties-tied:0": 2, "ties-tied:1": 2})
    margin = (math.tanh(2.0) + math.tanh(-1.25)) / 2
    assert result["ties_rule"] == "official"
    assert result["ties_components"]["correctness_margin_score"] == pytest.approx(margin, abs=1e-6)
    assert result["subsets"]["Ties"]["score"] == pytest.approx(0.5 + 0.01 * margin, abs=1e-6)


def test_rewardbench_v2_ties_falls_back_without_num_correct() -> None:
    # tied rows' correct count unknown → scored like the others, 1/k on gold 0:
    # ref:0 → 1, tied:0 → 1, ref:1 → 0, tied:1 → 1 → 3/4
    result = rewardbench_v2(ties_items())
    assert result["ties_rule"] == "best-of-n"
    assert "num_correct" in result["ties_note"]
    assert result["subsets"]["Ties"]["score"] == 0.75


def test_rewardbench_v2_judge_pick_and_missing_reward() -> None:
    items = [
        item("p1", 0, predicted=0, subset="Math", lengths=(1, 1, 1, 1)),  # right → 1
        item("p2", 0, predicted=2, subset="Math", lengths=(1, 1, 1, 1)),  # wrong → 0
        item("p3", 0, predicted=None, subset="Math", lengths=(1, 1, 1, 1)),  # none → 1/4
        item("p4", 0, (None, 0.0, 0.0, 0.0), subset="Math"),  # missing reward → 0
    ]
    # (1 + 0 + 0.25 + 0) / 4 = 0.3125
    assert rewardbench_v2(items)["subsets"]["Math"]["score"] == 0.3125
