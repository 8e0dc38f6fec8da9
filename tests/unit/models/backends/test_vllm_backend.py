"""The vllm judge backend: its refusals, the conversion to vLLM chat parts, and modalities.

vLLM is not installed here (nor in CI); the tests that need it and a CUDA GPU are marked
``gpu`` and skipped elsewhere. Nothing fakes vLLM itself.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from omnirm.errors import UsageError
from omnirm.models.backends.base import Sampling, open_backend
from omnirm.models.backends.messages import video_data_url, wav_bytes
from omnirm.models.backends.vllm import (
    DEFAULT_MM_LIMITS,
    modalities_from_config,
    model_files,
    model_modalities,
    to_vllm_messages,
)
from tests.tiny_models import make_tiny_vllm_qwen2, sample_audio, sample_image, sample_video

# ---------------------------------------------------------------------------- refusals


def test_missing_vllm_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` fails even where installed
    (tmp_path / "config.json").write_text('{"model_type": "qwen2"}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(UsageError) as caught:
        open_backend(f"vllm:{tmp_path}")
    message = str(caught.value)
    assert "omnirm[vllm]" in message
    assert "CUDA" in message
    assert "hf:" in message and "openai:" in message


def test_missing_path_is_named_before_vllm_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # importing it would say "not installed"
    missing = tmp_path / "no-such-model"
    with pytest.raises(UsageError) as caught:
        open_backend(f"vllm:{missing}", tensor_parallel_size=1, device="cpu")
    message = str(caught.value)
    assert str(missing) in message
    assert "omnirm[vllm]" not in message


# ---------------------------------------------------------------------------- conversion


def _decode_data_url(url: str, media_type: str) -> list[bytes]:
    head, _, data = url.partition(",")
    assert head == f"data:{media_type};base64"
    return [base64.b64decode(chunk, validate=True) for chunk in data.split(",")]


def test_text_only_messages_become_strings() -> None:
    conversation = [
        {"role": "system", "content": "You judge answers."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "A "}, {"type": "text", "text": "B"}],
        },
    ]
    assert to_vllm_messages(conversation) == [
        {"role": "system", "content": "You judge answers."},
        {"role": "user", "content": "A B"},
    ]


def test_images_become_pil_parts_or_png_data_urls() -> None:
    image = sample_image(size=(100, 80))
    conversation = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image", "image": image},
                {"type": "text", "text": "Which is better?"},
            ],
        }
    ]
    [message] = to_vllm_messages(conversation, pil_images=True)
    assert message["role"] == "user"
    assert message["content"][0] == {"type": "text", "text": "Look:"}
    assert message["content"][1] == {"type": "image_pil", "image_pil": image}
    assert message["content"][2] == {"type": "text", "text": "Which is better?"}

    [message] = to_vllm_messages(conversation, pil_images=False)
    part = message["content"][1]
    assert part["type"] == "image_url" and set(part) == {"type", "image_url"}
    [png] = _decode_data_url(part["image_url"]["url"], "image/png")
    decoded = Image.open(io.BytesIO(png))
    assert decoded.format == "PNG" and decoded.size == (100, 80)
    assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(image))  # lossless


def test_video_becomes_jpeg_frames_data_url() -> None:
    frames = sample_video(frames=5, size=(64, 48))  # (T, H, W, 3)
    conversation = [{"role": "user", "content": [{"type": "video", "frames": frames, "fps": 2.0}]}]
    [message] = to_vllm_messages(conversation)
    [part] = message["content"]
    assert part["type"] == "video_url" and set(part) == {"type", "video_url"}
    jpegs = _decode_data_url(part["video_url"]["url"], "video/jpeg")
    assert len(jpegs) == 5
    for jpeg, frame in zip(jpegs, frames, strict=True):
        decoded = Image.open(io.BytesIO(jpeg))
        assert decoded.format == "JPEG" and decoded.size == (64, 48)
        assert np.asarray(decoded).shape == frame.shape


def test_video_of_wrong_shape_is_refused() -> None:
    with pytest.raises(UsageError, match=r"\(T, H, W, 3\)"):
        video_data_url(np.zeros((4, 8, 8), dtype=np.uint8))


def test_audio_becomes_wav_input_audio() -> None:
    audio = sample_audio(seconds=0.5, sampling_rate=22050)
    conversation = [
        {"role": "system", "content": "Judge."},
        {
            "role": "user",
            "content": [
                {"type": "audio", "audio": audio, "sampling_rate": 22050},
                {"type": "text", "text": "Rate it."},
            ],
        },
    ]
    messages = to_vllm_messages(conversation)
    assert messages[0] == {"role": "system", "content": "Judge."}
    part = messages[1]["content"][0]
    assert part["type"] == "input_audio" and part["input_audio"]["format"] == "wav"
    data = base64.b64decode(part["input_audio"]["data"], validate=True)
    with wave.open(io.BytesIO(data), "rb") as reader:
        assert reader.getnchannels() == 1 and reader.getsampwidth() == 2
        assert reader.getframerate() == 22050
        assert reader.getnframes() == len(audio)
        pcm = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    np.testing.assert_allclose(pcm / 32767.0, audio, atol=1e-4)
    assert messages[1]["content"][1] == {"type": "text", "text": "Rate it."}


def test_wav_clips_out_of_range_samples() -> None:
    data = wav_bytes(np.array([-2.0, 0.0, 2.0], dtype=np.float32), 16000)
    with wave.open(io.BytesIO(data), "rb") as reader:
        pcm = np.frombuffer(reader.readframes(3), dtype="<i2")
    assert pcm.tolist() == [-32767, 0, 32767]


def test_unknown_part_is_refused() -> None:
    conversation = [{"role": "user", "content": [{"type": "mesh", "mesh": object()}]}]
    with pytest.raises(UsageError, match="mesh"):
        to_vllm_messages(conversation)


def test_conversion_imports_no_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    conversation = [{"role": "user", "content": [{"type": "image", "image": sample_image()}]}]
    assert to_vllm_messages(conversation, pil_images=False)[0]["content"][0]["type"] == "image_url"


# ---------------------------------------------------------------------------- model files


def test_modalities_from_saved_configs(tmp_path: Path) -> None:
    from transformers import (
        LlavaConfig,
        Qwen2_5_VLConfig,
        Qwen2AudioConfig,
        Qwen2Config,
    )

    expected: dict[str, tuple[Any, frozenset[str]]] = {
        "qwen2_5_vl": (Qwen2_5_VLConfig(), frozenset({"image", "video"})),
        "llava": (LlavaConfig(), frozenset({"image"})),
        "qwen2_audio": (Qwen2AudioConfig(), frozenset({"audio"})),
        "qwen2": (Qwen2Config(), frozenset()),
    }
    for name, (config, modalities) in expected.items():
        folder = tmp_path / name
        config.save_pretrained(folder)
        assert model_modalities(folder) == modalities, name


def test_modalities_of_omni_configs() -> None:
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniThinkerConfig

    everything = frozenset({"image", "video", "audio"})
    assert modalities_from_config(Qwen2_5OmniConfig()) == everything  # in thinker_config
    assert modalities_from_config(Qwen2_5OmniThinkerConfig()) == everything


def test_modalities_from_unknown_model_type_read_the_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        '{"model_type": "not-a-transformers-model", "vision_config": {"depth": 2},'
        ' "video_token_id": 7, "audio_config": {}}'
    )
    assert model_modalities(tmp_path) == frozenset({"image", "video", "audio"})
    assert model_modalities(tmp_path / "absent") == frozenset()


def test_default_limits_cover_every_modality() -> None:
    assert set(DEFAULT_MM_LIMITS) == {"image", "video", "audio"}


def test_model_files_list_config_tokenizer_and_weights(tmp_path: Path) -> None:
    for name in (
        "config.json",
        "tokenizer_config.json",
        "model.safetensors",
        "chat_template.jinja",
    ):
        (tmp_path / name).write_bytes(b"x" * len(name))
    (tmp_path / "README.md").write_text("not part of the fingerprint")
    files = model_files(tmp_path)
    assert [name for name, _, _ in files] == [
        "chat_template.jinja",
        "config.json",
        "model.safetensors",
        "tokenizer_config.json",
    ]
    assert all(size == len(name) for name, size, _ in files)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    assert [name for name, _, _ in model_files(gguf)] == ["model.gguf"]


# ---------------------------------------------------------------------------- on a GPU


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("vllm") is None,
    reason="needs a CUDA GPU and vLLM (pip install 'omnirm[vllm]')",
)
def test_vllm_judges_a_conversation(tmp_path: Path) -> None:
    # OMNIRM_VLLM_TEST_MODEL may name a real local model folder (a multimodal one is tried
    # with an image too); otherwise a tiny random text model is built.
    named = os.environ.get("OMNIRM_VLLM_TEST_MODEL")
    folder = Path(named) if named else make_tiny_vllm_qwen2(tmp_path / "tiny")
    backend = open_backend(f"vllm:{folder}", gpu_memory_utilization=0.3, max_model_len=2048)
    try:
        assert backend.kind == "vllm" and backend.model == str(folder)
        fingerprint = backend.fingerprint()
        assert fingerprint["backend"] == "vllm" and fingerprint["files"]
        user: list[dict[str, Any]] = [{"type": "text", "text": "Is 2 + 2 = 4? Answer yes or no."}]
        if "image" in backend.modalities:
            user = [{"type": "image", "image": sample_image()}, *user]
        conversation = [
            {"role": "system", "content": "You are a careful judge."},
            {"role": "user", "content": user},
        ]
        sampling = Sampling(max_new_tokens=8, temperature=0.0)
        answers = backend.generate([conversation, conversation], sampling)
        assert len(answers) == 2
        for answer in answers:
            assert answer.error is None and answer.text is not None
            assert answer.prompt_tokens and answer.prompt_tokens > 10
            assert answer.completion_tokens is not None and 1 <= answer.completion_tokens <= 8
            assert answer.seconds > 0
        assert answers[0].text == answers[1].text  # greedy: the same prompt, the same answer
    finally:
        backend.close()


# ---------------------------------------------------------------------------- structured outputs


class _Recorded:
    """Stands in for a vLLM parameter class: keeps the keyword arguments it was built with."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


