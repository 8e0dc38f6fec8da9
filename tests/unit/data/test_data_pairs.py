"""``omnirm data pairs`` with scripted generators and teachers: the agreement rule (same non-tie
verdict, consistent with the scores, score gap within --min-gap/--max-gap), positions, rationale
and teacher scores, re-asks of invalid JSON, generators' N responses and batching."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from omnirm.data.pairs import TeacherScores, swapped, validate_scores
from omnirm.data.teach import Invalid
from tests.conftest import write_jsonl
from tests.unit.data.scripted import ScriptedBackend, blocks, install

ASPECTS = ("fluency", "relevance", "accuracy", "reasoning", "safety")


def scores(a: int, b: int, verdict: str, rationale: str = "Because.") -> str:
    return json.dumps({"scores": {"A": dict.fromkeys(ASPECTS, a), "B": dict.fromkeys(ASPECTS, b)},
                       "verdict": verdict, "rationale": rationale})  # fmt: skip


def good_teacher(
    high: int = 9, low: int = 3, verdict: str | None = None
) -> Callable[[str, str], str]:
    """Prefers the response that contains "good"."""

    def script(system: str, user: str) -> str:
        a, _ = blocks(user)
        first = "good" in a
        return scores(high if first else low, low if first else high,
                      verdict or ("A" if first else "B"), f"A is {'good' if first else 'bad'}.")  # fmt: skip

    return script


@pytest.fixture
def backends(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, ScriptedBackend]:
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))
    made = {
        "t1": ScriptedBackend("t1", good_teacher()),
        "t2": ScriptedBackend("t2", good_teacher(8, 5)),
        "strong": ScriptedBackend("strong", lambda s, u: "A good, careful answer."),
        "weak": ScriptedBackend("weak", lambda s, u: "A bad answer."),
    }
    install(monkeypatch, made)
    return made


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run(cli, data: Path, out: Path, *args: str) -> Any:  # type: ignore[no-untyped-def]
    return cli("data", "pairs", str(data), "--teacher", "scripted:t1", "--teacher", "scripted:t2",
               "-o", str(out), *args)  # fmt: skip


def candidates(n: int) -> list[dict[str, Any]]:
    return [
        {"id": f"r{i}", "prompt": f"Q{i}?", "responses": ["a bad one", "a good one"]}
        for i in range(n)
    ]


def test_agreeing_teachers_keep_the_pair_with_rationale_and_scores(
    cli, backends, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "in.jsonl", candidates(8))
    out = tmp_path / "out.jsonl"
    result = run(cli, data, out, "--min-gap", "2.5")
    assert result.code == 0, result.stderr
    kept = lines(out)
    assert [r["id"] for r in kept] == [f"r{i}:p0" for i in range(8)]
    positions = {r["responses"].index("a good one") for r in kept}
    assert positions == {0, 1}  # the order is shuffled (seeded), not always the better first
    for record in kept:
        assert record["responses"][record["preference"]] == "a good one"
        assert record["rationale"] in ("A is good.", "A is bad.")
        t1, t2 = record["teacher_scores"]
        assert (t1["gap"], t2["gap"]) == (6.0, 3.0) and record["provenance"]["gap"] == 4.5
        assert t1["verdict"] == record["preference"] and t1["consistent"] is True
        assert sorted(t1["scores"][record["preference"]].values()) == [9.0] * 5
    # the gap rule: 4.5 is not above 5, and above --max-gap 4
    for args, reason in ((["--min-gap", "5"], "score gap 4.50 is not above --min-gap 5.0"),
                         (["--max-gap", "4"], "score gap 4.50 is above --max-gap 4.0")):  # fmt: skip
        other = tmp_path / f"gap{args[0]}.jsonl"
        assert run(cli, data, other, *args).code == 0
        rejected = lines(other.with_name(other.name.removesuffix(".jsonl") + ".rejected.jsonl"))
        assert len(rejected) == 8 and rejected[0]["rejected"]["reason"] == reason
        assert lines(other) == []


@pytest.mark.parametrize(
    ("second", "reason"),
    [
        (lambda s, u: scores(3, 9, "B") if "good" in blocks(u)[0] else scores(9, 3, "A"),
         "the teachers prefer different responses"),
        (lambda s, u: scores(5, 5, "tie"), "a teacher judged a tie"),
        (lambda s, u: scores(2, 9, "A"), "teacher 2's verdict disagrees with its scores"),
    ],
)  # fmt: skip
def test_disagreement_rejects(cli, backends, tmp_path: Path, second, reason: str) -> None:  # type: ignore[no-untyped-def]
    backends["t2"].script = second
    data = write_jsonl(tmp_path / "in.jsonl", candidates(2))
    out = tmp_path / "out.jsonl"
    assert run(cli, data, out).code == 0
    assert lines(out) == []
    rejected = lines(tmp_path / "out.rejected.jsonl")
    assert [r["rejected"]["reason"] for r in rejected] == [reason, reason]
    assert all(len(r["teacher_scores"]) == 2 for r in rejected)


def test_generators_give_n_pairs_per_prompt_in_one_call_each(cli, backends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(
        tmp_path / "in.jsonl", [{"id": f"p{i}", "prompt": f"Say {i}"} for i in range(3)]
    )
    out, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    result = run(cli, data, out, "--strong", "scripted:strong", "--weak", "scripted:weak", "-n", "2",
                 "--stats", str(stats))  # fmt: skip
    assert result.code == 0, result.stderr
    kept = lines(out)
    assert [r["id"] for r in kept] == ["p0:p0", "p0:p1", "p1:p0", "p1:p1", "p2:p0", "p2:p1"]
    for record in kept:
        models = record["provenance"]["models"]
        assert record["responses"][models.index("scripted:strong")] == "A good, careful answer."
        assert models[record["preference"]] == "scripted:strong"
        assert record["prompt"].startswith("Say ")
    assert backends["strong"].batches == [3, 3]  # one call per sample, all prompts at once
    assert backends["t1"].batches == [6]
    figures = json.loads(stats.read_text())
    assert figures["roles"]["strong generator"]["calls"] == 6
    assert figures["calls"]["completion_tokens"] == 5 * (6 + 6 + 6 + 6)
    # the same run again comes from the cache
    assert run(cli, data, out, "--strong", "scripted:strong", "--weak", "scripted:weak", "-n", "2",
               "--stats", str(stats)).code == 0  # fmt: skip
    assert json.loads(stats.read_text())["calls"]["calls"] == 0


def test_invalid_json_is_reasked_with_the_field_named(cli, backends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    replies = iter(['{"scores": {"A": {"fluency": 11}}}', scores(9, 3, "A")])
    backends["t1"].script = lambda s, u: next(replies, scores(9, 3, "A"))
    backends["t2"].script = lambda s, u: scores(9, 3, "A")
    data = write_jsonl(
        tmp_path / "in.jsonl", [{"id": "x", "prompt": "Q", "responses": ["one", "two"]}]
    )
    out = tmp_path / "out.jsonl"
    assert run(cli, data, out, "--seed", "3").code == 0
    (record,) = lines(out)
    assert record["preference"] == 0
    asked = backends["t1"].conversations[1]
    assert asked[-2] == {"role": "assistant", "content": '{"scores": {"A": {"fluency": 11}}}'}
    assert '"scores.A.fluency": Input should be less than or equal to 10' in asked[-1]["content"]


def test_validate_scores_names_each_problem() -> None:
    good = json.loads(scores(7, 4, "b"))
    assert validate_scores(good) == TeacherScores(
        dict.fromkeys(ASPECTS, 7.0), dict.fromkeys(ASPECTS, 4.0), "B", "Because."
    )
    for broken, message in (
        ({**good, "verdict": "C"}, "\"verdict\": Input should be 'A', 'B' or 'tie'"),
        ({**good, "rationale": " "}, '"rationale": must be a non-empty string'),
        ({**good, "scores": {"A": good["scores"]["A"]}}, '"scores.B": Field required'),
        ({**good, "scores": {"A": {**good["scores"]["A"], "safety": True}, "B": good["scores"]["B"]}},
         '"scores.A.safety": Input should be a valid number'),
        ({**good, "scores": {"A": {**good["scores"]["A"], "safety": 11}, "B": good["scores"]["B"]}},
         '"scores.A.safety": Input should be less than or equal to 10'),
    ):  # fmt: skip
        with pytest.raises(Invalid, match=message):
            validate_scores(broken)


def test_swap_is_seeded() -> None:
    flips = [swapped(0, f"r{i}", 0) for i in range(64)]
    assert flips == [swapped(0, f"r{i}", 0) for i in range(64)]
    assert 16 < sum(flips) < 48
    assert flips != [swapped(1, f"r{i}", 0) for i in range(64)]


def test_records_without_candidates_or_generators_are_rejected(
    cli, backends, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "in.jsonl", [{"id": "lonely", "prompt": "Q"}])
    assert run(cli, data, tmp_path / "out.jsonl").code == 0
    (rejected,) = lines(tmp_path / "out.rejected.jsonl")
    assert (
        rejected["rejected"]["reason"]
        == "needs two or more responses, or --strong and --weak generators"
    )
    bad = cli("data", "pairs", str(data), "--teacher", "scripted:t1", "--strong", "scripted:strong")
    assert bad.code == 2 and "--strong and --weak go together" in bad.stderr
