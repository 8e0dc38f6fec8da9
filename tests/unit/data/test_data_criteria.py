"""``omnirm data criteria`` with scripted teachers and verifiers: acceptance rules, contrastive
criteria, re-asks, rejects, provenance, cache, resume, stats and batching, checked exactly."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_jsonl
from tests.unit.data.scripted import (
    ScriptedBackend,
    always,
    install,
    length_teacher,
    length_verifier,
)

SHORT, LONG = "Paris.", "The capital of France is Paris, on the Seine."


def pairs(n: int = 2, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"id": f"q{i}", "prompt": f"Question {i}: capital of France?",
         "responses": [SHORT, LONG] if i % 2 else [LONG, SHORT], "preference": 0, **extra}
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture
def backends(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, ScriptedBackend]:
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))
    made = {
        "teacher": ScriptedBackend("teacher", length_teacher),
        "fair": ScriptedBackend("fair", length_verifier),
        "fair2": ScriptedBackend("fair2", length_verifier),
        "always-a": ScriptedBackend("always-a", always("A")),
    }
    install(monkeypatch, made)
    return made


def run(cli: Callable[..., Any], data: Path, out: Path, *args: str) -> Any:
    return cli(
        "data", "criteria", str(data), "--teacher", "scripted:teacher", "-o", str(out), *args
    )


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_majority_keeps_what_unanimous_rejects(cli, backends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "in.jsonl", pairs(2))
    verifiers = ["--verifier", "scripted:fair", "--verifier", "scripted:fair2",
                 "--verifier", "scripted:always-a"]  # fmt: skip
    out = tmp_path / "majority.jsonl"
    result = run(cli, data, out, *verifiers, "--accept", "majority")
    assert result.code == 0, result.stderr
    kept = lines(out)
    assert [r["id"] for r in kept] == ["q0:c0", "q1:c0"]
    # q0 puts the long answer first (preference 0): the longer criterion; q1 the shorter
    assert kept[0]["criteria"] == "Prefer the longer, more detailed answer."
    assert kept[1]["criteria"] == "Prefer the shorter, more concise answer."
    for record in kept:
        assert record["preference"] == 0
        p = record["provenance"]
        assert (
            p["agree"] == 2 and p["accept"] == "majority" and p["prompt_version"] == "omnirm-data-1"
        )
        assert p["teacher"]["spec"] == "scripted:teacher"
        assert [v["spec"] for v in p["verifiers"]] == [
            "scripted:fair",
            "scripted:fair2",
            "scripted:always-a",
        ]
        # the position-biased verifier picks response 0 as A and response 1 as A when swapped
        assert [(v["ab"], v["ba"], v["agrees"]) for v in p["verdicts"]] == [
            (0, 0, True), (0, 0, True), (0, 1, False)
        ]  # fmt: skip
    out2 = tmp_path / "unanimous.jsonl"
    result = run(cli, data, out2, *verifiers, "--accept", "unanimous")
    assert result.code == 0, result.stderr
    assert lines(out2) == []
    rejected = lines(tmp_path / "unanimous.rejected.jsonl")
    assert [r["id"] for r in rejected] == ["q0:c0", "q1:c0"]
    assert rejected[0]["rejected"] == {
        "stage": "verify", "reason": "verifiers: 2 of 3 agree (unanimous needed)"
    }  # fmt: skip
    assert "criteria" in rejected[0] and rejected[0]["provenance"]["verdicts"]


def test_contrastive_writes_the_same_pair_under_opposite_criteria(
    cli, backends, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "in.jsonl", pairs(1, criteria="old one"))
    out = tmp_path / "out.jsonl"
    result = run(cli, data, out, "--verifier", "scripted:fair", "--contrastive")
    assert result.code == 0, result.stderr
    first, second = lines(out)
    assert (first["id"], second["id"]) == ("q0:c0", "q0:c1")
    assert (first["preference"], second["preference"]) == (0, 1)
    assert first["criteria"] == "Prefer the longer, more detailed answer."
    assert second["criteria"] == "Prefer the shorter, more concise answer."
    assert first["responses"] == second["responses"] and first["prompt"] == second["prompt"]
    assert first["original_criteria"] == "old one"
    assert (first["provenance"]["contrastive"], second["provenance"]["contrastive"]) == (
        False,
        True,
    )


def test_unusable_teacher_answers_are_reasked_then_rejected(
    cli, backends, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    answers = iter(["I would say brevity.", json.dumps({"criterion": "Prefer response A."}),
                    json.dumps({"criterion": "Prefer the shorter, more concise answer."})])  # fmt: skip
    backends["teacher"].script = lambda system, user: next(answers, "still no JSON")
    data = write_jsonl(tmp_path / "in.jsonl", [*pairs(2)[1:], {**pairs(3)[2], "id": "q9"}])
    out, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    result = run(cli, data, out, "--verifier", "scripted:fair", "--retries", "2", "--batch-size", "1",
                 "--stats", str(stats))  # fmt: skip
    assert result.code == 0, result.stderr
    assert [r["criteria"] for r in lines(out)] == ["Prefer the shorter, more concise answer."]
    assert lines(out)[0]["provenance"]["teacher_attempts"] == 3
    # the re-asks named the problems
    third = backends["teacher"].conversations[2]
    assert "no JSON object found" in third[-3]["content"]
    assert "names a position ('response a')" in third[-1]["content"]
    (rejected,) = lines(tmp_path / "out.rejected.jsonl")
    assert rejected["id"] == "q9:c0" and rejected["rejected"]["stage"] == "teacher"
    assert rejected["rejected"]["reason"].startswith(
        "teacher: no usable criterion after 3 attempts"
    )
    assert rejected["rejected"]["answer"] == "still no JSON"
    figures = json.loads(stats.read_text())
    teacher = figures["roles"]["teacher"]
    assert (teacher["requests"], teacher["calls"], teacher["reasks"], teacher["unusable"]) == (
        2,
        6,
        4,
        1,
    )
    assert figures["kept"] == 1 and figures["rejected"] == 1 and figures["acceptance"] == 0.5
    assert figures["reasons"] == {"teacher: no usable criterion": 1}
    assert "1 kept, 1 rejected (50.0% accepted)" in result.stderr


def test_ties_and_unlabelled_records_are_rejected_as_input(cli, backends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    records = [
        {**pairs(1)[0], "id": "t", "preference": "tie"},
        {**pairs(1)[0], "id": "u", "preference": None},
    ]
    records[1].pop("preference")
    data = write_jsonl(tmp_path / "in.jsonl", records)
    result = run(cli, data, tmp_path / "out.jsonl", "--verifier", "scripted:fair")
    assert result.code == 0, result.stderr
    rejected = lines(tmp_path / "out.rejected.jsonl")
    assert [(r["id"], r["rejected"]["reason"]) for r in rejected] == [
        ("t:input", "a tie: neither response is better"), ("u:input", "no preference label")
    ]  # fmt: skip
    assert backends["teacher"].batches == []


def test_cache_resume_and_batching(cli, backends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "in.jsonl", pairs(6))
    out, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    args = ["--verifier", "scripted:fair", "--batch-size", "4", "--stats", str(stats)]
    assert run(cli, data, out, *args).code == 0
    assert backends["teacher"].batches == [4, 2]  # one generate call per window
    assert backends["fair"].batches == [8, 4]  # both orders of each criterion
    full = out.read_text()
    # the same run again: every answer from the cache
    assert run(cli, data, out, *args).code == 0
    assert json.loads(stats.read_text())["calls"]["calls"] == 0
    assert json.loads(stats.read_text())["calls"]["cached"] == 18
    assert out.read_text() == full
    # cut the output after 2 records (and half a line): --resume builds only the rest
    kept = full.splitlines(keepends=True)
    out.write_text("".join(kept[:2]) + kept[2][:20])
    result = run(cli, data, out, *args, "--resume")
    assert result.code == 0, result.stderr
    assert out.read_text() == full
    assert json.loads(stats.read_text())["resumed"] == 2
    # other settings are refused
    refused = run(cli, data, out, *args, "--resume", "--accept", "unanimous")
    assert refused.code == 2 and "written with other models, prompts or settings" in refused.stderr
    # --limit: a dry run on the first records
    small = tmp_path / "small.jsonl"
    assert run(cli, data, small, "--verifier", "scripted:fair", "--limit", "2").code == 0
    assert [r["id"] for r in lines(small)] == ["q0:c0", "q1:c0"]


def test_resume_refuses_another_version_of_a_record(cli, backends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "in.jsonl", pairs(2))
    out = tmp_path / "out.jsonl"
    assert run(cli, data, out, "--verifier", "scripted:fair").code == 0
    changed = pairs(2)
    changed[1]["prompt"] = "Another question"
    write_jsonl(data, changed)
    result = run(cli, data, out, "--verifier", "scripted:fair", "--resume")
    assert result.code == 2 and "record 'q1' differs" in result.stderr


def test_record_mode_is_refused(cli, backends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "in.jsonl", pairs(1))
    result = run(
        cli, data, tmp_path / "o.jsonl", "--verifier", "scripted:fair", "--on-error", "record"
    )
    assert result.code == 2 and "rejected items already go to --rejects" in result.stderr


PROGRESS_LINE = re.compile(r"^building: (\d+)/(\d+) \((\d+)%\) elapsed \d+s, ETA \d+s$")


def test_progress_lines_off_a_terminal(  # type: ignore[no-untyped-def]
    cli, backends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stderr is captured (not a terminal): plain progress lines with the input's line count as
    the total, less what --resume skips; none with -q, none in a run shorter than the interval."""
    from omnirm import console

    data = write_jsonl(tmp_path / "in.jsonl", pairs(5))
    out = tmp_path / "out.jsonl"
    verifier = ["--verifier", "scripted:fair", "--batch-size", "2"]
    unhurried = run(cli, data, tmp_path / "slow.jsonl", *verifier)
    assert unhurried.code == 0 and "building:" not in unhurried.stderr  # 30 s between lines

    monkeypatch.setattr(console, "PLAIN_INTERVAL", 1e-9)
    result = run(cli, data, out, *verifier, "--limit", "3")
    assert result.code == 0, result.stderr
    shown = [PROGRESS_LINE.match(line) for line in result.stderr.splitlines()]
    counts = [(int(m[1]), int(m[2]), int(m[3])) for m in shown if m]
    assert counts == [(1, 3, 33), (2, 3, 67), (3, 3, 100)], result.stderr  # a line per record

    resumed = run(cli, data, out, *verifier, "--resume")
    assert resumed.code == 0, resumed.stderr
    totals = {int(m[2]) for m in map(PROGRESS_LINE.match, resumed.stderr.splitlines()) if m}
    assert totals == {2}, resumed.stderr  # 5 lines, 3 built already
    assert [r["id"] for r in lines(out)] == [f"q{i}:c0" for i in range(5)]

    from_stdin = cli("data", "criteria", "-", "--teacher", "scripted:teacher", *verifier,
                     "-o", str(tmp_path / "stdin.jsonl"), stdin=data.read_text())  # fmt: skip
    assert from_stdin.code == 0, from_stdin.stderr
    assert re.search(r"^building: 5 elapsed \d+s$", from_stdin.stderr, re.M), from_stdin.stderr

    quiet = run(cli, data, tmp_path / "quiet.jsonl", *verifier, "-q")
    assert quiet.code == 0 and "building" not in quiet.stderr and "elapsed" not in quiet.stderr


