"""Scorers as the commands use them: a reward model or a generative judge, ready to stream records.

:class:`ModelRunner` loads a reward model folder (``--model``) into a
:class:`~omnirm.scoring.Scorer`; :class:`JudgeRunner` opens a judge backend (``--judge``) into
a :class:`~omnirm.judging.judge.Judge`. Both offer ``run(items, policy)`` (scored records in input
order), ``summary()`` (lines for stderr), ``fingerprint()`` (what identifies the scores they
produce: model files, backend, settings — ``bench`` keys its score cache with it and
``--resume`` checks it), ``provenance()`` (the ``scored_by`` block) and ``close()``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from omnirm import console
from omnirm.errors import UsageError
from omnirm.media.paths import MediaResolver
from omnirm.on_error import ErrorPolicy
from omnirm.records import InvalidRecord, Record

Items = Iterable[tuple[int, Record | InvalidRecord]]


class Runner:
    """The interface both runners share (see the module docs)."""

    verb = "scoring"

    def run(self, items: Items, policy: ErrorPolicy) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def summary(self) -> list[str]:
        raise NotImplementedError

    def fingerprint(self) -> dict[str, Any]:
        raise NotImplementedError

    def provenance(self) -> dict[str, Any]:
        """The ``scored_by`` block of the records it scores."""
        raise NotImplementedError

    def close(self) -> None:
        return None


def fingerprint_digest(fingerprint: dict[str, Any]) -> str:
    """A short stable hash of a fingerprint (for cache file names)."""
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_stamps(folder: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(path.relative_to(folder)), path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file() and path.suffix in (".json", ".safetensors", ".bin", ".gguf")
    )


class ModelRunner(Runner):
    """A reward model written by ``omnirm train bt``: a folder, a hub id (``ORG/NAME``, at
    ``revision``), or None for the embedded default model (:mod:`omnirm.models.default`)."""

    def __init__(
        self,
        model: str | Path | None,
        resolver: MediaResolver,
        source: str | None = None,
        *,
        device: str = "auto",
        revision: str | None = None,
        trust_remote_code: bool = False,
        max_length: int | None = None,
        **settings: Any,
    ) -> None:
        from omnirm.models.checkpoint import CONFIG_FILE, load_reward_model
        from omnirm.models.devices import resolve_device
        from omnirm.models.media_features import MediaFeatureCache
        from omnirm.models.sources import resolve_model
        from omnirm.scoring import Scorer, ScoreSettings, provenance

        if max_length is not None and max_length < 1:
            raise UsageError("--max-length must be at least 1")
        torch_device = resolve_device(device)
        if model is None:
            from omnirm.models.default import (
                DEFAULT_MODEL_NAME,
                DEFAULT_MODEL_VERSION,
                default_model_dir,
            )

            self.model = default_model_dir()
            name, version = DEFAULT_MODEL_NAME, DEFAULT_MODEL_VERSION
        else:
            resolved = resolve_model(str(model), revision=revision, config_file=CONFIG_FILE)
            self.model = Path(resolved.folder)
            name, version = resolved.display, None
        self.name = name
        with console.status(f"loading the reward model {name}"):
            reward_model, builder, config = load_reward_model(
                self.model,
                device=torch_device,
                resolver=resolver,
                merge_adapter=True,
                trust_remote_code=trust_remote_code,
            )
        self.max_length = scoring_max_length(reward_model, config, max_length)
        builder.settings.max_length = self.max_length
        self.settings = ScoreSettings(**settings)
        normalization = None
        if self.settings.normalize:
            if config.reward_mean is None or not config.reward_std:
                raise UsageError(f"{model}: no reward statistics stored; score without --normalize")
            normalization = (config.reward_mean, config.reward_std)
        self.config = config
        self.features = MediaFeatureCache()
        self.features.install(reward_model.backbone)
        self.scorer = Scorer(
            reward_model,
            builder,
            self.settings,
            provenance(name, config, self.settings, model_version=version),
            normalization,
            source=source,
        )

    def run(self, items: Items, policy: ErrorPolicy) -> Iterator[dict[str, Any]]:
        return self.scorer.score(items, policy)

    def provenance(self) -> dict[str, Any]:
        return self.scorer.scored_by

    def summary(self) -> list[str]:
        lines = [self.scorer.report.summary()]
        if self.features.hits:
            lines.append(
                f"media features: {self.features.hits} reused, {self.features.misses} computed "
                "by the towers"
            )
        return lines

    def fingerprint(self) -> dict[str, Any]:
        return {
            "kind": "model",
            "model": self.name,
            "folder": str(self.model.resolve()),
            "files": _file_stamps(self.model),
            "backbone": self.config.backbone,
            "backbone_revision": self.config.backbone_revision,
            "criteria": self.settings.criteria,
            "normalize": self.settings.normalize,
            "max_length": self.max_length,
            "tie_margin": self.settings.tie_margin,
        }


#: The longest default scoring length: a backbone's context window can be 128k tokens, far more
#: than a batch of sequences needs or fits in memory (--max-length goes higher).
DEFAULT_SCORE_LENGTH_CAP = 8192


def scoring_max_length(model: Any, config: Any, requested: int | None) -> int:
    """The token budget per sequence when scoring: ``requested`` (``--max-length``), else the
    backbone's context window up to :data:`DEFAULT_SCORE_LENGTH_CAP`; never below the length
    the model was trained at (that was a memory choice for training, not the model's limit)."""
    from omnirm.models.checkpoint import context_window

    trained = int(config.inputs.max_length)
    window = context_window(model)
    if requested is not None:
        if window is not None and requested > window:
            console.warn(
                f"--max-length {requested} is over the backbone's context window ({window} "
                "tokens): rewards of longer sequences may be unreliable"
            )
        return requested
    if window is None:
        return trained
    return max(trained, min(window, DEFAULT_SCORE_LENGTH_CAP))


@dataclass
class JudgeOptions:
    """Everything ``--judge`` and its options say (see :mod:`omnirm.cli.judge_options`)."""

    spec: str
    revision: str | None = None  # hub revision of an hf:/vllm: judge given as ORG/NAME
    mode: str = "pairwise"
    orders: str = "both"
    ties: bool = False
    retries: int = 3
    prompt_template: Path | None = None
    criteria: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    timeout: float = 120.0
    batch_size: int = 8
    device: str | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    temperature: float = 0.0
    seed: int = 0
    max_new_tokens: int = 1024
    cache: Path | None = None
    use_cache: bool = True
    trust_remote_code: bool = False  # --trust-remote-code: hf: and vllm: judges only


class JudgeRunner(Runner):
    """A generative judge on one backend (``hf:``, ``openai:``, ``vllm:``)."""

    verb = "judging"

    def __init__(
        self, options: JudgeOptions, resolver: MediaResolver, source: str | None = None
    ) -> None:
        from omnirm.judging.cache import AnswerCache, default_cache_path
        from omnirm.judging.conversations import ConversationBuilder
        from omnirm.judging.judge import Judge, JudgeSettings, judge_provenance
        from omnirm.models.backends.base import Sampling, open_backend
        from omnirm.prompts.templates import default_template, load_template

        if options.retries < 0:
            raise UsageError("--retries must be at least 0")
        if options.max_new_tokens < 1:
            raise UsageError("--max-new-tokens must be at least 1")
        mode: Literal["pairwise", "pointwise"] = (
            "pointwise" if options.mode == "pointwise" else "pairwise"
        )
        template = (
            load_template(options.prompt_template)
            if options.prompt_template
            else default_template(mode)
        )
        if template.mode != mode:
            raise UsageError(
                f"--prompt-template {options.prompt_template} is a {template.mode} template; "
                f"pass --mode {template.mode}"
            )
        self.options = options
        self.template = template
        self.settings = JudgeSettings(
            mode=template.mode,
            orders="ab" if options.orders == "ab" else "both",
            ties=options.ties,
            retries=options.retries,
            criteria=options.criteria,
            sampling=Sampling(
                max_new_tokens=options.max_new_tokens,
                temperature=options.temperature,
                seed=options.seed,
            ),
        )
        with console.status(f"opening the judge {options.spec}"):
            self.backend = open_backend(
                options.spec,
                base_url=options.base_url,
                api_key_env=options.api_key_env,
                concurrency=options.concurrency,
                timeout=options.timeout,
                batch_size=options.batch_size,
                device=options.device,
                tensor_parallel_size=options.tensor_parallel_size,
                gpu_memory_utilization=options.gpu_memory_utilization,
                seed=options.seed,
                revision=options.revision,
                trust_remote_code=options.trust_remote_code,
            )
        builder = ConversationBuilder(
            template, resolver, self.backend.modalities, ties=options.ties
        )
        self.cache = (
            AnswerCache(options.cache or default_cache_path()) if options.use_cache else None
        )
        self.judge = Judge(
            self.backend,
            builder,
            self.settings,
            judge_provenance(options.spec, self.backend, self.settings, template.source),
            cache=self.cache,
            source=source,
        )

    def run(self, items: Items, policy: ErrorPolicy) -> Iterator[dict[str, Any]]:
        return self.judge.judge(items, policy)

    def provenance(self) -> dict[str, Any]:
        return self.judge.scored_by

    def summary(self) -> list[str]:
        return [self.judge.report.summary()]

    def fingerprint(self) -> dict[str, Any]:
        settings = asdict(self.settings)
        settings["sampling"] = self.settings.sampling.to_dict()
        return {
            "kind": "judge",
            "backend": self.backend.fingerprint(),
            "settings": settings,
            "template": [self.template.system, self.template.user, self.template.mode],
        }

    def close(self) -> None:
        self.backend.close()
        if self.cache is not None:
            self.cache.close()
