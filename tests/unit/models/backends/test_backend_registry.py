"""The ``--judge`` registry: every prefix names its class, and the interface imports none."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys

import pytest

from omnirm.errors import UsageError
from omnirm.models.backends.base import BACKENDS, JudgeBackend, open_backend


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_each_prefix_names_a_backend_of_that_kind(kind: str) -> None:
    module, _, name = BACKENDS[kind].partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, JudgeBackend) and cls.kind == kind


def test_the_interface_imports_no_backend() -> None:
    code = (
        "import sys, omnirm.models.backends.base\n"
        "print(sorted(m for m in sys.modules if m.startswith('omnirm.models.backends.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['omnirm.models.backends.base']"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gpt-4o", "expected hf:PATH, openai:MODEL or vllm:PATH"),
        ("tgi:model", "unknown backend 'tgi' (use hf:, openai: or vllm:)"),
    ],
)
def test_bad_specs_are_refused(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        open_backend(spec)