def test_plain_progress_line_shape() -> None:
    from omnirm.console import PlainLines
    from omnirm.distributed import World

    # under torchrun each rank reports its own share, named
    assert World(2, 1).label("building") == "building (rank 1 of 2)"
    assert World(1, 0).label("building") == "building"

    assert PlainLines("scoring", 10, 30).line(4, 20.0) == "scoring: 4/10 (40%) elapsed 20s, ETA 30s"
    assert PlainLines("scoring", 10, 30).line(0, 2.0) == "scoring: 0/10 (0%) elapsed 2s"
    assert PlainLines("reading", None, 30).line(7, 61.4) == "reading: 7 elapsed 61s"
    assert (
        PlainLines("training", 8, 30).line(2, 10.0, "loss 0.5000")
        == "training: 2/8 (25%) loss 0.5000, elapsed 10s, ETA 30s"
    )


def test_plain_progress_ends_with_the_last_count(capsys: pytest.CaptureFixture[str]) -> None:
    from omnirm import console

    console._console = None  # bound to the captured stderr
    lines = console.PlainLines("building", 3, 1e-9)
    lines.update(1)
    lines.interval = 1e9  # the next line is not due before the end
    lines.update(2)
    lines.finish(3)
    lines.finish(3)
    shown = [line.split(" elapsed")[0] for line in capsys.readouterr().err.splitlines()]
    assert shown == ["building: 1/3 (33%)", "building: 3/3 (100%)"]
    quiet = console.PlainLines("building", 3, 1e9)  # a run shorter than the interval: no line
    quiet.update(3)
    quiet.finish(3)
    assert capsys.readouterr().err == ""


