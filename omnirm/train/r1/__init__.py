"""The generative-judge recipe: ``omnirm train r1``.

A judge reads the record's criterion, prompt and both responses (the conversations of
:mod:`omnirm.judging.conversations`, default pairwise template) and writes its reasoning, then
``[[A]]`` / ``[[B]]`` (``[[C]]`` for a tie with ``ties``). Stages, in this order when both are
asked (``--stage sft,grpo``):

1. **SFT** (:mod:`.sft`): learn to write the records' ``rationale`` and the gold verdict;
2. **GRPO** (:mod:`.grpo`): sample answers and learn from their rewards (:mod:`.rewards`).

Both train a LoRA adapter by default (``full`` trains all weights); after each stage the adapter
is saved and merged, and the next stage starts a fresh one on the merged model (its KL
reference). Examples come in both presentation orders (:mod:`.data`). The run uses an
accelerate ``Accelerator`` as ``train bt`` does (one CPU, or ``accelerate launch``), bf16 only on
CUDA GPUs that support it, and refuses a non-empty output folder unless ``force``.

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


def train_r1(config: R1Config) -> R1Result:
    """Train a generative judge as ``config`` says and save it to ``config.output``.

    >>> train_r1(R1Config(model="HuggingFaceTB/SmolLM2-135M-Instruct", data="pairs.jsonl",
    ...                   output="judge", stage="sft"))  # doctest: +SKIP
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from omnirm import console
    from omnirm.judging.conversations import ConversationBuilder
    from omnirm.models.checkpoint import detect_kind, lora_settings
    from omnirm.prompts.templates import default_template
    from omnirm.train.bt import bf16_supported, check_launch, media_resolver, world_line
    from omnirm.train.r1.data import load_examples
    from omnirm.train.r1.grpo import train_grpo
    from omnirm.train.r1.policy import load_policy, save_adapter, save_judge
    from omnirm.train.r1.rewards import load_reward_fn
    from omnirm.train.r1.sft import train_sft
    from omnirm.train.resume import clear_output, file_sha256, prepare_output, run_record

    began = time.perf_counter()
    config.validate()
    functions = [(spec, load_reward_fn(spec)) for spec in config.reward_fns]
    output = Path(config.output)
    use_bf16 = config.bf16 if config.bf16 is not None else bf16_supported()
    accelerator = Accelerator(
        mixed_precision="bf16" if use_bf16 else "no",
        gradient_accumulation_steps=config.grad_accum,
        cpu=not torch.cuda.is_available(),
    )
    check_launch(accelerator.num_processes)
    set_seed(config.seed)
    main = accelerator.is_main_process
    how = prepare_output(config, command="omnirm train")
    accelerator.wait_for_everyone()
    if how == "clear" and main:
        clear_output(output)
        console.info(f"--force: cleared {output}")
    accelerator.wait_for_everyone()

    builder = ConversationBuilder(
        default_template("pairwise"),
        media_resolver(config, config.data),
        frozenset(),  # text judges (load_policy refuses other models)
        ties=config.ties,
    )
    policy, resolved = load_policy(config)
    loaded = load_examples(
        config.data,
        builder,
        sft="sft" in config.stages,
        criteria=config.criteria,
        max_bytes=config.max_record_bytes,
        report=main,
    )
    if not loaded.examples:
        from omnirm.errors import UsageError

        raise UsageError(f"{config.data}: no record has a pairwise preference to train on")
    record = run_record(
        config,
        bf16=use_bf16,
        processes=accelerator.num_processes,
        data_sha256=file_sha256(config.data),
    )
    record.update(
        lr=config.lr,  # as asked, so the saved config is a valid --config
        lr_by_stage={stage: config.resolved_lr(stage) for stage in config.stages},
        base_model=resolved.reference,
        base_revision=resolved.revision,
        template="built-in pairwise",
    )
    result = R1Result(
        output=str(output),
        records=loaded.records,
        examples=len(loaded.examples),
        left_out=loaded.left_out,
    )
    if main:
        output.mkdir(parents=True, exist_ok=True)
        (output / "training_config.json").write_text(json.dumps(record, indent=2) + "\n")
        (output / "metrics.jsonl").write_text("")
        console.info(
            f"training a judge on {loaded.records} records ({len(loaded.examples)} examples, "
            f"both orders), stages {config.stage}, {world_line(accelerator)}"
        )

    def log(entry: dict[str, Any]) -> None:
        result.last[entry["stage"]] = entry
        if main:
            with (output / "metrics.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")

    kind, _ = detect_kind(resolved.folder, resolved.gguf_file, config.trust_remote_code)
    for stage in config.stages:
        policy.attach_lora(config, lora_settings(config, kind, resolved.folder, resolved.gguf_file))
        if stage == "sft":
            result.steps["sft"] = train_sft(config, policy, loaded.examples, accelerator, log)
        else:
            result.steps["grpo"] = train_grpo(
                config, policy, loaded.examples, accelerator, log, functions
            )
        accelerator.wait_for_everyone()
        if main:
            save_adapter(output, stage, policy)
        policy.merge()
    accelerator.wait_for_everyone()
    result.seconds = round(time.perf_counter() - began, 3)
    if main:
        save_judge(output, policy)
        (output / "train_result.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
        console.info(f"saved the judge to {output} (omnirm score --judge hf:{output})")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result
