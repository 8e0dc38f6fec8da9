"""``omnirm data dedup`` (exact and MinHash near duplicates, by prompt/response/pair, clusters)
and ``omnirm data sample`` (balanced and proportional, seeded, stratified)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from omnirm.data.dedup import Deduplicator
from omnirm.data.sample import allocate
from omnirm.records import parse_record
from tests.conftest import write_jsonl

BASE = "Explain how photosynthesis turns light, water and carbon dioxide into sugar and oxygen."


def rec(i: str, prompt: str, responses: tuple[str, str] = ("x", "y"), **extra: object) -> dict:  # type: ignore[type-arg]
    return {"id": i, "prompt": prompt, "responses": list(responses), "preference": 0, **extra}


def test_exact_and_near_duplicates_keep_the_first(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    records = [
        rec("a", BASE),
        rec(
            "b",
            "  EXPLAIN how photosynthesis turns light, water and carbon dioxide into sugar and oxygen. ",
        ),
        rec("c", BASE.replace("carbon dioxide", "carbon-dioxide")),  # a near duplicate
        rec("d", "What is the tallest mountain in Africa, and how high is it?"),
        rec("e", BASE),
    ]
    data = write_jsonl(tmp_path / "in.jsonl", records)
    clusters = tmp_path / "clusters.jsonl"
    result = cli("data", "dedup", str(data), "--clusters", str(clusters))
    assert result.code == 0, result.stderr
    assert [r["id"] for r in result.jsonl()] == ["a", "d"]
    (cluster,) = [json.loads(line) for line in clusters.read_text().splitlines()]
    assert cluster["kept"] == "a" and cluster["size"] == 4
    kinds = [(m["id"], m["kind"]) for m in cluster["duplicates"]]
    assert kinds == [("b", "exact"), ("c", "near"), ("e", "exact")]
    assert 0.8 <= cluster["duplicates"][1]["similarity"] < 1.0
    assert "2 kept, 2 exact and 1 near duplicates dropped (by prompt), 1 clusters" in result.stderr
    exact = cli("data", "dedup", str(data), "--exact-only")
    assert [r["id"] for r in exact.jsonl()] == ["a", "c", "d"]


def test_by_response_and_by_pair() -> None:
    records = [
        parse_record(rec("a", "Q one", ("same answer", "other"))),
        parse_record(rec("b", "Q two", ("same answer", "other"))),
        parse_record(rec("c", "Q one", ("same answer", "other"), criteria="brevity")),
        parse_record(rec("d", "Q one", ("same answer", "other"))),
    ]
    by_response = Deduplicator("response", near=False)
    assert [by_response.check(r) is None for r in records] == [True, False, False, False]
    by_pair = Deduplicator("pair", near=False)  # the same pair under another criterion is kept
    assert [by_pair.check(r) is None for r in records] == [True, True, True, False]
    by_prompt = Deduplicator("prompt")
    assert [by_prompt.check(r) is None for r in records] == [True, True, False, False]


def test_media_count_by_path() -> None:
    def image(path: str) -> list[dict[str, str]]:
        return [{"type": "text", "text": "What is this?"}, {"type": "image", "path": path}]

    finder = Deduplicator("prompt", near=False)
    assert finder.check(parse_record(rec("a", image("cat.png")))) is None  # type: ignore[arg-type]
    assert finder.check(parse_record(rec("b", image("dog.png")))) is None  # type: ignore[arg-type]
    assert finder.check(parse_record(rec("c", image("cat.png"))))["of"] == "a"  # type: ignore[arg-type,index]


def test_allocate_balanced_and_proportional() -> None:
    sizes = {"a": 2, "b": 10, "c": 30}
    assert allocate(sizes, 12, "balanced") == {"a": 2, "b": 5, "c": 5}
    assert allocate(sizes, 30, "balanced") == {"a": 2, "b": 10, "c": 18}
    assert allocate(sizes, 21, "proportional") == {"a": 1, "b": 5, "c": 15}
    assert allocate(sizes, 100, "balanced") == sizes


def test_sample_is_seeded_stratified_and_in_input_order(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    records = [rec(f"t{i}", f"text {i}") for i in range(20)]
    records += [rec(f"i{i}", [{"type": "text", "text": f"img {i}"}, {"type": "image", "path": "x.png"}])  # type: ignore[arg-type]
                for i in range(4)]  # fmt: skip
    records += [rec(f"tie{i}", f"tie {i}", preference="tie") for i in range(3)]
    data = write_jsonl(tmp_path / "in.jsonl", records)
    first = cli("data", "sample", str(data), "--n", "8", "--by", "modality", "--seed", "1")
    assert first.code == 0, first.stderr
    ids = [r["id"] for r in first.jsonl()]
    assert Counter(i.startswith("i") for i in ids) == {True: 4, False: 4}  # image+text, text
    order = [r["id"] for r in records]
    assert ids == sorted(ids, key=order.index)
    assert ids == [
        r["id"]
        for r in cli(
            "data", "sample", str(data), "--n", "8", "--by", "modality", "--seed", "1"
        ).jsonl()
    ]
    other = cli("data", "sample", str(data), "--n", "8", "--by", "modality", "--seed", "2")
    assert [r["id"] for r in other.jsonl()] != ids
    labels = cli("data", "sample", str(data), "-n", "6", "--by", "label")
    assert Counter(str(r["preference"]) for r in labels.jsonl()) == {"0": 3, "tie": 3}
    assert "6 of 27 records sampled by label (0: 3/24, tie: 3/3)" in labels.stderr


@pytest.mark.parametrize("args", [["--threshold", "0"], ["--shingle", "0"]])
def test_dedup_bad_options(cli, tmp_path: Path, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "in.jsonl", [rec("a", BASE)])
    result = cli("data", "dedup", str(data), *args)
    assert result.code == 2 and args[0] in result.stderr
