"""``--judge vllm:PATH``: a model generates the judge's answers in-process with vLLM.

vLLM (the optional extra ``omnirm[vllm]``) needs a CUDA GPU; it is imported only when a
:class:`VLLMBackend` is built, never by importing this module. The model is a local folder (or
a ``.gguf`` file) or a hub id ``ORG/NAME``, fetched into the hub's cache first
(:mod:`omnirm.models.sources`), so vLLM itself downloads nothing.

The engine runs with prefix caching on: the judge sends many prompts that share the system
message, the criterion and the prompt (both orders of a pair share at least the system message),
so their common prefix is computed once. Each :meth:`VLLMBackend.generate` call sends all its
conversations to ``LLM.chat`` at once and lets vLLM batch them.

Conversations (see :mod:`omnirm.models.backends.base`) become the OpenAI-style messages that
``LLM.chat`` reads (:func:`to_vllm_messages`, a pure function; the ``openai:`` backend shares
its implementation, :mod:`omnirm.models.backends.messages`, and differs only in media forms):

- text → ``{"type": "text", "text": ...}``; a message with text only becomes one string
- image → ``{"type": "image_pil", "image_pil": PIL.Image}`` where the installed vLLM knows that
  part (0.10.1 does, 0.9.0 does not), else a lossless PNG data URL,
  ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``
- video → ``{"type": "video_url", "video_url": {"url": "data:video/jpeg;base64,F1,F2,..."}}``:
  vLLM's form for frames sampled beforehand (each ``Fi`` one base64 JPEG frame); vLLM decodes
  them into a (T, H, W, 3) array and passes every frame to the model, as a video
- audio → ``{"type": "input_audio", "input_audio": {"data": <base64 16-bit PCM WAV>,
  "format": "wav"}}`` at the part's own sampling rate; vLLM resamples to what the model reads
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from omnirm.errors import OmnirmError, UsageError
from omnirm.models.backends.base import Conversation, Generation, JudgeBackend, Sampling
from omnirm.models.backends.messages import ImageForm, to_chat_messages

#: media items per prompt the engine reserves room for, unless ``limit_mm_per_prompt`` is given
DEFAULT_MM_LIMITS: dict[str, int] = {"image": 20, "video": 2, "audio": 2}

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


class VLLMBackend(JudgeBackend):
    kind = "vllm"

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        dtype: str = "auto",
        trust_remote_code: bool = False,
        limit_mm_per_prompt: dict[str, int] | None = None,
        seed: int = 0,
        revision: str | None = None,
    ) -> None:
        from omnirm.models.safety import check_model_folder
        from omnirm.models.sources import resolve_model

        resolved = resolve_model(
            str(Path(model).expanduser()) if model.startswith("~") else model,
            revision=revision,
            trust_remote_code=trust_remote_code,
            option="--judge vllm:",
        )
        check_model_folder(
            resolved.folder,
            gguf_file=resolved.gguf_file,
            trust_remote_code=trust_remote_code,
            label=f"--judge vllm:{model}",
        )
        self._model_name = resolved.display if resolved.is_hub else model
        self.source = Path(resolved.path)
        self.dtype = dtype
        self._modalities = model_modalities(self.source, trust_remote_code)
        self._llm: Any = create_engine(
            self.source,
            label=f"--judge vllm:{model}",
            instead=_JUDGE_ALTERNATIVES,
            modalities=self._modalities,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            limit_mm_per_prompt=limit_mm_per_prompt,
            seed=seed,
        )
        self._pil_images = _accepts_pil_images()

    @property
    def model(self) -> str:
        return self._model_name

    @property
    def modalities(self) -> frozenset[str]:
        return self._modalities

    def fingerprint(self) -> dict[str, Any]:
        return {
            "backend": "vllm",
            "model": str(self.source),
            "dtype": self.dtype,
            "files": model_files(self.source),
        }

    def generate(self, conversations: list[Conversation], sampling: Sampling) -> list[Generation]:
        if not conversations:
            return []
        messages = [to_vllm_messages(c, pil_images=self._pil_images) for c in conversations]
        params = self._sampling_params(sampling)
        began = time.perf_counter()
        try:
            outputs = self._llm.chat(messages, sampling_params=params, use_tqdm=False)
        except Exception as error:
            # One bad request (longer than max_model_len, media vLLM cannot read) fails the
            # whole call; ask again one by one so that only that one fails.
            if len(conversations) == 1:
                return [Generation(text=None, error=f"vLLM: {type(error).__name__}: {error}")]
            return [self.generate([c], sampling)[0] for c in conversations]
        # One chat call serves the whole batch: its wall time is divided evenly.
        seconds = (time.perf_counter() - began) / len(conversations)
        return [_generation(output, seconds) for output in outputs]

    @property
    def constrains_json(self) -> bool:
        return True

    def _sampling_params(self, sampling: Sampling) -> Any:
        from vllm import SamplingParams

        options: dict[str, Any] = {}
        if sampling.json_schema is not None:
            options.update(_json_constraint(sampling.json_schema))
        return SamplingParams(
            max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,  # 0 = greedy in vLLM too
            top_p=sampling.top_p,
            seed=sampling.seed,
            **options,
        )

    def close(self) -> None:
        """Drop the engine and give its GPU memory back."""
        import gc

        llm, self._llm = getattr(self, "_llm", None), None
        if llm is None:
            return
        del llm
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


# ------------------------------------------------------------------------------ checks


_JUDGE_ALTERNATIVES = (
    "use --judge hf:PATH (transformers, also on CPU) or --judge openai:MODEL (any "
    "OpenAI-compatible server)"
)


def require_vllm(label: str, instead: str) -> Any:
    """The ``vllm`` module, or a :class:`UsageError` naming ``label`` (the option that asked
    for it), how to install vLLM, and what to use ``instead`` when vLLM is missing, broken, or
    torch sees no CUDA GPU."""
    try:
        import vllm
    except ImportError as error:
        raise UsageError(
            f"{label}: vLLM is not installed. Install it with pip install 'omnirm[vllm]' (it "
            f"needs a CUDA GPU), or {instead}"
        ) from error
    except Exception as error:  # installed but broken (CUDA libraries, version clashes)
        raise UsageError(
            f"{label}: vLLM is installed but failed to import ({type(error).__name__}: "
            f"{error}); reinstall it with pip install 'omnirm[vllm]', or {instead}"
        ) from error
    import torch

    if not torch.cuda.is_available():
        raise UsageError(
            f"{label}: vLLM needs a CUDA GPU and torch sees none (check nvidia-smi and "
            f"CUDA_VISIBLE_DEVICES); without a GPU {instead}"
        )
    return vllm


def create_engine(
    source: Path,
    *,
    label: str,
    instead: str,
    modalities: frozenset[str],
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.9,
    max_model_len: int | None = None,
    dtype: str = "auto",
    trust_remote_code: bool = False,
    limit_mm_per_prompt: dict[str, int] | None = None,
    seed: int = 0,
    **options: Any,
) -> Any:
    """An in-process ``vllm.LLM`` on the model at ``source`` with prefix caching, room for
    the media it reads (``modalities``) and any further engine ``options`` (e.g.
    ``enable_lora``); errors name ``label``."""
    vllm = require_vllm(label, instead)
    limits = (
        dict(limit_mm_per_prompt)
        if limit_mm_per_prompt is not None
        else {kind: DEFAULT_MM_LIMITS[kind] for kind in sorted(modalities)}
    )
    if limits:  # vLLM refuses limit_mm_per_prompt for text-only models
        options["limit_mm_per_prompt"] = limits
    if max_model_len is not None:
        options["max_model_len"] = max_model_len
    try:
        return vllm.LLM(
            model=str(source),
            enable_prefix_caching=True,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            seed=seed,
            **options,
        )
    except Exception as error:  # unsupported architecture, out of memory, bad options …
        raise OmnirmError(f"{label}: vLLM could not load the model: {error}") from error


def _accepts_pil_images() -> bool:
    """Whether the installed vLLM's ``LLM.chat`` reads ``image_pil`` parts (0.10.1 does, 0.9.0 does not)."""
    try:
        from vllm.entrypoints.chat_utils import MM_PARSER_MAP
    except Exception:
        return False
    return "image_pil" in MM_PARSER_MAP


