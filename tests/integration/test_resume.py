"""``--resume`` and the bench score store cannot mix scorers or inputs; outputs come as they are
scored, in input order, errors included."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_jsonl
from tests.integration.test_bench import gold_pairs, saved_reward_model
from tests.integration.test_bon import candidates


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def models(tiny_qwen2: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("resume-rms")
    first = saved_reward_model(tiny_qwen2, root / "first")
    second = saved_reward_model(tiny_qwen2, root / "second")
    stats = root / "stats"
    shutil.copytree(first, stats)
    config = json.loads((stats / "omnirm_config.json").read_text())
    config.update(reward_mean=0.5, reward_std=2.0)
    (stats / "omnirm_config.json").write_text(json.dumps(config))
    return {"first": first, "second": second, "stats": stats}


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def scored_half(cli: Callable[..., Any], model: Path, tmp_path: Path, *extra: str) -> Path:
    """An output holding the first half of a scored input (as an interrupted run leaves it)."""
    source = write_jsonl(tmp_path / "in.jsonl", gold_pairs(8))
    out = tmp_path / "out.jsonl"
    assert cli("score", "--model", str(model), str(source), "-o", str(out), *extra).code == 0
    out.write_text("".join(line + "\n" for line in out.read_text().splitlines()[:4]))
    return source


def test_resume_refuses_another_model_or_settings(
    cli: Callable[..., Any], models: dict[str, Path], tmp_path: Path
) -> None:
    source = scored_half(cli, models["stats"], tmp_path)
    out = tmp_path / "out.jsonl"
    before = out.read_text()
    stamp = read(out)[0]["scored_by"]
    assert set(stamp) >= {"fingerprint", "input", "tie_margin"}
    cases = {
        "model": ["--model", str(models["second"])],
        "criteria_override None there, 'Be brief.' now": ["--criteria", "Be brief."],
        "normalized False there, True now": ["--normalize"],
        "tie_margin 0.0 there, 0.5 now": ["--tie-margin", "0.5"],
        "precision 'fp32' there, 'bf16' now": ["--dtype", "bfloat16"],
    }
    for named, options in cases.items():
        args = ["--model", str(models["stats"]), *options]
        result = cli("score", *args, str(source), "-o", str(out), "--resume")
        assert result.code == 2, (named, result.stderr)
        assert "scored by another scorer or with other settings" in result.stderr
        assert named in result.stderr
        assert out.read_text() == before
    # the same model and settings continue
    done = cli("score", "--model", str(models["stats"]), str(source), "-o", str(out), "--resume")
    assert done.code == 0 and "resumed: 4 records were already scored" in done.stderr
    assert [r["id"] for r in read(out)] == [f"g{i}" for i in range(8)]


def test_bf16_scoring_says_so_and_stays_within_bf16_rounding(
    cli: Callable[..., Any], models: dict[str, Path], tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", gold_pairs(6))
    runs = {}
    for dtype in ("float32", "bfloat16"):
        result = cli("score", "--model", str(models["first"]), "--dtype", dtype, str(source))
        assert result.code == 0, result.stderr
        runs[dtype] = result.jsonl()
    exact, half = runs["float32"], runs["bfloat16"]
    assert {r["scored_by"]["precision"] for r in exact} == {"fp32"}
    assert {r["scored_by"]["precision"] for r in half} == {"bf16"}
    diffs = [
        abs(a - b)
        for x, y in zip(exact, half, strict=True)
        for a, b in zip(x["rewards"], y["rewards"], strict=True)
    ]
    assert 0 < max(diffs) < 0.1  # computed in bf16 (not the fp32 weights), close to fp32
    auto = cli("score", "--model", str(models["first"]), str(source)).jsonl()
    assert [r["rewards"] for r in auto] == [r["rewards"] for r in exact]  # auto on a CPU: fp32
    bad = cli("score", "--model", str(models["first"]), "--dtype", "int8", str(source))
    assert bad.code == 2 and "--dtype" in bad.stderr


def test_resume_refuses_an_unstamped_output(
    cli: Callable[..., Any], models: dict[str, Path], tmp_path: Path
) -> None:
    source = scored_half(cli, models["first"], tmp_path)
    out = tmp_path / "out.jsonl"
    lines = read(out)
    for line in lines:
        del line["scored_by"]["fingerprint"]
    write_jsonl(out, lines)
    result = cli("score", "--model", str(models["first"]), str(source), "-o", str(out), "--resume")
    assert result.code == 2 and "no scorer fingerprint" in result.stderr


def test_resume_refuses_the_output_of_another_input(
    cli: Callable[..., Any], models: dict[str, Path], tmp_path: Path
) -> None:
    scored_half(cli, models["first"], tmp_path)
    out = tmp_path / "out.jsonl"
    before = out.read_text()
    model = ["score", "--model", str(models["first"])]
    other = gold_pairs(8)
    for record in other:
        record["id"] = "other-" + record["id"]
    foreign = write_jsonl(tmp_path / "other.jsonl", other)
    result = cli(*model, str(foreign), "-o", str(out), "--resume")
    assert result.code == 2 and "record 'g0' is not in" in result.stderr
    assert out.read_text() == before
    changed = gold_pairs(8)
    changed[2]["prompt"] = "Another question?"
    result = cli(*model, str(write_jsonl(tmp_path / "changed.jsonl", changed)), "-o", str(out),
                 "--resume")  # fmt: skip
    assert result.code == 2 and "record 'g2' is not in" in result.stderr
    # standard input is read once: the foreign output is found at its end, and what this run
    # appended is taken back out
    stdin = foreign.read_text()
    result = cli(*model, "-", "-o", str(out), "--resume", stdin=stdin)
    assert result.code == 2 and "record 'g0' is not in <stdin>" in result.stderr
    assert out.read_text() == before
    changed_stdin = "".join(json.dumps(r) + "\n" for r in changed)
    result = cli(*model, "-", "-o", str(out), "--resume", stdin=changed_stdin)
    assert result.code == 2 and "<stdin>:3: record 'g2' differs" in result.stderr
    assert out.read_text() == before


def test_score_writes_the_first_records_before_reading_far(models: dict[str, Path]) -> None:
    from omnirm.on_error import ErrorPolicy
    from omnirm.options import ModelOptions
    from omnirm.records import parse_record
    from omnirm.scorer import load_scorer

    runner = load_scorer(models["first"], options=ModelOptions(device="cpu", batch_size=2))
    read_so_far = 0

    def items() -> Iterator[tuple[int, Any]]:
        nonlocal read_so_far
        for line, record in enumerate(gold_pairs(300), start=1):
            read_so_far = line
            yield line, parse_record(record)

    scored = runner.score(items(), ErrorPolicy("fail"))
    assert next(scored)["id"] == "g0"
    assert read_so_far == 2  # one batch of records, not a 256-record window
    assert [r["id"] for r in scored] == [f"g{i}" for i in range(1, 300)]


def test_bon_writes_errors_in_input_order_and_resumes(
    cli: Callable[..., Any], models: dict[str, Path], tmp_path: Path
) -> None:
    lines = [json.dumps(r) for r in candidates(30, n=3)]
    lines.insert(3, '{"id": "broken", oops')
    lines.insert(20, json.dumps({"id": "single", "prompt": "p", "responses": ["only one"]}))
    source = tmp_path / "cands.jsonl"
    source.write_text("\n".join(lines) + "\n")
    args = ["bon", "--model", str(models["first"]), str(source), "--on-error", "record"]
    full = cli(*args, "--pairs", str(tmp_path / "pairs-full.jsonl"))
    assert full.code == 1
    expected = [f"q{i}" for i in range(30)]
    expected[3:3] = [None]
    expected[20:20] = ["single"]
    records = full.jsonl()
    assert [r["id"] for r in records] == expected  # errors where they were in the input
    assert records[3]["raw"] == '{"id": "broken", oops'
    # an interrupted run kept 12 lines; resuming appends exactly the rest
    out = tmp_path / "out.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in records[:12]))
    pairs = tmp_path / "pairs.jsonl"
    resumed = cli(*args, "-o", str(out), "--resume", "--pairs", str(pairs))
    assert resumed.code == 1 and "resumed: 12 records were already in" in resumed.stderr
    again = read(out)
    assert [r["id"] for r in again] == expected
    for before, after in zip(records, again, strict=True):
        assert before.keys() == after.keys()
        if "rewards" in before:
            assert after["rewards"] == pytest.approx(before["rewards"], abs=1e-6)
    assert read(pairs) == read(tmp_path / "pairs-full.jsonl")  # pairs for every record
    # another setting is refused
    other = cli(*args, "-o", str(out), "--resume", "--select", "best")
    assert other.code == 2 and "select 'all' there, 'best' now" in other.stderr


def test_bench_scores_file_is_kept_apart_per_scorer(
    cli: Callable[..., Any], models: dict[str, Path], tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "gold.jsonl", gold_pairs(6))
    scores = tmp_path / "scores.jsonl"
    args = ["bench", "--suite", "jsonl", "--data", str(data), "--scores", str(scores), "--json"]
    first = cli(*args, "--model", str(models["first"]))
    assert first.code == 0 and "6 records scored" in first.stderr
    second = cli(*args, "--model", str(models["second"]))
    assert second.code == 0, second.stderr
    assert "reused" not in second.stderr and "6 records scored" in second.stderr
    assert "6 records reused" in cli(*args, "--model", str(models["first"])).stderr
    assert "6 records reused" in cli(*args, "--model", str(models["second"])).stderr
    refused = cli("bench", str(data), "--model", str(models["first"]), "--scores", str(data))
    assert refused.code == 2 and "is the input file" in refused.stderr
