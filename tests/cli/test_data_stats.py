from __future__ import annotations

from tests.conftest import make_record

IMAGE_PROMPT = [{"type": "text", "text": "what is this"}, {"type": "image", "path": "a.png"}]


def test_json_counts(cli, jsonl_file) -> None:  # type: ignore[no-untyped-def]
    path = jsonl_file(
        [
            make_record("a", criteria="be brief"),
            make_record("b", preference="tie"),
            make_record("c", prompt=IMAGE_PROMPT, responses=["one two three", "x"]),
            make_record("d", responses=["a", "b", "c"], preference=None, ranking=[2, 0, 1]),
            make_record("e", task="custom_task", preference=None),
        ]
    )
    result = cli("data", "stats", "--json", str(path))
    assert result.code == 0
    (report,) = result.jsonl()
    assert report["records"] == 5
    assert report["tasks"] == {"text_to_text": 3, "text_image_to_text": 1, "custom_task": 1}
    assert report["modalities"] == {"text": 4, "image": 1}
    assert report["num_responses"] == {"2": 4, "3": 1}
    assert report["labels"] == {"preference": 2, "tie": 1, "ranking": 1, "unlabelled": 1}
    assert report["ties"] == 1
    assert report["with_criteria"] == 1
    criteria = report["lengths"]["criteria"]
    assert criteria["chars"]["max"] == len("be brief") and criteria["words"]["max"] == 2
    responses = report["lengths"]["response"]
    assert responses["chars"]["count"] == 11
    assert responses["words"]["max"] == 3


def test_table_goes_to_stderr(cli, jsonl_file) -> None:  # type: ignore[no-untyped-def]
    path = jsonl_file([make_record("a"), make_record("b", preference=9)])
    result = cli("data", "stats", str(path))
    assert result.stdout == ""
    assert "text_to_text" in result.stderr and "lengths" in result.stderr
    assert "invalid" in result.stderr
    assert result.code == 0  # a bad record was skipped, as --on-error skip (the default) asks
    assert "1 record skipped (--on-error skip)" in result.stderr
    assert cli("data", "stats", str(path), "--on-error", "fail").code == 1


def test_percentiles_nearest_rank() -> None:
    from array import array

    from omnirm.data.stats import _distribution

    dist = _distribution(array("L", range(1, 101)))
    assert (dist["min"], dist["p5"], dist["p50"], dist["p95"], dist["max"]) == (1, 5, 50, 95, 100)
    assert dist["mean"] == 50.5