# ------------------------------------------------------------------------------ model files


def model_modalities(source: Path, trust_remote_code: bool = False) -> frozenset[str]:
    """What the model at ``source`` reads besides text, from its ``config.json``."""
    config_file = source / "config.json"
    if not config_file.is_file():  # a .gguf file, or a folder without a config
        return frozenset()
    config: Any
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    except Exception:  # a model_type this transformers does not know: read the JSON itself
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return frozenset()
    return modalities_from_config(config)


def modalities_from_config(config: Any) -> frozenset[str]:
    """Media kinds a model config (a transformers config or its JSON dict) says it reads.

    A ``vision_config`` means images, and videos too where the config names a video token
    (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision, Qwen2.5-Omni; not LLaVA-1.5 or Gemma 3);
    an ``audio_config`` means audio. Omni models keep both in their ``thinker_config``.
    """
    found: set[str] = set()
    parts = [config]
    thinker = _field(config, "thinker_config")
    if thinker is not None:
        parts.append(thinker)
    for part in parts:
        if _field(part, "vision_config") is not None:
            found.add("image")
            if any(
                _field(part, key) is not None for key in ("video_token_id", "video_token_index")
            ):
                found.add("video")
        if _field(part, "audio_config") is not None:
            found.add("audio")
    return frozenset(found)


