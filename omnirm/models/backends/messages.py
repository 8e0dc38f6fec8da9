"""Backend-neutral conversations as OpenAI-style chat messages, for every backend that sends them.

Both ``openai:`` (a server's ``/chat/completions``) and ``vllm:`` (``LLM.chat``) read the same
message form; they differ only in how images and videos travel, which the caller picks:

- text → ``{"type": "text", "text": ...}``; a message with text only becomes one string, as the
  chat templates join text parts
- image → ``images="png"`` / ``"jpeg"``: an ``image_url`` part holding a
  ``data:image/png;base64,…`` (or JPEG) URL; ``images="pil"``: ``{"type": "image_pil",
  "image_pil": PIL.Image}`` (vLLM ≥ 0.10.1)
- video → ``videos="frames"``: the text "Video (N frames, sampled at X fps):" then one image part
  per frame; ``videos="video_url"``: ``{"type": "video_url", "video_url": {"url":
  "data:video/jpeg;base64,F1,F2,..."}}``, vLLM's form for frames sampled beforehand (each ``Fi``
  one base64 JPEG frame)
- audio → ``{"type": "input_audio", "input_audio": {"data": <base64 16-bit PCM WAV>, "format":
  "wav"}}`` at the part's own sampling rate
"""

from __future__ import annotations

import base64
import io
import wave
from typing import Any, Literal

import numpy as np

from omnirm.errors import UsageError
from omnirm.models.backends.base import Conversation

ImageForm = Literal["png", "jpeg", "pil"]
VideoForm = Literal["frames", "video_url"]

_JPEG_QUALITY = {"image": 90, "video": 95}  # image parts, video_url frames


def to_chat_messages(
    conversation: Conversation, *, images: ImageForm, videos: VideoForm, backend: str
) -> list[dict[str, Any]]:
    """``conversation`` as chat messages with media inlined (see the module docs); ``backend``
    names the backend in the refusal of a part it cannot send."""
    return [_message(message, images, videos, backend) for message in conversation]


def _message(
    message: dict[str, Any], images: ImageForm, videos: VideoForm, backend: str
) -> dict[str, Any]:
    content = message["content"]
    if isinstance(content, str):
        return {"role": message["role"], "content": content}
    if all(part["type"] == "text" for part in content):
        return {"role": message["role"], "content": "".join(str(p["text"]) for p in content)}
    parts: list[dict[str, Any]] = []
    for part in content:
        parts.extend(_parts(part, images, videos, backend))
    return {"role": message["role"], "content": parts}


def _parts(
    part: dict[str, Any], images: ImageForm, videos: VideoForm, backend: str
) -> list[dict[str, Any]]:
    kind = part["type"]
    if kind == "text":
        return [{"type": "text", "text": str(part["text"])}]
    if kind == "image":
        if images == "pil":
            return [{"type": "image_pil", "image_pil": part["image"]}]
        return [image_url_part(part["image"], images)]
    if kind == "video":
        if videos == "video_url":
            return [{"type": "video_url", "video_url": {"url": video_data_url(part["frames"])}}]
        return video_frame_parts(
            part["frames"], part.get("fps"), "jpeg" if images == "jpeg" else "png"
        )
    if kind == "audio":
        data = base64_text(wav_bytes(part["audio"], int(part["sampling_rate"])))
        return [{"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}]
    raise UsageError(f"the {backend} judge backend cannot send {kind!r} parts to a model")


def image_url_part(image: Any, image_format: Literal["png", "jpeg"]) -> dict[str, Any]:
    """An ``image_url`` part holding ``image`` as a PNG (lossless) or JPEG data URL."""
    data = base64_text(encode_image(image, image_format, _JPEG_QUALITY["image"]))
    return {"type": "image_url", "image_url": {"url": f"data:image/{image_format};base64,{data}"}}


def video_frame_parts(
    frames: np.ndarray, fps: float | None, image_format: Literal["png", "jpeg"]
) -> list[dict[str, Any]]:
    """A video as a text label and one image part per frame (servers that read images only)."""
    frames = np.asarray(frames)
    rate = f", sampled at {float(fps):g} fps" if fps else ""
    parts: list[dict[str, Any]] = [{"type": "text", "text": f"Video ({len(frames)} frames{rate}):"}]
    return parts + [image_url_part(_frame_image(frame), image_format) for frame in frames]


def video_data_url(frames: np.ndarray) -> str:
    """``data:video/jpeg;base64,`` and the frames as comma-separated base64 JPEGs."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise UsageError(f"video frames must have shape (T, H, W, 3), got {frames.shape}")
    encoded = (
        base64_text(encode_image(_frame_image(frame), "jpeg", _JPEG_QUALITY["video"]))
        for frame in frames
    )
    return "data:video/jpeg;base64," + ",".join(encoded)


def wav_bytes(audio: np.ndarray, sampling_rate: int) -> bytes:
    """Mono float audio in [-1, 1] as a 16-bit PCM WAV file (clipped, scaled by 32767)."""
    samples = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
    pcm = np.round(samples * 32767.0).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(int(sampling_rate))
        writer.writeframes(pcm.tobytes())
    return buffer.getvalue()


def encode_image(image: Any, image_format: Literal["png", "jpeg"], quality: int = 90) -> bytes:
    """An image's RGB pixels as PNG or JPEG file bytes."""
    buffer = io.BytesIO()
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if image_format == "jpeg":
        rgb.save(buffer, format="JPEG", quality=quality)
    else:
        rgb.save(buffer, format="PNG")
    return buffer.getvalue()


def base64_text(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _frame_image(frame: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
