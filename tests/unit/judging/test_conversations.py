"""The judge's prompt block for records with a ``messages`` history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omnirm.judging.conversations import ConversationBuilder
from omnirm.media.paths import MediaResolver
from omnirm.prompts.templates import default_template
from omnirm.records import parse_record
from tests.conftest import make_record

TURNS = [
    {"role": "system", "content": "be kind"},
    {"role": "user", "content": "hello"},
    {"role": "assistant", "content": "hi"},
]


def prompt_text(tmp_path: Path, **fields: Any) -> str:
    builder = ConversationBuilder(
        default_template("pairwise"), MediaResolver(tmp_path), frozenset()
    )
    parts = builder.prompt_content(parse_record(make_record(**fields)))
    return "".join(part["text"] for part in parts)


def test_a_final_user_turn_is_the_prompt(tmp_path: Path) -> None:
    messages = [*TURNS, {"role": "user", "content": "and now?"}]
    assert prompt_text(tmp_path, prompt=None, messages=messages) == (
        "(user) hello\n(assistant) hi\n(user) and now?"
    )


def test_a_history_ending_with_the_assistant_is_all_transcript(tmp_path: Path) -> None:
    assert (
        prompt_text(tmp_path, prompt=None, messages=TURNS)
        == "(user) hello\n(assistant) hi\n(user) "
    )


def test_a_prompt_follows_the_whole_history(tmp_path: Path) -> None:
    assert (
        prompt_text(tmp_path, prompt="q", messages=TURNS)
        == "(user) hello\n(assistant) hi\n(user) q"
    )