def test_criterion_answer_validator_and_schema_from_one_model() -> None:
    from omnirm.data.criteria import (
        CRITERION_SCHEMA,
        MAX_CRITERION_CHARS,
        MAX_REASON_CHARS,
        validate_criterion,
    )
    from omnirm.data.teach import Invalid

    assert validate_criterion({"criterion": "  Prefer   brevity. ", "reason": 3}) == (
        "Prefer brevity.",
        None,
    )
    assert validate_criterion({"criterion": "Be exact.", "reason": " Because. "}) == (
        "Be exact.",
        "Because.",
    )
    for broken, message in (
        ({}, '"criterion": Field required'),
        ({"criterion": "  "}, '"criterion": must be a non-empty string'),
        ({"criterion": "x" * (MAX_CRITERION_CHARS + 1)}, '"criterion": String should have at most'),
        ({"criterion": "Response A wins."}, "names a position ('response a')"),
    ):
        with pytest.raises(Invalid, match=re.escape(message)):
            validate_criterion(broken)
    schema = json.loads(CRITERION_SCHEMA)
    assert schema["required"] == ["criterion", "reason"] and schema["additionalProperties"] is False
    assert schema["properties"]["criterion"]["maxLength"] == MAX_CRITERION_CHARS
    assert schema["properties"]["reason"]["maxLength"] == MAX_REASON_CHARS
