"""train r1 examples: both orders with swapped letters, rationales, clear errors, rewards."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnirm.errors import RecordError, UsageError
from omnirm.judging.conversations import ConversationBuilder
from omnirm.media import MediaResolver
from omnirm.prompts.templates import default_template
from omnirm.train.r1.config import R1Config
from omnirm.train.r1.data import load_examples, sft_answer, swap_mentions
from omnirm.train.r1.grpo import group_advantages
from omnirm.train.r1.rewards import RewardWeights, load_reward_fn, score_completions
from tests.conftest import make_record, write_jsonl


def builder(tmp_path: Path, ties: bool = False) -> ConversationBuilder:
    return ConversationBuilder(
        default_template("pairwise"), MediaResolver(tmp_path), frozenset(), ties=ties
    )


def user_text(conversation: list[dict]) -> str:  # type: ignore[type-arg]
    return "".join(p["text"] for p in conversation[1]["content"])


def test_both_orders_with_swapped_responses_and_letters(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            make_record(
                "p0", responses=["alpha", "beta"], preference=0, rationale="Response A wins."
            ),
            make_record("p1", responses=["gamma", "delta"], preference=1, rationale="B is better."),
        ],
    )
    loaded = load_examples(str(path), builder(tmp_path), sft=True)
    assert loaded.records == 2 and loaded.left_out == 0
    got = [(e.record.id, e.order, e.gold) for e in loaded.examples]
    assert got == [("p0", "ab", "A"), ("p0", "ba", "B"), ("p1", "ab", "B"), ("p1", "ba", "A")]
    ab, ba = (user_text(e.conversation) for e in loaded.examples[:2])
    assert ab.index("alpha") < ab.index("beta") and ba.index("beta") < ba.index("alpha")
    assert "[Response A]\nalpha" in ab and "[Response A]\nbeta" in ba
    # the judge's own system prompt (the default pairwise template), verdicts without a tie
    assert "[[A]]" in loaded.examples[0].conversation[0]["content"]
    assert "[[C]]" not in loaded.examples[0].conversation[0]["content"]
    assert loaded.examples[0].answer == "Response A wins.\n\n[[A]]"
    assert loaded.examples[1].answer == "Response B wins.\n\n[[B]]"
    columns = loaded.examples[1].columns()
    assert columns["order"] == "ba" and columns["gold"] == "B" and "prompt" not in columns
    assert columns["preference"] == 0 and columns["rationale"] == "Response A wins."


def test_ties_and_unusable_records(tmp_path: Path) -> None:
    records = [
        make_record("tie", preference="tie"),
        make_record("none", preference=None),
        make_record("three", responses=["a", "b", "c"], preference=2),
        make_record("ok", preference=1),
    ]
    path = write_jsonl(tmp_path / "d.jsonl", records)
    plain = load_examples(str(path), builder(tmp_path), sft=False)
    assert [e.record.id for e in plain.examples] == ["ok", "ok"] and plain.left_out == 3
    with_ties = load_examples(str(path), builder(tmp_path, ties=True), sft=False)
    assert [(e.record.id, e.gold) for e in with_ties.examples][:2] == [("tie", "C"), ("tie", "C")]
    assert "[[C]]" in with_ties.examples[0].conversation[0]["content"]


def test_rationale_rendering_and_swapping() -> None:
    assert swap_mentions("Response A is short; response B, and answer A.") == (
        "Response B is short; response A, and answer B."
    )
    assert sft_answer("A is fine [[A]]", "B", "ba") == "A is fine\n\n[[B]]"
    from omnirm.train.r1.data import rationale_text

    text = rationale_text({"accuracy": "Response A is right.", "fluency": 3}, "rationale")
    assert text == "accuracy: Response A is right.\nfluency: 3"


def test_missing_rationale_names_file_line_id_and_field(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [make_record("a", rationale="fine"), make_record("b"), make_record("c", rationale="x")],
    )
    with pytest.raises(RecordError) as caught:
        load_examples(str(path), builder(tmp_path), sft=True)
    message = str(caught.value)
    assert message.startswith(f"{path}:2: record 'b': rationale: ")
    assert "needs a rationale" in message
    empty = write_jsonl(tmp_path / "e.jsonl", [make_record("e", rationale="  ")])
    with pytest.raises(RecordError, match=r"e.jsonl:1: record 'e': rationale: .*empty"):
        load_examples(str(empty), builder(tmp_path), sft=True)


def test_config_offers_only_working_stages() -> None:
    for stage in ("sft", "grpo", "sft,grpo", "rs", "rs,sft,grpo"):
        R1Config(model="m", data="d", output="o", stage=stage).validate()
    with pytest.raises(UsageError, match="--stage takes a comma-separated list"):
        R1Config(model="m", data="d", output="o", stage="dpo").validate()
    assert R1Config(model="m", data="d", output="o", stage="grpo,sft").stages == ["grpo", "sft"]
    with pytest.raises(UsageError, match="--generations must be at least 2"):
        R1Config(model="m", data="d", output="o", generations=1).validate()


def test_group_advantages_are_normalised_per_prompt() -> None:
    import torch

    advantages = group_advantages(torch.tensor([1.0, 0.0, 0.0, 5.0, 5.0, 5.0]), 3)
    assert advantages[:3].sum().abs() < 1e-5 and advantages[0] > 0 > advantages[1]
    assert torch.all(advantages[3:].abs() < 1e-5)  # equal rewards teach nothing


def test_builtin_rewards_and_a_trl_reward_function(tmp_path: Path) -> None:
    module = tmp_path / "my_reward.py"
    module.write_text(
        "def short(prompts, completions, completion_ids, gold, **kwargs):\n"
        "    return [None if c[0]['content'] == '' else float(g == 'A')\n"
        "            for c, g in zip(completions, gold)]\n"
    )
    function = load_reward_fn(f"{module}:short")
    totals, parts = score_completions(
        texts=["so [[A]]", "[[A]] [[B]]", ""],
        completion_ids=[[1, 2], [1, 2, 3, 4], []],
        prompts=[[{"role": "user", "content": "q"}]] * 3,
        columns=[
            {"gold": "A", "id": "x", "order": "ab"},
            {"gold": "B", "id": "y", "order": "ab"},
            {"gold": "A", "id": "z", "order": "ab"},
        ],
        functions=[("short", function)],
        weights=RewardWeights(correct=1.0, format=0.5, length=1.0, custom=2.0),
        max_completion_length=4,
        step=1,
    )
    assert parts["correct"] == [1.0, 0.0, 0.0]
    assert parts["format"] == [1.0, 0.0, 0.0]
    assert parts["length"] == [-0.5, -1.0, 0.0]
    assert parts["short"] == [1.0, 0.0, 0.0]
    assert totals == pytest.approx([1.0 + 0.5 - 0.5 + 2.0, -1.0, 0.0])
    with pytest.raises(UsageError, match="has no function 'missing'"):
        load_reward_fn(f"{module}:missing")
    with pytest.raises(UsageError, match="cannot import no_such_module_r1"):
        load_reward_fn("no_such_module_r1:f")


def test_order_consistency_reward() -> None:
    from omnirm.train.r1.rewards import consistency_reward

    # record r: "ab" says A (response 0) twice; "ba" says B (response 0) once, A once
    texts = ["[[A]]", "[[A]]", "[[B]]", "[[A]]", "none", "[[C]]", "[[C]]"]
    ids = ["r", "r", "r", "r", "s", "s", "t"]
    orders = ["ab", "ab", "ba", "ba", "ab", "ba", "ab"]
    assert consistency_reward(texts, ids, orders) == [0.5, 0.5, 1.0, 0.0, 0.0, 0.0, 0.0]
