from __future__ import annotations

import json
from pathlib import Path

import pytest

from omnirm.bon import (
    BonSettings,
    Quality,
    annotate,
    combine,
    group_candidates,
    preference_pairs,
    rank_points,
    ranking_of,
    zscores,
)
from omnirm.on_error import ErrorPolicy
from omnirm.records import parse_record


def record(n: int = 4, **extra: object) -> object:
    return parse_record(
        {"id": "r", "prompt": "p", "responses": [f"c{i}" for i in range(n)], **extra}
    )


def test_ranking_puts_missing_last_and_keeps_index_order_for_equals() -> None:
    assert ranking_of([0.1, None, 0.9, 0.1]) == [2, 0, 3, 1]


def test_zscores_and_rank_points() -> None:
    assert zscores([1.0, 3.0]) == [-1.0, 1.0]
    assert zscores([2.0, 2.0, None]) == [0.0, 0.0, None]
    # 4 candidates: 3, 2, 1, 0 points; the two equal ones share (2 + 1) / 2
    assert rank_points([5.0, 1.0, 3.0, 3.0]) == [3.0, 0.0, 1.5, 1.5]


def test_combine_zscore_rank_and_agreement() -> None:
    scores = {"a": [1.0, 2.0, 3.0], "b": [30.0, 20.0, 10.0], "c": [0.0, 1.0, 5.0]}
    combined, agreement = combine(scores, "zscore")
    assert ranking_of(combined)[0] == 2
    assert agreement == pytest.approx(2 / 3)  # a and c pick 2, b picks 0
    ranked, _ = combine(scores, "rank")
    assert ranked == [pytest.approx(2 / 3), 1.0, pytest.approx(4 / 3)]
    single, agree = combine({"a": [1.0, None]}, "zscore")
    assert single == [1.0, None] and agree == 1.0


def test_annotate_select_and_top_k() -> None:
    rec = record()
    scores = {"m": [0.2, 0.9, None, 0.5]}
    out = annotate(rec, scores, BonSettings())  # type: ignore[arg-type]
    assert (out["best"], out["ranking"]) == (1, [1, 3, 0, 2])
    assert out["responses"] == ["c0", "c1", "c2", "c3"] and "selected" not in out
    best = annotate(rec, scores, BonSettings(select="best"))  # type: ignore[arg-type]
    assert best["responses"] == ["c1"] and best["selected"] == [1]
    worst = annotate(rec, scores, BonSettings(select="worst"))  # type: ignore[arg-type]
    assert worst["selected"] == [2]  # no score: last
    top = annotate(rec, scores, BonSettings(top_k=2))  # type: ignore[arg-type]
    assert top["responses"] == ["c1", "c3"] and top["rewards"] == [0.2, 0.9, None, 0.5]


def test_preference_pairs() -> None:
    rec = record(criteria="brief")
    rewards = [0.2, 0.9, None, 0.5]
    (pair,) = preference_pairs(rec, rewards)  # type: ignore[arg-type]
    assert pair["id"] == "r::1>0" and pair["responses"] == ["c1", "c0"]
    assert pair["preference"] == 0 and pair["margin"] == pytest.approx(0.7)
    assert pair["criteria"] == "brief" and pair["source_id"] == "r"
    # gaps: 1>3 0.4, 1>0 0.7, 3>0 0.3 — at least 0.35 keeps the first two
    every = list(preference_pairs(rec, rewards, mode="margin", margin=0.35))  # type: ignore[arg-type]
    assert [p["id"] for p in every] == ["r::1>3", "r::1>0"]
    gaps = {p["id"]: p["margin"] for p in preference_pairs(rec, rewards, mode="margin")}  # type: ignore[arg-type]
    assert set(gaps) == {"r::1>3", "r::1>0", "r::3>0"}
    assert list(preference_pairs(rec, [1.0, 1.0, 1.0, 1.0])) == []  # type: ignore[arg-type]


def test_quality() -> None:
    quality = Quality()
    quality.add([1.0, 3.0, 2.0], 1)  # picked the best
    quality.add([4.0, 0.0], 1)  # picked the worst
    q = quality.to_dict()
    assert q["gold_of_pick"] == pytest.approx((3 + 0) / 2)
    assert q["gold_of_best"] == pytest.approx((3 + 4) / 2)
    assert q["gold_of_random_pick"] == pytest.approx((2 + 2) / 2)
    assert q["best_picked"] == 0.5


def test_group_candidates() -> None:
    rows = [
        {"id": "a1", "prompt_id": 7, "prompt": "p", "responses": ["x", "y"], "gold_scores": [1, 2]},
        {"id": "b1", "prompt_id": 8, "prompt": "q", "responses": ["u", "v"]},
        {"id": "a2", "prompt_id": 7, "prompt": "p", "responses": ["z", "w"], "gold_scores": [3, 0]},
        {"id": "c", "prompt": "no group", "responses": ["m", "n"]},
    ]
    items = [(i + 1, parse_record(r)) for i, r in enumerate(rows)]
    policy = ErrorPolicy("skip")
    merged = group_candidates(items, "prompt_id", policy)
    assert [r.id for _, r in merged] == ["7", "8"]
    first = merged[0][1]
    assert first.responses == ["x", "y", "z", "w"] and first.gold_scores == [1, 2, 3, 0]
    assert first.extra["candidate_ids"] == ["a1#0", "a1#1", "a2#0", "a2#1"]
    assert policy.count == 1  # "c" has no prompt_id


def test_group_candidates_of_one_response_records(tmp_path: Path) -> None:
    from omnirm.records import iter_records

    rows = [
        {"id": "s0", "prompt_id": "p", "prompt": "P", "responses": ["a"], "gold_scores": [1.0]},
        {"id": "s1", "prompt_id": "q", "prompt": "Q", "responses": ["b"]},
        {"id": "s2", "prompt_id": "p", "prompt": "P", "responses": ["c"], "gold_scores": [3.0]},
        {"id": "s3", "prompt_id": "p", "prompt": "P", "responses": []},
    ]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    policy = ErrorPolicy("skip")
    merged = group_candidates(iter_records(path, min_responses=1), "prompt_id", policy)
    ((line, record),) = merged
    assert (line, record.id, record.responses) == (1, "p", ["a", "c"])
    assert record.extra["candidate_ids"] == ["s0", "s2"] and record.gold_scores == [1.0, 3.0]
    assert policy.count == 2  # s3 has no response; group "q" has one candidate
    (_, strict), *_ = iter_records(path)
    assert "needs at least 2 responses" in str(strict.error)  # type: ignore[union-attr]