def _field(config: Any, name: str) -> Any:
    if isinstance(config, dict):
        return config.get(name)
    return getattr(config, name, None)


def model_files(source: Path) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of what decides the answers: config and tokenizer/processor JSON,
    chat templates, and weights. ``source`` may be a folder or a single (``.gguf``) file."""
    if source.is_file():
        paths = [source]
    else:
        paths = [
            path
            for path in source.iterdir()
            if path.is_file() and path.suffix in (".json", ".jinja", *_WEIGHT_SUFFIXES)
        ]
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths)


# ------------------------------------------------------------------------------ conversion


def _json_constraint(schema: str) -> dict[str, Any]:
    """The ``SamplingParams`` options that hold an answer to a JSON schema: ``structured_outputs``
    (vLLM 0.11 and later), else the ``guided_decoding`` it replaced (removed in 0.12)."""
    import vllm.sampling_params as params

    if hasattr(params, "StructuredOutputsParams"):
        return {"structured_outputs": params.StructuredOutputsParams(json=schema)}
    return {"guided_decoding": params.GuidedDecodingParams(json=schema)}


def to_vllm_messages(
    conversation: Conversation, *, pil_images: bool = True
) -> list[dict[str, Any]]:
    """A backend-neutral conversation as the OpenAI-style messages ``vllm.LLM.chat`` reads.

    ``pil_images`` sends images as ``image_pil`` parts (where vLLM reads them); otherwise as PNG
    data URLs in ``image_url`` parts. Videos go as ``video_url`` parts of JPEG frames. See
    :mod:`omnirm.models.backends.messages` for every part's form.
    """
    images: ImageForm = "pil" if pil_images else "png"
    return to_chat_messages(conversation, images=images, videos="video_url", backend="vllm")


def _generation(output: Any, seconds: float) -> Generation:
    completion = output.outputs[0] if output.outputs else None
    prompt_ids = getattr(output, "prompt_token_ids", None)
    if completion is None:
        return Generation(text=None, seconds=seconds, error="vLLM returned no completion")
    return Generation(
        text=completion.text.strip(),
        prompt_tokens=len(prompt_ids) if prompt_ids is not None else None,
        completion_tokens=len(completion.token_ids),
        seconds=seconds,
    )
