"""Typed option groups, declared once: what ``score``, ``bench`` and ``bon`` (and Python callers)
pass to the library. The command line fills them from its flags (:mod:`omnirm.cli.common`,
:mod:`omnirm.cli.judge_options`), whose defaults are read from here.

Importing this module is cheap (no torch): the command line reads the defaults at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from omnirm.errors import UsageError
from omnirm.media.limits import DEFAULT_LIMITS, MediaLimits

if TYPE_CHECKING:
    from omnirm.media.paths import MediaResolver
    from omnirm.models.backends.base import Sampling


def default_media_root(source: str | Path | None, media_root: str | Path | None = None) -> Path:
    """The media root of an input: ``media_root`` when given, else the input's folder (a
    folder given as the input is its own root), else the working directory (stdin, none)."""
    if media_root is not None:
        return Path(media_root)
    if source is None or str(source) == "-":
        return Path.cwd()
    path = Path(source)
    return path if path.is_dir() else path.resolve().parent


def record_bytes(value: int) -> int:
    """``--max-record-bytes``, checked: a :class:`UsageError` (exit 2) unless positive."""
    if value < 1:
        raise UsageError(f"--max-record-bytes must be positive, got {value}")
    return value


@dataclass(frozen=True)
class MediaOptions:
    """Where media paths resolve and what may be read: ``--media-root``,
    ``--allow-outside-root``, ``--allow-urls`` and the ``--max-*`` limits."""

    root: Path | None = None  # None: the input's folder (see default_media_root)
    allow_outside_root: bool = False
    allow_urls: bool = False
    limits: MediaLimits = DEFAULT_LIMITS

    def resolver(self, source: str | Path | None = None) -> MediaResolver:
        """The resolver for media of ``source`` (a file, a folder, ``-`` or None)."""
        from omnirm.media.paths import MediaResolver

        return MediaResolver(
            default_media_root(source, self.root),
            allow_outside_root=self.allow_outside_root,
            allow_urls=self.allow_urls,
            limits=self.limits,
        )


@dataclass(frozen=True)
class SamplingOptions:
    """How a generative judge samples: ``--temperature``, ``--seed``, ``--max-new-tokens``."""

    temperature: float = 0.0  # 0 = greedy
    seed: int = 0
    max_new_tokens: int = 1024

    def sampling(self) -> Sampling:
        from omnirm.models.backends.base import Sampling

        return Sampling(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, seed=self.seed
        )


#: Answers without a single verdict are asked again this many times.
DEFAULT_RETRIES = 3


@dataclass(frozen=True)
class JudgeOptions:
    """Everything ``--judge`` and its options say (see :mod:`omnirm.cli.judge_options`)."""

    spec: str
    revision: str | None = None  # hub revision of an hf:/vllm: judge given as ORG/NAME
    mode: str = "pairwise"
    orders: str = "both"
    verdict: str = "text"  # text | probs | rationale-probs (pairwise only)
    answer_format: str = "marks"  # marks ([[A]]) | json (Omni-RRM's object), pairwise
    ties: bool = False
    retries: int = DEFAULT_RETRIES
    prompt_template: Path | None = None
    criteria: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    timeout: float = 120.0
    batch_size: int = 8
    device: str | None = None  # None: the backend's choice
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    cache: Path | None = None  # None: ~/.cache/omnirm/judge.sqlite
    use_cache: bool = True
    trust_remote_code: bool = False  # hf: and vllm: judges only


#: The defaults the command line shows (``JUDGE_DEFAULTS.retries`` …).
JUDGE_DEFAULTS = JudgeOptions(spec="")


@dataclass(frozen=True)
class ModelOptions:
    """How a reward model is loaded and scores: ``--device``, ``--dtype``, ``--revision``,
    ``--trust-remote-code``, ``--max-length``, ``--batch-size``, ``--criteria``, ``--tie-margin``,
    ``--normalize``, ``--share-prefix``."""

    device: str = "auto"
    dtype: str = "auto"  # auto: bf16 on CUDA devices with bf16, else fp32
    revision: str | None = None
    trust_remote_code: bool = False
    max_length: int | None = None
    batch_size: int = 8
    criteria: str | None = None
    tie_margin: float = 0.0
    normalize: bool = False
    share_prefix: bool = True


MODEL_DEFAULTS = ModelOptions()


@dataclass(frozen=True)
class ServeOptions:
    """How ``omnirm serve`` listens and batches: ``--host``, ``--port``, ``--max-batch-size``,
    ``--max-wait-ms``, ``--max-queue``, ``--max-request-bytes``, ``--auth-key-env``,
    ``--drain-seconds``."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 32  # records (or texts) per scorer call
    max_wait_ms: float = 5.0  # how long the first waiting record waits for others
    max_queue: int = 1024  # records waiting at most; more is answered 429
    max_request_bytes: int = 8 * 1024 * 1024
    auth_key_env: str | None = None  # None: no key asked for
    drain_seconds: float = 60.0  # on SIGTERM, how long in-flight requests may take

    def check(self) -> ServeOptions:
        """Self, or a :class:`UsageError` (exit 2) naming the first option out of range."""
        for name in ("max_batch_size", "max_queue", "max_request_bytes"):
            if getattr(self, name) < 1:
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"{flag} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.max_wait_ms <= 10_000:
            raise UsageError(f"--max-wait-ms must be between 0 and 10000, got {self.max_wait_ms}")
        if not 0 <= self.port <= 65535:
            raise UsageError(f"--port must be between 0 and 65535, got {self.port}")
        if not self.drain_seconds > 0:
            raise UsageError(f"--drain-seconds must be positive, got {self.drain_seconds}")
        return self


SERVE_DEFAULTS = ServeOptions()


@dataclass(frozen=True)
class RayOptions:
    """Where ``score --ray`` runs: ``--ray-address`` (None: a local cluster started for the
    run), ``--ray-concurrency`` (scoring actors) and ``--ray-num-gpus`` (GPUs per actor)."""

    address: str | None = None
    concurrency: int = 1
    num_gpus: float = 0.0
    batch_size: int = 64  # records per actor call


RAY_DEFAULTS = RayOptions()
