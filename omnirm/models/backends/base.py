"""What every generative-judge backend offers: chat in, text out, with token counts.

A backend turns conversations into generated text. Conversations are backend-neutral lists of
chat messages, ``{"role": "system" | "user" | "assistant", "content": str | list[part]}``, whose
parts are already-decoded media (the judge decoded and sampled them):

- ``{"type": "text", "text": str}``
- ``{"type": "image", "image": PIL.Image.Image}`` (RGB)
- ``{"type": "video", "frames": np.ndarray, "fps": float}`` — (T, H, W, 3) uint8 frames sampled
  at ``fps`` frames per second of the source
- ``{"type": "audio", "audio": np.ndarray, "sampling_rate": int}`` — mono float32 in [-1, 1]

Each backend says which of these it can pass to its model (:attr:`JudgeBackend.modalities`);
the judge refuses records with other media before asking. Backends: ``hf:PATH``
(:mod:`omnirm.models.backends.hf`), ``openai:MODEL`` (:mod:`omnirm.models.backends.openai`),
``vllm:PATH`` (:mod:`omnirm.models.backends.vllm`); :func:`open_backend` picks one from a spec.
"""

from __future__ import annotations

import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from omnirm.errors import UsageError

Message = dict[str, Any]
Conversation = list[Message]

#: each ``--judge`` prefix and the class behind it (``module:Class``), imported only when a spec
#: names it: this module stays free of the backends that build on it
BACKENDS: dict[str, str] = {
    "hf": "omnirm.models.backends.hf:HFBackend",
    "openai": "omnirm.models.backends.openai:OpenAIBackend",
    "vllm": "omnirm.models.backends.vllm:VLLMBackend",
}


@dataclass(frozen=True)
class Sampling:
    """Generation settings; part of every answer's cache key."""

    max_new_tokens: int = 1024
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = 0
    stop_at_mark: bool = True  # stop once a verdict or score mark is complete (hf: backends)
    #: a JSON schema (JSON text) the answer must follow: decoding is constrained to it on
    #: backends that can (:attr:`JudgeBackend.constrains_json`), ignored by the others
    json_schema: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["json_schema"] is None:  # keys of answers cached before the field existed
            del out["json_schema"]
        return out


@dataclass
class Generation:
    """One conversation's answer. ``text`` is None when the request failed for good (after
    the backend's own retries); ``error`` then says why. Token counts are None where the
    backend does not report them."""

    text: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seconds: float = 0.0
    error: str | None = None


@dataclass
class VerdictProbabilities:
    """A judge's verdict read from its next-token probabilities at the verdict position.

    ``probabilities`` maps each verdict letter to its probability renormalised over the letters
    offered; ``mass`` is how much of the whole distribution those letters held (low: the model
    wanted to write something else there). ``rationale`` is what it wrote before the verdict,
    when asked to write one."""

    probabilities: dict[str, float]
    mass: float
    rationale: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


class JudgeBackend(ABC):
    """A model that answers chat conversations (see the module docs for their form)."""

    #: "hf", "openai" or "vllm": the prefix of the ``--judge`` spec
    kind: str = ""
    #: True where requests wait side by side (a server): such a judge gets full windows of
    #: records from the start; a local model starts with one and widens while it is quick
    answers_concurrently: bool = False

    @property
    @abstractmethod
    def model(self) -> str:
        """The model as the user named it (a path, or the server's model name)."""

    @property
    @abstractmethod
    def modalities(self) -> frozenset[str]:
        """Media kinds the model reads besides text: a subset of image, video, audio."""

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """What identifies the model's answers: backend kind, model, and whatever tells one
        set of weights from another (file sizes and times, a server's reported model id).
        Cached answers are reused only under an equal fingerprint."""

    @abstractmethod
    def generate(self, conversations: list[Conversation], sampling: Sampling) -> list[Generation]:
        """Answers in the order of ``conversations``. A request that fails for good gives a
        :class:`Generation` with ``error`` set rather than raising; errors that make every
        request fail (bad model path, authentication refused, missing dependency) raise
        :class:`~omnirm.errors.UsageError` or :class:`~omnirm.errors.OmnirmError`."""

    @property
    def constrains_json(self) -> bool:
        """Whether :attr:`Sampling.json_schema` constrains this backend's answers (structured
        outputs); the others ignore it."""
        return False

    @property
    def reads_probabilities(self) -> bool:
        """Whether :meth:`verdict_probabilities` works on this backend."""
        return type(self).verdict_probabilities is not JudgeBackend.verdict_probabilities

    def verdict_probabilities(
        self,
        conversations: list[Conversation],
        letters: tuple[str, ...],
        *,
        prefix: str = "[[",
        rationale: Sampling | None = None,
    ) -> list[VerdictProbabilities]:
        """Each conversation's verdict as probabilities of ``letters`` right after ``prefix``
        in the answer (with ``rationale``, after the reasoning the model writes first)."""
        raise UsageError(
            f"--verdict probs needs a backend that exposes next-token probabilities; "
            f"{self.kind}: does not (use hf:)"
        )

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release the model or connections (default: nothing to do)."""


def open_backend(spec: str, **options: Any) -> JudgeBackend:
    """The backend a ``--judge`` spec names: ``hf:PATH``, ``openai:MODEL`` or ``vllm:PATH``.

    ``options`` are backend settings (``base_url``, ``api_key_env``, ``concurrency``,
    ``timeout``, ``device`` …); each backend takes the ones it knows and ignores None values.
    """
    kind, _, target = spec.partition(":")
    if not target:
        raise UsageError(
            f"--judge {spec!r}: expected hf:PATH, openai:MODEL or vllm:PATH (for example "
            "hf:./Qwen2.5-VL-3B-Instruct, hf:Qwen/Qwen2.5-VL-3B-Instruct or openai:gpt-4o)"
        )
    given = {key: value for key, value in options.items() if value is not None}
    where = BACKENDS.get(kind)
    if where is None:
        raise UsageError(f"--judge {spec!r}: unknown backend {kind!r} (use hf:, openai: or vllm:)")
    module, _, name = where.partition(":")
    cls: Callable[..., JudgeBackend] = getattr(importlib.import_module(module), name)
    return cls(target, **_known(cls, given))


def _known(cls: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """The options ``cls.__init__`` accepts."""
    accepted = set(inspect.signature(cls).parameters)
    return {key: value for key, value in options.items() if key in accepted}
