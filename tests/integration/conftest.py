"""Session-scoped tiny random models (see ``tests/tiny_models.py``), built once per test run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing here may reach a model hub; set before transformers/huggingface_hub read it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.tiny_models import (
    make_tiny_llama,
    make_tiny_qwen2,
    make_tiny_qwen2_5_omni_thinker,
    make_tiny_qwen2_5_vl,
)


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny Qwen2 causal LM with a ChatML (Qwen2.5-Instruct) tokenizer."""
    return make_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny Llama causal LM with a Llama-3-style tokenizer (no pad token)."""
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_qwen2_5_vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny Qwen2.5-VL model with its processor (image, video, text)."""
    return make_tiny_qwen2_5_vl(tmp_path_factory.mktemp("tiny-qwen2_5_vl"))


@pytest.fixture(scope="session")
def tiny_omni_thinker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny Qwen2.5-Omni thinker with its processor (text, image, video, audio)."""
    return make_tiny_qwen2_5_omni_thinker(tmp_path_factory.mktemp("tiny-omni-thinker"))


@pytest.fixture(scope="session")
def tiny_omni_full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same thinker saved in the released Qwen2.5-Omni layout (``model_type: qwen2_5_omni``)."""
    return make_tiny_qwen2_5_omni_thinker(tmp_path_factory.mktemp("tiny-omni-full"), layout="omni")
