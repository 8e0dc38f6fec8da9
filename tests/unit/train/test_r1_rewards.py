"""train r1: stage lists, Omni-RRM JSON answers (prompt, parsing, SFT targets, format reward),
rubric coverage, three-way tie correctness, and the judge reading JSON answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from omnirm.errors import UsageError
from omnirm.judging.conversations import ConversationBuilder
from omnirm.media import MediaResolver
from omnirm.prompts.templates import default_template
from omnirm.prompts.verdicts import has_mark, json_answer, json_verdict, parse_verdict
from omnirm.records import parse_record
from omnirm.train.r1.config import R1Config
from omnirm.train.r1.data import load_examples, sft_answer
from omnirm.train.r1.rewards import (
    RewardWeights,
    correct_reward,
    format_reward,
    rubric_aspects,
    rubric_reward,
    score_completions,
)
from omnirm.train.r1.rs import rs_path
from tests.conftest import make_record, write_jsonl

GOOD = '{"reasoning": "A is polite.", "score_A": 8, "score_B": 3, "better": "A"}'


def config(**changes: Any) -> R1Config:
    return R1Config(model="m", data="d.jsonl", output="out", **changes)


@pytest.mark.parametrize(
    ("stage", "labels"),
    [
        ("sft", ["sft"]),
        ("rs,sft,grpo", ["rs", "sft", "grpo"]),
        ("sft,rs,sft", ["sft", "rs", "sft-2"]),
        ("rs", ["rs"]),
        ("sft, rs", ["sft", "rs"]),
    ],
)
def test_stage_lists_run_in_order_with_labels(stage: str, labels: list[str]) -> None:
    settings = config(stage=stage)
    settings.validate()
    assert settings.stage_labels == labels


def test_which_sft_stages_need_rationales() -> None:
    assert config(stage="rs,sft,grpo").sft_needs_rationale() is False
    assert config(stage="sft,rs,sft").sft_needs_rationale() is True
    assert config(stage="grpo").sft_needs_rationale() is False


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"stage": "rs,grpo"}, "the stage after it must be sft"),
        ({"stage": "sft,ppo"}, "comma-separated list of sft, rs, grpo"),
        ({"stage": ""}, "comma-separated list"),
        ({"answer_format": "xml"}, "--answer-format must be one of marks, json"),
        ({"rs_samples": 0}, "--rs-samples must be at least 1"),
        ({"save_steps": 0}, "--save-steps must be at least 1"),
    ],
)
def test_bad_settings_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        config(**changes).validate()


def test_rs_files_are_named_by_stage(tmp_path: Path) -> None:
    assert rs_path(config(stage="rs,sft"), "rs") == Path("out/rs.jsonl")
    assert rs_path(config(stage="sft,rs,sft,rs"), "rs-2") == Path("out/rs-2.jsonl")
    given = config(rs_output=str(tmp_path / "kept.jsonl"))
    assert rs_path(given, "rs") == tmp_path / "kept.jsonl"
    assert rs_path(given, "rs-2") == tmp_path / "kept-2.jsonl"


# -- Omni-RRM JSON answers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "verdict", "well_formed"),
    [
        (GOOD, "A", True),
        ("Thinking first.\n" + GOOD.replace('"A"}', '"B"}'), "B", True),
        (GOOD.replace('"A"}', '"C"}'), "C", True),
        ('{"better": "A"}', "A", False),  # the other keys are missing
        (GOOD.replace("8", '"8"'), "A", False),  # a score that is not a number
        (GOOD + " " + GOOD.replace('"A"}', '"B"}'), None, False),  # two objects, two verdicts
        (GOOD + " [[B]]", None, True),  # a mark that contradicts the object: no verdict
        ('{"reasoning": "x", "score_A": 1, "score_B": 2, "better": "B"', None, False),  # unclosed
    ],
)
def test_json_answers_are_parsed(answer: str, verdict: str | None, well_formed: bool) -> None:
    assert parse_verdict(answer) == verdict
    assert (json_verdict(answer) is not None) == well_formed


def test_generation_stops_once_the_object_closes() -> None:
    assert not has_mark('{"reasoning": "x", "score_A": 1, "score_B": 2, "better": "B"')
    assert has_mark('{"reasoning": "x", "score_A": 1, "score_B": 2, "better": "B"}')


def test_the_prompt_asks_for_json(tmp_path: Path) -> None:
    record = parse_record(make_record("r", responses=["a", "b"], preference=0))
    for ties, letters in ((False, '"A" or "B"'), (True, '"A", "B" or "C"')):
        built = ConversationBuilder(
            default_template("pairwise"),
            MediaResolver(tmp_path),
            frozenset(),
            ties=ties,
            answer_format="json",
        ).pairwise(record, 0, 1)
        system = built[0]["content"]
        assert '"score_A": <1-10>' in system and f'"better": {letters}' in system
        assert "[[A]]" not in system
    marks = ConversationBuilder(default_template("pairwise"), MediaResolver(tmp_path), frozenset())
    assert "[[A]]" in marks.pairwise(record, 0, 1)[0]["content"]


def test_json_sft_targets_swap_with_the_order(tmp_path: Path) -> None:
    ab = json.loads(sft_answer("Response A is polite.", "A", "ab", "json"))
    assert ab == {"reasoning": "Response A is polite.", "score_A": 8, "score_B": 4, "better": "A"}
    ba = json.loads(sft_answer(GOOD.replace("A is", "Response A is"), "B", "ba", "json"))
    assert ba == {"reasoning": "Response B is polite.", "score_A": 3, "score_B": 8, "better": "B"}
    # an rs sample in JSON taught in the marks format: its reasoning, then the mark
    assert sft_answer(GOOD, "A", "ab") == "A is polite.\n\n[[A]]"
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [make_record("p", responses=["x", "y"], preference=1, rationale="B is kind.")],
    )
    built = ConversationBuilder(
        default_template("pairwise"), MediaResolver(tmp_path), frozenset(), answer_format="json"
    )
    examples = load_examples(str(path), built, sft=True, answer_format="json").examples
    answers = [json.loads(e.answer or "") for e in examples]
    assert [a["better"] for a in answers] == ["B", "A"]
    assert all(json_verdict(e.answer or "") is not None for e in examples)


def test_format_reward_in_json_wants_the_whole_object() -> None:
    texts = [GOOD, "[[A]]", '{"better": "A"}', json_answer("fine", "B")]
    assert format_reward(texts, "json") == [1.0, 0.0, 0.0, 1.0]
    assert format_reward(texts) == [1.0, 1.0, 1.0, 1.0]  # marks: one verdict is enough


def test_ties_are_a_third_verdict() -> None:
    texts = ["[[C]]", "[[A]]", GOOD.replace('"A"}', '"C"}'), "[[C]]"]
    assert correct_reward(texts, ["C", "C", "C", "A"]) == [1.0, 0.0, 1.0, 0.0]


# -- rubric coverage ---------------------------------------------------------------------------


def test_rubric_aspects_come_from_the_rubric_the_rationale_or_the_criterion() -> None:
    assert rubric_aspects({"rubric": {"Accuracy": 1, "Tone": 1}}) == ["accuracy", "tone"]
    assert rubric_aspects({"rubric": ["safety"], "criteria": "x"}) == ["safety"]
    assert rubric_aspects({"rationale": {"helpfulness": "…", "brevity": "…"}}) == [
        "helpfulness",
        "brevity",
    ]
    assert rubric_aspects({"criteria": "Prefer the more concise and polite answer."}) == [
        "concise",
        "polite",
    ]
    assert rubric_aspects({}) == []


def test_rubric_reward_is_the_share_of_aspects_mentioned() -> None:
    row = {"criteria": "Prefer the concise, polite answer.", "gold": "A", "order": "ab"}
    texts = ["A is concise and polite. [[A]]", "A is Polite. [[A]]", "[[A]]"]
    assert rubric_reward(texts, [row] * 3) == [1.0, 0.5, 0.0]
    named = {"rubric": ["factual accuracy"], "gold": "A", "order": "ab"}
    assert rubric_reward(["accuracy is factual here", "accurate"], [named] * 2) == [1.0, 0.0]


def test_weights_reach_the_total() -> None:
    rows = [{"id": "r", "order": "ab", "gold": "A", "criteria": "Be polite."}]
    totals, parts = score_completions(
        texts=["It is polite. [[A]]"],
        completion_ids=[[1] * 10],
        prompts=[[]],
        columns=rows,
        functions=[],
        weights=RewardWeights(correct=1.0, format=0.5, length=0.2, rubric=2.0),
        max_completion_length=20,
        step=1,
    )
    assert parts["rubric"] == [1.0] and parts["length"] == [-0.5]
    assert totals == [pytest.approx(1.0 + 0.5 - 0.1 + 2.0)]


# -- the judge reads JSON answers ------------------------------------------------------------


def test_the_judge_reads_json_verdicts(tmp_path: Path) -> None:
    from omnirm.judging.judge import Judge, JudgeSettings
    from omnirm.models.backends.base import Generation, JudgeBackend, Sampling
    from omnirm.on_error import ErrorPolicy

    asked: list[str] = []

    class Scripted(JudgeBackend):
        kind = "hf"

        @property
        def model(self) -> str:
            return "scripted"

        @property
        def modalities(self) -> frozenset[str]:
            return frozenset()

        def fingerprint(self) -> dict[str, Any]:
            return {"backend": "scripted"}

        def generate(self, conversations: list[Any], sampling: Sampling) -> list[Generation]:
            asked.extend(c[0]["content"] for c in conversations)
            first = ["A", "B"]  # ab prefers A; ba prefers B: both name response 0
            return [Generation(json_answer("ok", first[i % 2])) for i in range(len(conversations))]

    settings = JudgeSettings(answer_format="json")
    built = ConversationBuilder(
        default_template("pairwise"), MediaResolver(tmp_path), frozenset(), answer_format="json"
    )
    judge = Judge(Scripted(), built, settings, scored_by={})
    record = parse_record(make_record("r", responses=["a", "b"], preference=0))
    (out,) = list(judge.score([(1, record)], ErrorPolicy("fail")))
    assert out["predicted"] == 0 and out["consistent"] is True
    assert all('"better"' in system for system in asked)
