"""The generative-judge recipe: ``omnirm train r1``.

A judge reads the record's criterion, prompt and both responses (the conversations of
:mod:`omnirm.judging.conversations`, default pairwise template) and writes its reasoning, then
``[[A]]`` / ``[[B]]`` (``[[C]]`` for a tie with ``ties``), or with ``answer_format="json"``
Omni-RRM's JSON object. Stages run in the order given (``--stage rs,sft,grpo``):

- **sft** (:mod:`.sft`): learn to write a rationale and the gold verdict — the records'
  ``rationale``, or, right after an rs stage, the answers it kept;
- **rs** (:mod:`.rs`): rejection sampling — the current model judges every record several times
  in both orders (each process its share of the records), and the samples right in both orders
  are written as SFT records (the stage after rs must be sft, which trains on them; rs may also
  come last);
- **grpo** (:mod:`.grpo`): sample answers and learn from their rewards (:mod:`.rewards`).

Training stages use a LoRA adapter by default (``full`` trains all weights); after each the
adapter is saved and merged, and the next stage starts a fresh one on the merged model (its KL
reference). Examples come in both presentation orders (:mod:`.data`). The run uses an
accelerate ``Accelerator`` as ``train bt`` does (one CPU, or ``accelerate launch``), bf16 only on
CUDA GPUs that support it, and refuses a non-empty output folder unless ``force`` or ``resume``.
Each stage starts from the seed plus its index, so a stage does the same whatever ran before.

**Checkpoints** (:mod:`omnirm.train.resume`, as ``train bt``): a state at the start, after every
stage, and every ``save_steps`` optimizer steps — the trainable weights, optimizer, scheduler,
random states, the stage and step, the report so far. ``resume`` checks the saved
``training_config.json`` (the same data, model and settings), replays the finished stages from
their saved adapters (or weights, with ``full``), restores the state, skips the data already
seen and cuts ``metrics.jsonl`` back to the state's step: the result equals an uninterrupted
run's. An rs stage continues its file (:mod:`.rs`).

**Observability**: every step's metrics go to ``metrics.jsonl`` (see :mod:`.sft`,
:mod:`.grpo`), a progress bar with the latest metrics to stderr (plain lines when stderr is not
a terminal; none with ``-q``), and with ``plot`` the learning curves to ``curves.png``
(:mod:`.plots`).

The output folder is a judge: ``omnirm score --judge hf:DIR`` loads it as it is (see
:mod:`.policy` for its layout).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omnirm.train.r1.config import STAGES, R1Config

__all__ = ["STAGES", "R1Config", "R1Result", "train_r1"]

#: Settings a resumed run may change (a warning names them); every other one must be equal.
RESUMABLE_CHANGES = (
    "data", "output", "media_root", "allow_outside_root", "allow_urls", "media_limits",
    "gradient_checkpointing", "share_prefix", "max_record_bytes", "save_steps", "plot", "cache", "use_cache",
    "vllm_gpu_memory_utilization",
)  # fmt: skip
STAGE_WEIGHTS = "stages"  # with full: each finished stage's weights, to replay on --resume


@dataclass
class R1Result:
    """What a run reports: optimizer steps per stage, examples, and each stage's last metrics."""

    output: str = ""
    steps: dict[str, int] = field(default_factory=dict)
    records: int = 0
    examples: int = 0
    left_out: int = 0
    last: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    rs_files: dict[str, str] = field(default_factory=dict)  # rs stage → the records it wrote
    weights_sha256: str = ""  # of the saved judge's weights
    processes_agree: bool | None = None  # several processes: all ended with these weights


