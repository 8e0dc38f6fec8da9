"""Everything ``omnirm train r1`` can be told (:class:`R1Config`), with its checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from omnirm.errors import UsageError
from omnirm.jsonl import MAX_RECORD_BYTES
from omnirm.media import MediaLimits

Stage = Literal["sft", "rs", "grpo"]
#: The stages a ``--stage`` list is made of (run in the order given, e.g. ``rs,sft,grpo``).
STAGE_NAMES: tuple[str, ...] = ("sft", "rs", "grpo")
#: Typical ``--stage`` values (for help texts); any list that :meth:`R1Config.validate` accepts
#: works.
STAGES: tuple[str, ...] = ("sft", "grpo", "sft,grpo", "rs", "rs,sft", "rs,sft,grpo", "sft,rs,sft")
#: How a judge writes its verdict: ``[[A]]`` marks, or Omni-RRM's JSON object.
ANSWER_FORMATS = ("marks", "json")
#: Where GRPO's rollouts come from: the policy with transformers ``generate``, or vLLM.
ROLLOUT_ENGINES = ("generate", "vllm")


#: What an r1 run's ``training_config.json`` records besides its settings.
R1_RUN_FACTS = ("lr_by_stage", "base_model", "base_revision", "template")


@dataclass
class R1Config:
    """A generative-judge training run; saved resolved as ``training_config.json``."""

    model: str
    data: str
    output: str
    stage: str = "sft,grpo"  # stages in the order they run (see validate)
    lr: float | None = None  # default per stage: see resolved_lr
    seed: int = 0
    force: bool = False  # clear ``output`` (an earlier run's folder) first
    max_length: int = 2048  # tokens of prompt + answer (SFT) or of the prompt (GRPO)
    ties: bool = False  # offer [[C]] and train tie records
    criteria: str | None = None  # overrides the records' criteria
    answer_format: str = "marks"  # one of ANSWER_FORMATS
    # checkpoints
    save_steps: int | None = None  # a state every N optimizer steps (one is saved per stage)
    resume: bool = False  # continue the run saved in ``output``
    plot: bool = False  # learning curves (curves.png) in ``output`` at the end
    # LoRA (the default) or all weights
    full: bool = False
    lora_r: int = 16
    lora_alpha: int | None = None  # default: 2 × r
    lora_dropout: float = 0.0
    lora_layers: int | None = None
    gradient_checkpointing: bool = True  # as train bt: activations recomputed in the backward
    bf16: bool | None = None  # default: on CUDA GPUs that support it
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    max_steps: int | None = None  # optimizer steps per stage (None: from the epochs)
    # SFT
    epochs: float = 1.0
    batch_size: int = 4  # sequences per forward pass on each device (SFT and GRPO updates);
    # a media judge's GRPO also samples this many prompts per generate call
    grad_accum: int = 1
    share_prefix: bool = True  # the orders' common conversation start runs once (text)
    group_by_length: bool = True  # batches of records of similar length
    # GRPO
    grpo_epochs: float = 1.0  # passes over the prompts (both orders of every record)
    prompts_per_step: int = 4
    generations: int = 6  # rollouts per prompt (the group)
    max_completion_length: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    beta: float = 0.04  # k3 KL to the reference (the model before this stage)
    clip_epsilon: float = 0.2
    loss_norm: str = "token"  # "token" (DAPO, TRL's default) or "sequence" (GRPO's paper)
    updates_per_batch: int = 1  # optimizer steps on each batch of rollouts (PPO epochs)
    rollouts: str = "generate"  # one of ROLLOUT_ENGINES
    vllm_gpu_memory_utilization: float = 0.3  # the engine's share (the policy trains beside it)
    correct_weight: float = 1.0
    format_weight: float = 0.5
    length_weight: float = 0.0
    consistency_weight: float = 0.0  # both orders of a record reach the same outcome
    rubric_weight: float = 0.0  # the reasoning mentions the criterion's aspects
    reward_fns: list[str] = field(default_factory=list)  # module:function (TRL signature)
    reward_fn_weight: float = 1.0
    # rejection sampling (rs)
    rs_samples: int = 4  # judgements sampled per record and order
    rs_temperature: float = 0.8
    rs_output: str | None = None  # default: OUTPUT/rs.jsonl (rs-2.jsonl for a second rs stage)
    cache: str | None = None  # the judge's answer cache (default: omnirm's)
    use_cache: bool = True
    # inputs
    media_root: str | None = None
    allow_outside_root: bool = False
    allow_urls: bool = False
    media_limits: MediaLimits = field(default_factory=MediaLimits)  # saved as a dict
    max_record_bytes: int = MAX_RECORD_BYTES
    trust_remote_code: bool = False
    gguf_file: str | None = None
    revision: str | None = None
    freeze_media: bool = True  # media judges: the vision and audio towers stay as they are

    def __post_init__(self) -> None:
        if isinstance(self.media_limits, dict):  # as read back from training_config.json
            self.media_limits = MediaLimits(**self.media_limits)

    @property
    def stages(self) -> list[str]:
        """The stages in the order they run."""
        return [s.strip() for s in self.stage.split(",") if s.strip()]

    @property
    def stage_labels(self) -> list[str]:
        """A name per stage: the stage, and ``sft-2`` … for a stage's later runs (metrics,
        adapters and rs files are named by it)."""
        labels, seen = [], dict.fromkeys(STAGE_NAMES, 0)
        for stage in self.stages:
            seen[stage] = seen.get(stage, 0) + 1
            labels.append(stage if seen[stage] == 1 else f"{stage}-{seen[stage]}")
        return labels

    def sft_needs_rationale(self) -> bool:
        """Whether an SFT stage trains on the data's rationales (one not right after rs)."""
        stages = self.stages
        return any(s == "sft" and (i == 0 or stages[i - 1] != "rs") for i, s in enumerate(stages))

    def resolved_lr(self, stage: Stage = "sft") -> float:
        """``lr``, else 2e-4 (SFT) / 1e-5 (GRPO) with LoRA and 1e-5 / 1e-6 for all weights."""
        if self.lr is not None:
            return self.lr
        if stage == "sft":
            return 1e-5 if self.full else 2e-4
        return 1e-6 if self.full else 1e-5

    def validate(self) -> None:
        stages = self.stages
        unknown = [s for s in stages if s not in STAGE_NAMES]
        if not stages or unknown:
            raise UsageError(
                f"--stage takes a comma-separated list of {', '.join(STAGE_NAMES)} (e.g. "
                f"rs,sft,grpo), got {self.stage!r}"
            )
        for i, stage in enumerate(stages[:-1]):
            if stage == "rs" and stages[i + 1] != "sft":
                raise UsageError(
                    f"--stage {self.stage}: rs writes SFT records, so the stage after it must be "
                    "sft (it trains on them); rs may also come last"
                )
        if self.answer_format not in ANSWER_FORMATS:
            raise UsageError(
                f"--answer-format must be one of {', '.join(ANSWER_FORMATS)}, got "
                f"{self.answer_format!r}"
            )
        if self.rollouts not in ROLLOUT_ENGINES:
            raise UsageError(
                f"--rollouts must be one of {', '.join(ROLLOUT_ENGINES)}, got {self.rollouts!r}"
            )
        if not 0.0 < self.vllm_gpu_memory_utilization < 1.0:
            raise UsageError("--vllm-gpu-memory-utilization must be in (0, 1)")
        if self.rs_samples < 1:
            raise UsageError("--rs-samples must be at least 1")
        if self.rs_temperature < 0:
            raise UsageError("--rs-temperature must be 0 (greedy) or more")
        if self.save_steps is not None and self.save_steps < 1:
            raise UsageError("--save-steps must be at least 1")
        if self.epochs <= 0 or self.grpo_epochs <= 0:
            raise UsageError("--epochs and --grpo-epochs must be positive")
        if min(self.batch_size, self.grad_accum, self.prompts_per_step) < 1:
            raise UsageError("--batch-size, --grad-accum and --prompts-per-step must be at least 1")
        if self.generations < 2:
            raise UsageError(
                f"--generations must be at least 2 (advantages compare a group), got "
                f"{self.generations}"
            )
        if self.max_completion_length < 1 or self.max_length < 1:
            raise UsageError("--max-length and --max-completion-length must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError("--max-steps must be at least 1")
        if not self.full and self.lora_r < 1:
            raise UsageError("--lora-r must be at least 1 (or pass --full)")
        if self.lora_layers is not None and (self.full or self.lora_layers < 1):
            raise UsageError("--lora-layers must be at least 1, and needs LoRA (not --full)")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise UsageError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")
        if self.temperature <= 0:
            raise UsageError("--temperature must be positive (GRPO samples its rollouts)")
        if not 0.0 < self.top_p <= 1.0:
            raise UsageError("--top-p must be in (0, 1]")
        if self.loss_norm not in ("token", "sequence"):
            raise UsageError(f"--loss-norm must be token or sequence, got {self.loss_norm!r}")
        if self.beta < 0 or self.clip_epsilon <= 0 or self.updates_per_batch < 1:
            raise UsageError(
                "--beta must be 0 or more, --clip-epsilon positive, --updates-per-batch at least 1"
            )