@pytest.mark.parametrize("modern", [True, False])
def test_json_schema_becomes_structured_output_params(
    monkeypatch: pytest.MonkeyPatch, modern: bool
) -> None:
    """vLLM is not installed here: stand-ins record what the backend builds. vLLM 0.11+ takes
    ``structured_outputs=StructuredOutputsParams(json=…)``, older releases ``guided_decoding``."""
    import types

    from omnirm.data.pairs import SCORES_SCHEMA
    from omnirm.models.backends.vllm import VLLMBackend

    params = types.ModuleType("vllm.sampling_params")
    guide = "StructuredOutputsParams" if modern else "GuidedDecodingParams"
    setattr(params, guide, type(guide, (_Recorded,), {}))
    root = types.ModuleType("vllm")
    root.SamplingParams = type("SamplingParams", (_Recorded,), {})  # type: ignore[attr-defined]
    root.sampling_params = params  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", root)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", params)

    backend = VLLMBackend.__new__(VLLMBackend)
    assert backend.constrains_json
    sampling = Sampling(max_new_tokens=64, temperature=0.0, seed=3, json_schema=SCORES_SCHEMA)
    built = backend._sampling_params(sampling)
    field = "structured_outputs" if modern else "guided_decoding"
    assert set(built.kwargs) == {"max_tokens", "temperature", "top_p", "seed", field}
    assert (built.kwargs["max_tokens"], built.kwargs["seed"]) == (64, 3)
    assert type(built.kwargs[field]).__name__ == guide
    assert built.kwargs[field].kwargs == {"json": SCORES_SCHEMA}
    plain = backend._sampling_params(Sampling(max_new_tokens=8))
    assert "structured_outputs" not in plain.kwargs and "guided_decoding" not in plain.kwargs
