"""The two :class:`~omnirm.scorer.Scorer` s: a reward model or a generative judge, ready to
stream records (open them with :func:`omnirm.scorer.load_scorer`).

:class:`ModelScorer` loads a reward model folder (``--model``) onto a
:class:`~omnirm.scoring.RewardScorer`; :class:`JudgeScorer` opens a judge backend (``--judge``)
under a :class:`~omnirm.judging.judge.Judge`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from omnirm import console
from omnirm.errors import RecordError, UsageError
from omnirm.media.paths import MediaResolver
from omnirm.on_error import ErrorPolicy
from omnirm.options import JudgeOptions, ModelOptions
from omnirm.scorer import Items


def _file_stamps(folder: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(path.relative_to(folder)), path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file() and path.suffix in (".json", ".safetensors", ".bin", ".gguf")
    )


class ModelScorer:
    """A reward model written by ``omnirm train bt``: a folder, a hub id (``ORG/NAME``, at
    ``options.revision``), or None for the embedded default model (:mod:`omnirm.models.default`)."""

    kind: Literal["model", "judge"] = "model"
    pairwise = False
    verb = "scoring"

    def __init__(
        self,
        model: str | Path | None,
        resolver: MediaResolver,
        source: str | None = None,
        options: ModelOptions | None = None,
    ) -> None:
        from omnirm.models.checkpoint import CONFIG_FILE, load_reward_model
        from omnirm.models.devices import inference_dtype, precision_name, resolve_device
        from omnirm.models.media_features import MediaFeatureCache
        from omnirm.models.sources import resolve_model
        from omnirm.scoring import RewardScorer, ScoreSettings, provenance

        options = options or ModelOptions()
        if options.max_length is not None and options.max_length < 1:
            raise UsageError("--max-length must be at least 1")
        torch_device = resolve_device(options.device)
        dtype = inference_dtype(torch_device, options.dtype)
        self.precision = precision_name(dtype)
        if model is None:
            from omnirm.models.default import (
                DEFAULT_MODEL_NAME,
                DEFAULT_MODEL_VERSION,
                default_model_dir,
            )

            self.model = default_model_dir()
            name, version = DEFAULT_MODEL_NAME, DEFAULT_MODEL_VERSION
        else:
            resolved = resolve_model(str(model), revision=options.revision, config_file=CONFIG_FILE)
            self.model = Path(resolved.folder)
            name, version = resolved.display, None
        self.name = name
        self.label = f"model:{name}"
        with console.status(f"loading the reward model {name}"):
            reward_model, builder, config = load_reward_model(
                self.model,
                dtype=dtype,
                device=torch_device,
                resolver=resolver,
                merge_adapter=True,
                trust_remote_code=options.trust_remote_code,
            )
        self.max_length = scoring_max_length(reward_model, config, options.max_length)
        builder.settings.max_length = self.max_length
        self.settings = ScoreSettings(
            batch_size=options.batch_size,
            criteria=options.criteria,
            tie_margin=options.tie_margin,
            normalize=options.normalize,
            share_prefix=options.share_prefix,
        )
        normalization = None
        if self.settings.normalize:
            if config.reward_mean is None or not config.reward_std:
                raise UsageError(f"{model}: no reward statistics stored; score without --normalize")
            normalization = (config.reward_mean, config.reward_std)
        self.config = config
        self.features = MediaFeatureCache()
        self.features.install(reward_model.backbone)
        self.scorer = RewardScorer(
            reward_model,
            builder,
            self.settings,
            provenance(name, config, self.settings, version, self.precision),
            normalization,
            source=source,
        )

    def score(self, items: Items, policy: ErrorPolicy) -> Iterator[dict[str, Any]]:
        return self.scorer.score(items, policy)

    def score_texts(self, texts: list[str]) -> list[float | RecordError]:
        """Rewards of whole, already formatted sequences (see
        :meth:`~omnirm.scoring.RewardScorer.score_texts`)."""
        return self.scorer.score_texts(texts)

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
            "precision": self.precision,
        }

    def describe(self) -> dict[str, str]:
        inputs = self.config.inputs
        return {
            "reward model": f"{self.model} (backbone {self.config.backbone}); max length "
            f"{inputs.max_length}, prompt truncated from the left; {inputs.video_frames} frames "
            f"per video, meshes as {inputs.mesh_views} views"
        }

    def close(self) -> None:
        return None


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


class JudgeScorer:
    """A generative judge on one backend (``hf:``, ``openai:``, ``vllm:``)."""

    kind: Literal["model", "judge"] = "judge"
    verb = "judging"

    def __init__(
        self, options: JudgeOptions, resolver: MediaResolver, source: str | None = None
    ) -> None:
        from omnirm.judging.cache import AnswerCache, default_cache_path
        from omnirm.judging.conversations import ConversationBuilder
        from omnirm.judging.judge import Judge, JudgeSettings, judge_provenance
        from omnirm.judging.likelihood import check_reads_probabilities
        from omnirm.models.backends.base import open_backend
        from omnirm.prompts.templates import default_template, load_template

        if options.retries < 0:
            raise UsageError("--retries must be at least 0")
        if options.sampling.max_new_tokens < 1:
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
        verdict: Literal["text", "probs", "rationale-probs"] = (
            "probs" if options.verdict == "probs"
            else "rationale-probs" if options.verdict == "rationale-probs"
            else "text"
        )  # fmt: skip
        if verdict != "text" and mode != "pairwise":
            raise UsageError(f"--verdict {verdict} reads a pairwise verdict; drop --mode pointwise")
        self.options = options
        self.pairwise = mode == "pairwise"
        self.label = f"judge:{options.spec}"
        self.template = template
        self.settings = JudgeSettings(
            mode=template.mode,
            orders="ab" if options.orders == "ab" else "both",
            verdict=verdict,
            answer_format="json" if options.answer_format == "json" else "marks",
            ties=options.ties,
            retries=options.retries,
            criteria=options.criteria,
            sampling=options.sampling.sampling(),
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
                seed=options.sampling.seed,
                revision=options.revision,
                trust_remote_code=options.trust_remote_code,
            )
        try:
            check_reads_probabilities(self.backend, verdict, "--verdict", "judge")
        except UsageError:
            self.backend.close()
            raise
        self.builder = ConversationBuilder(
            template,
            resolver,
            self.backend.modalities,
            ties=options.ties,
            answer_format=self.settings.answer_format,
        )
        self.cache = (
            AnswerCache(options.cache or default_cache_path()) if options.use_cache else None
        )
        self.judge = Judge(
            self.backend,
            self.builder,
            self.settings,
            judge_provenance(options.spec, self.backend, self.settings, template.source),
            cache=self.cache,
            source=source,
        )

    def score(self, items: Items, policy: ErrorPolicy) -> Iterator[dict[str, Any]]:
        return self.judge.score(items, policy)

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

    def describe(self) -> dict[str, str]:
        options, settings, media = self.options, self.settings, self.builder.media
        sampling = options.sampling
        return {
            "judge": f"{options.spec}, {settings.mode}, orders {settings.orders} "
            + (
                "(contradicting orders = tie)"
                if settings.verdict == "text"
                else f"(verdict {settings.verdict}: letter probabilities averaged)"
            )
            + ", tie verdict "
            f"{'offered' if settings.ties else 'not offered'}, retries {settings.retries}, "
            f"temperature {sampling.temperature}, seed {sampling.seed}",
            "media": f"{media.prompt_video_frames} frames per prompt video, "
            f"{media.response_video_frames} per response video, audio "
            f"{media.audio_sample_rate / 1000:g} kHz, meshes as {media.mesh_views} views",
        }

    def close(self) -> None:
        self.backend.close()
        if self.cache is not None:
            self.cache.close()