def train_r1(config: R1Config) -> R1Result:
    """Train a generative judge as ``config`` says and save it to ``config.output``.

    >>> train_r1(R1Config(model="HuggingFaceTB/SmolLM2-135M-Instruct", data="pairs.jsonl",
    ...                   output="judge", stage="sft"))  # doctest: +SKIP
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, set_seed

    from omnirm import console
    from omnirm.errors import OmnirmError, UsageError
    from omnirm.judging.conversations import ConversationBuilder
    from omnirm.models.checkpoint import detect_kind, lora_settings
    from omnirm.prompts.templates import default_template
    from omnirm.train.bt import (
        allow_precision,
        bf16_supported,
        check_launch,
        media_resolver,
        world_line,
    )
    from omnirm.train.memory import release_freed_activations
    from omnirm.train.r1.data import load_examples
    from omnirm.train.r1.grpo import train_grpo
    from omnirm.train.r1.policy import load_policy, save_adapter, save_judge
    from omnirm.train.r1.rewards import load_reward_fn
    from omnirm.train.r1.rollouts import (
        RolloutEngine,
        VllmRollouts,
        check_vllm_rollouts,
        make_rollouts,
    )
    from omnirm.train.r1.rs import rejection_sample, rs_path, weights_digest
    from omnirm.train.r1.sft import train_sft
    from omnirm.train.resume import (
        check_same_run,
        clear_output,
        file_sha256,
        keep_trainable_only,
        prepare_output,
        read_saved_config,
        run_record,
        save_state,
        saved_progress,
    )

    began = time.perf_counter()
    config.validate()
    release_freed_activations()  # as train bt: a step's freed activations go back at once
    functions = [(spec, load_reward_fn(spec)) for spec in config.reward_fns]
    output = Path(config.output)
    # bf16 by default on GPUs only: on CPUs (where train bt defaults to it) a resumed GRPO run in
    # bf16 did not end with the weights of an uninterrupted one
    use_bf16 = (
        config.bf16 if config.bf16 is not None else torch.cuda.is_available() and bf16_supported()
    )
    allow_precision("bf16" if use_bf16 else "no")
    accelerator = Accelerator(
        mixed_precision="bf16" if use_bf16 else "no",
        gradient_accumulation_steps=config.grad_accum,
        # the SFT sampler reshuffles with its stage's seed + epoch: a resumed run sees the same
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        cpu=not torch.cuda.is_available(),
    )
    check_launch(accelerator.num_processes)
    check_vllm_rollouts(config, accelerator.num_processes)
    set_seed(config.seed)
    main = accelerator.is_main_process
    how = prepare_output(config, command="omnirm train r1")
    record = run_record(
        config,
        bf16=use_bf16,
        processes=accelerator.num_processes,
        data_sha256=file_sha256(config.data),
    )
    record.update(
        lr=config.lr,  # as asked, so the saved config is a valid --config
        lr_by_stage={
            stage: config.resolved_lr(stage)  # type: ignore[arg-type]
            for stage in dict.fromkeys(config.stages)
            if stage != "rs"
        },
        template="built-in pairwise",
    )
    labels = config.stage_labels
    start_stage = start_step = 0
    result = R1Result(output=str(output))
    if how == "resume":
        saved = read_saved_config(output)
        record.update(base_model=saved.get("base_model"), base_revision=saved.get("base_revision"))
        same = [name for name in record if name not in RESUMABLE_CHANGES]
        warnings = check_same_run(
            saved, record, output, same_run=same, harmless=RESUMABLE_CHANGES, bt_defaults=False
        )
        for warning in warnings if main else []:
            console.warn(warning)
        progress = saved_progress(output)
        start_stage = int(progress.position.get("stage", 0))
        start_step = int(progress.position.get("step", 0))
        if progress.result:
            result = R1Result(**progress.result)
    accelerator.wait_for_everyone()
    if how == "clear" and main:
        clear_output(output)
        console.info(f"--force: cleared {output}")
    accelerator.wait_for_everyone()

    policy, resolved = load_policy(config)
    builder = ConversationBuilder(  # the judge's conversations, with the media it reads
        default_template("pairwise"),
        media_resolver(config, config.data),
        policy.modalities,
        ties=config.ties,
        answer_format=config.answer_format,
    )
    record.update(base_model=resolved.reference, base_revision=resolved.revision)
    loaded = load_examples(
        config.data,
        builder,
        sft=config.sft_needs_rationale(),
        criteria=config.criteria,
        max_bytes=config.max_record_bytes,
        report=main,
        answer_format=config.answer_format,
    )
    if not loaded.examples:
        raise UsageError(f"{config.data}: no record has a pairwise preference to train on")
    result.records, result.examples, result.left_out = (
        loaded.records,
        len(loaded.examples),
        loaded.left_out,
    )
    if main:
        output.mkdir(parents=True, exist_ok=True)
        (output / "training_config.json").write_text(json.dumps(record, indent=2) + "\n")
        _metrics_up_to(output / "metrics.jsonl", labels, start_stage, start_step)
        if how == "resume":
            console.info(
                f"--resume: continuing {output} at stage {labels[min(start_stage, len(labels) - 1)]}"
                f", step {start_step}"
                if start_stage < len(labels)
                else "--resume: all stages were done; saving the judge again"
            )
        console.info(
            f"training a judge on {loaded.records} records ({len(loaded.examples)} examples, "
            f"both orders), stages {config.stage}, {world_line(accelerator)}"
        )
    keep_trainable_only(accelerator)
    if how != "resume":  # so that a run stopped before its first checkpoint can be resumed
        save_state(accelerator, output, 0, asdict(result), {"stage": 0, "step": 0})

    def log(entry: dict[str, Any]) -> None:
        result.last[entry["stage"]] = entry
        if main:
            with (output / "metrics.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")

    kind, _ = detect_kind(resolved.folder, resolved.gguf_file, config.trust_remote_code)
    settings = lora_settings(config, kind, resolved.folder, resolved.gguf_file)
    trained = False
    sampler: RolloutEngine | None = make_rollouts(config)
    for index, (stage, label) in enumerate(zip(config.stages, labels, strict=True)):
        if stage != "rs":
            trained = True
        if index < start_stage:  # done before the run was stopped: replay its result
            _replay(stage, label, output, policy, settings, config)
            continue
        set_seed(config.seed + index)
        if stage == "rs":  # every process judges its share; the main one merges the file
            entry = rejection_sample(
                config,
                policy,
                builder,
                label,
                resolved.reference,
                accelerator=accelerator,
                resume=how == "resume",
                replace=config.force,
            )
            result.rs_files[label] = entry["path"]
            log(entry)
            accelerator.wait_for_everyone()  # the file is there before the next stage reads it
        else:
            examples = loaded.examples
            if index and config.stages[index - 1] == "rs":
                source = str(rs_path(config, labels[index - 1]))
                examples = load_examples(
                    source,
                    builder,
                    sft=True,
                    criteria=config.criteria,
                    max_bytes=config.max_record_bytes,
                    report=main,
                    answer_format=config.answer_format,
                ).examples
                if not examples:
                    raise UsageError(
                        f"{source}: rejection sampling kept no answer to train on (the model "
                        "was right in both orders in none of its samples): try more "
                        "--rs-samples, another --rs-temperature, or sft on rationales first"
                    )
            if stage == "grpo" and config.rollouts == "vllm":
                if isinstance(sampler, VllmRollouts):  # an earlier GRPO stage's
                    sampler.close()
                # the engine starts on this stage's weights: the base's files, or a copy of
                # the weights an earlier stage left (a GGUF base: its dequantised weights)
                changed = any(earlier != "rs" for earlier in config.stages[:index])
                start = None if changed or resolved.gguf_file else resolved.path
                sampler = VllmRollouts(config, policy, start, label)
            policy.attach_lora(config, settings)
            checkpoints = StageCheckpoints(
                accelerator, output, config.save_steps, index, lambda: asdict(result)
            )
            resume_at = start_step if index == start_stage else 0
            if stage == "sft":
                steps = train_sft(
                    config, policy, examples, accelerator, log,
                    label=label, checkpoints=checkpoints, start_step=resume_at,
                    seed=config.seed + index,
                )  # fmt: skip
            else:
                steps = train_grpo(
                    config, policy, examples, accelerator, log, functions,
                    label=label, checkpoints=checkpoints, start_step=resume_at, sampler=sampler,
                )  # fmt: skip
            result.steps[label] = steps
            accelerator.free_memory()  # the next stage prepares (and saves) its own objects
            accelerator.wait_for_everyone()
            if main:
                save_adapter(output, label, policy)
                if policy.lora is None and index < len(labels) - 1:
                    _save_stage_weights(output / STAGE_WEIGHTS / label, policy)
            policy.merge()
        save_state(accelerator, output, 0, asdict(result), {"stage": index + 1, "step": 0})
    if isinstance(sampler, VllmRollouts):
        sampler.close()
    accelerator.wait_for_everyone()
    policy.merge()
    result.weights_sha256 = weights_digest(policy.net)
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        digests = gather_object([result.weights_sha256])
        result.processes_agree = len(set(digests)) == 1
        if not result.processes_agree:
            raise OmnirmError(
                f"the {accelerator.num_processes} processes ended with different weights "
                f"({', '.join(d[:12] for d in digests)}): data-parallel training went wrong"
            )
    result.seconds = round(time.perf_counter() - began, 3)
    if main:
        if trained:
            save_judge(output, policy)
            console.info(f"saved the judge to {output} (omnirm score --judge hf:{output})")
        (output / "train_result.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
        if config.plot:
            from omnirm.train.r1.plots import plot_metrics

            console.info(f"learning curves: {plot_metrics(output)}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result


class StageCheckpoints:
    """A training stage's states: restored when the run resumes inside the stage, written every
    ``every`` optimizer steps (see :mod:`omnirm.train.resume`)."""

    def __init__(
        self,
        accelerator: Any,
        output: Path,
        every: int | None,
        stage: int,
        report: Any,
    ) -> None:
        self.accelerator, self.output, self.every, self.stage = accelerator, output, every, stage
        self.report = report

    def restore(self, step: int) -> None:
        """Load the state saved at ``step`` of this stage (after the stage's objects are
        prepared); nothing for step 0."""
        from omnirm.errors import UsageError
        from omnirm.train.resume import load_state

        if not step:
            return
        progress = load_state(self.accelerator, self.output)
        found = (progress.position.get("stage"), progress.position.get("step"))
        if found != (self.stage, step):
            raise UsageError(
                f"--resume: the usable state in {self.output} is at stage {found[0]}, step "
                f"{found[1]}, not where the newest one was; pass --force to start over"
            )

    def after_step(self, step: int) -> None:
        from omnirm.train.resume import save_state

        if self.every and step % self.every == 0:
            position = {"stage": self.stage, "step": step}
            save_state(self.accelerator, self.output, step, self.report(), position)


def _replay(
    stage: str, label: str, output: Path, policy: Any, settings: Any, config: R1Config
) -> None:
    """Bring ``policy`` to where the finished stage ``label`` left it (``--resume``)."""
    from omnirm.train.r1.policy import ADAPTERS

    if stage == "rs":
        return
    if settings is not None and not config.full:
        from peft import PeftModel

        policy.net = PeftModel.from_pretrained(policy.net, output / ADAPTERS / label)
        policy.lora = settings
        policy.merge()
        return
    from safetensors.torch import load_model

    load_model(policy.net, str(output / STAGE_WEIGHTS / label / "model.safetensors"))


def _save_stage_weights(folder: Path, policy: Any) -> None:
    from safetensors.torch import save_model

    folder.mkdir(parents=True, exist_ok=True)
    save_model(policy.net, str(folder / "model.safetensors"))


def _metrics_up_to(path: Path, labels: list[str], stage: int, step: int) -> None:
    """Keep the metrics of what a resumed run keeps: stages before ``stage``, and its steps up
    to ``step`` (a new run starts an empty file)."""
    kept = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                at = labels.index(entry["stage"])
            except (ValueError, KeyError, TypeError):
                continue
            if at < stage or (at == stage and int(entry.get("step", 0)) <= step):
                kept.append(line + "\n")
    path.write_text("".join(kept), encoding="utf-8")
