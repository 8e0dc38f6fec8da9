"""One conversion to chat messages serves the openai and vllm backends.

The vllm module imports vLLM only when a backend is built, so its conversion runs here with
``import vllm`` made to fail.
"""

from __future__ import annotations

import base64
import io
import sys
from typing import Any

import numpy as np
import pytest
from PIL import Image

from omnirm.errors import UsageError
from omnirm.models.backends.base import Conversation
from omnirm.models.backends.messages import to_chat_messages, wav_bytes
from omnirm.models.backends.openai import to_openai_messages
from omnirm.models.backends.vllm import to_vllm_messages
from tests.tiny_models import sample_audio, sample_image, sample_video


def conversation() -> Conversation:
    return [
        {"role": "system", "content": "You judge answers."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look "},
                {"type": "text", "text": "and listen:"},
                {"type": "image", "image": sample_image(size=(40, 30))},
                {"type": "audio", "audio": sample_audio(seconds=0.25), "sampling_rate": 16000},
                {"type": "video", "frames": sample_video(frames=3, size=(24, 16)), "fps": 2.0},
                {"type": "text", "text": "Which is better?"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "The first."}]},
    ]


def frames_of(url: str, media_type: str) -> list[np.ndarray]:
    head, _, data = url.partition(",")
    assert head == f"data:{media_type};base64"
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(c)))) for c in data.split(",")]


def test_both_backends_send_the_same_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # the conversion needs no vLLM
    sent = to_openai_messages(conversation())
    read = to_vllm_messages(conversation(), pil_images=False)
    # Text, images and audio are the same parts, byte for byte.
    assert sent[0] == read[0] == {"role": "system", "content": "You judge answers."}
    assert sent[2] == read[2] == {"role": "assistant", "content": "The first."}
    sent_parts: list[dict[str, Any]] = sent[1]["content"]
    read_parts: list[dict[str, Any]] = read[1]["content"]
    assert sent_parts[:4] == read_parts[:4]
    assert [p["type"] for p in read_parts[:4]] == ["text", "text", "image_url", "input_audio"]
    assert sent_parts[-1] == read_parts[-1] == {"type": "text", "text": "Which is better?"}
    # Videos are where they differ: a server gets a label and its frames as images, LLM.chat
    # one video_url of the same frames.
    video = sample_video(frames=3, size=(24, 16))
    label, *images = sent_parts[4:-1]
    assert label == {"type": "text", "text": "Video (3 frames, sampled at 2 fps):"}
    assert len(images) == len(video)
    for part, frame in zip(images, video, strict=True):
        assert np.array_equal(frames_of(part["image_url"]["url"], "image/png")[0], frame)
    [clip] = read_parts[4:-1]
    jpegs = frames_of(clip["video_url"]["url"], "video/jpeg")
    assert [frame.shape for frame in jpegs] == [frame.shape for frame in video]


def test_audio_travels_as_the_shared_wav() -> None:
    audio = sample_audio(seconds=0.1)
    part = {"type": "audio", "audio": audio, "sampling_rate": 16000}
    [message] = to_openai_messages([{"role": "user", "content": [part]}])
    assert base64.b64decode(message["content"][0]["input_audio"]["data"]) == wav_bytes(audio, 16000)


@pytest.mark.parametrize("backend", ["openai", "vllm"])
def test_unknown_parts_are_refused_naming_the_backend(backend: str) -> None:
    mesh: Conversation = [{"role": "user", "content": [{"type": "mesh", "mesh": object()}]}]
    with pytest.raises(UsageError, match=f"the {backend} judge backend cannot send 'mesh' parts"):
        to_chat_messages(mesh, images="png", videos="frames", backend=backend)
