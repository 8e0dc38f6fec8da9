from __future__ import annotations

import json

import pytest

from omnirm.data.split import SplitSpec, assign_split
from omnirm.errors import UsageError
from tests.conftest import make_record


def _records(n: int) -> list[dict]:  # type: ignore[type-arg]
    out = []
    for i in range(n):
        prompt = f"question {i // 3}"  # three records (criteria) per prompt
        out.append(make_record(f"r{i}", prompt=prompt, criteria=f"criterion {i % 3}"))
    return out


def test_split_to_folder_is_deterministic_and_keeps_prompts_together(  # type: ignore[no-untyped-def]
    cli, jsonl_file, tmp_path
) -> None:
    path = jsonl_file(_records(600))
    out = tmp_path / "splits"
    result = cli("data", "split", str(path), "-d", str(out), "--seed", "7")
    assert result.code == 0, result.stderr
    splits = {
        name: [json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines()]
        for name in ("train", "validation", "test")
    }
    assert sum(len(v) for v in splits.values()) == 600
    prompts = {name: {r["prompt"] for r in rows} for name, rows in splits.items()}
    assert not prompts["train"] & prompts["validation"]
    assert not prompts["train"] & prompts["test"]
    assert not prompts["validation"] & prompts["test"]
    assert 0.7 < len(prompts["train"]) / 200 < 0.9
    # input order is kept inside each split
    ids = [int(r["id"][1:]) for r in splits["train"]]
    assert ids == sorted(ids)
    # same seed, shuffled input -> same assignment; --split streams one split to stdout
    shuffled = jsonl_file(list(reversed(_records(600))), name="rev.jsonl")
    again = cli("data", "split", str(shuffled), "--split", "test", "--seed", "7")
    assert {r["id"] for r in again.jsonl()} == {r["id"] for r in splits["test"]}
    # a different seed gives a different split
    other = cli("data", "split", str(path), "--split", "test", "--seed", "8")
    assert {r["id"] for r in other.jsonl()} != {r["id"] for r in splits["test"]}


def test_refuses_to_overwrite(cli, jsonl_file, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = jsonl_file(_records(3))
    out = tmp_path / "s"
    assert cli("data", "split", str(path), "-d", str(out)).code == 0
    again = cli("data", "split", str(path), "-d", str(out))
    assert again.code == 2 and "--force" in again.stderr
    assert cli("data", "split", str(path), "-d", str(out), "--force").code == 0


def test_usage_errors(cli, jsonl_file) -> None:  # type: ignore[no-untyped-def]
    path = jsonl_file(_records(3))
    assert cli("data", "split", str(path)).code == 2
    bad = cli("data", "split", str(path), "--split", "dev")
    assert bad.code == 2 and "unknown split 'dev'" in bad.stderr


def test_spec_parsing() -> None:
    spec = SplitSpec.parse("80,10,10")
    assert spec.ratios == pytest.approx((0.8, 0.1, 0.1))
    assert SplitSpec.parse("1,1", "a,b").names == ("a", "b")
    with pytest.raises(UsageError):
        SplitSpec.parse("0.5,x")
    with pytest.raises(UsageError):
        SplitSpec.parse("1,1", "a")
    with pytest.raises(UsageError):
        SplitSpec.parse("0,0")
    one = SplitSpec.parse("1")
    assert assign_split("anything", one) == "train"
