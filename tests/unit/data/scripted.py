"""A test double for a judge backend: answers come from a script (a function of the
conversation's text), so the pipelines' agreement and acceptance logic is checked exactly.
It records every ``generate`` call's size (batching) and can be put behind ``open_backend``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from omnirm.models.backends.base import Conversation, Generation, JudgeBackend, Sampling

Script = Callable[[str, str], str]  # (system text, user text) → answer


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part["type"] == "text")


class ScriptedBackend(JudgeBackend):
    kind = "hf"

    def __init__(self, name: str, script: Script) -> None:
        self.name = name
        self.script = script
        self.batches: list[int] = []
        self.conversations: list[Conversation] = []

    @property
    def model(self) -> str:
        return self.name

    @property
    def modalities(self) -> frozenset[str]:
        return frozenset()

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": "scripted", "model": self.name}

    def generate(self, conversations: list[Conversation], sampling: Sampling) -> list[Generation]:
        self.batches.append(len(conversations))
        self.conversations += conversations
        out = []
        for conversation in conversations:
            system = text_of(conversation[0]["content"])
            user = "\n".join(text_of(m["content"]) for m in conversation[1:])
            out.append(Generation(self.script(system, user), 10, 5, 0.01))
        return out


def blocks(user: str) -> tuple[str, str]:
    """The texts of response A and response B in a pairwise user message."""
    a = user.split("[Response A]\n", 1)[1].split("\n\n[Response B]", 1)[0]
    b = user.split("[Response B]\n", 1)[1].split("\n\n", 1)[0]
    return a, b


def criterion_of(system: str) -> str:
    """The criterion in a judge prompt."""
    return system.split("and by nothing else:\n", 1)[1].split("\n\n", 1)[0]


def target_of(system: str) -> str:
    return re.search(r"under which response ([AB]) is clearly better", system).group(1)  # type: ignore[union-attr]


def length_teacher(system: str, user: str) -> str:
    """Writes "longer"/"shorter" criteria, whichever makes the target win."""
    a, b = blocks(user)
    target = target_of(system)
    target_longer = (len(a) > len(b)) == (target == "A")
    word = "longer, more detailed" if target_longer else "shorter, more concise"
    return json.dumps({"criterion": f"Prefer the {word} answer.", "reason": "length"})


def length_verifier(system: str, user: str) -> str:
    """Applies a length criterion faithfully."""
    a, b = blocks(user)
    longer = "A" if len(a) > len(b) else "B"
    shorter = "B" if longer == "A" else "A"
    return f"Judged. [[{longer if 'longer' in criterion_of(system) else shorter}]]"


def always(letter: str) -> Script:
    return lambda system, user: f"The first one. [[{letter}]]"


def install(monkeypatch: pytest.MonkeyPatch, backends: dict[str, ScriptedBackend]) -> None:
    """Make ``open_backend("scripted:NAME")`` return ``backends[NAME]``."""
    import omnirm.models.backends.base as base

    real = base.open_backend

    def fake(spec: str, **options: Any) -> JudgeBackend:
        kind, _, name = spec.partition(":")
        return backends[name] if kind == "scripted" else real(spec, **options)

    monkeypatch.setattr(base, "open_backend", fake)
