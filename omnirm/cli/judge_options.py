"""The generative-judge options, shared by every command that can run a judge (score, bench,
bon).

Each command lists them in its signature (typer needs the parameters), spelled the same way
everywhere through these aliases, with the defaults of :data:`JUDGE`
(:class:`~omnirm.options.JudgeOptions`); :func:`judge_options` gathers their values."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from omnirm.options import JUDGE_DEFAULTS, JudgeOptions, SamplingOptions

#: The defaults of the options below (declare them as ``= JUDGE.retries`` …).
JUDGE = JUDGE_DEFAULTS

PANEL = "Generative judge"


class JudgeMode(str, Enum):
    PAIRWISE = "pairwise"
    POINTWISE = "pointwise"


class JudgeOrders(str, Enum):
    BOTH = "both"
    AB = "ab"


class JudgeVerdict(str, Enum):
    TEXT = "text"
    PROBS = "probs"
    RATIONALE_PROBS = "rationale-probs"


class JudgeAnswerFormat(str, Enum):
    MARKS = "marks"
    JSON = "json"


JudgeOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        help="A generative judge instead of a reward model: hf:PATH or hf:ORG/NAME (a "
        "transformers model: folder, .gguf or hub id), openai:MODEL (any OpenAI-compatible "
        "server; see --base-url), vllm:PATH or vllm:ORG/NAME (GPU). --revision picks a hub "
        "revision.",
        metavar="SPEC",
        rich_help_panel=PANEL,
    ),
]
ModeOpt = Annotated[
    JudgeMode,
    typer.Option(
        help="pairwise: a verdict per pair; pointwise: a 1-10 score per response.",
        rich_help_panel=PANEL,
    ),
]
OrdersOpt = Annotated[
    JudgeOrders,
    typer.Option(
        help="both: judge each pair as (A, B) and (B, A) and combine; ab: once.",
        rich_help_panel=PANEL,
    ),
]
VerdictOpt = Annotated[
    JudgeVerdict,
    typer.Option(
        help="text: parse the verdict the judge writes; probs: read its probability of each "
        "verdict letter at the verdict position (every pair gets a verdict and a graded margin; "
        "hf: judges, pairwise); rationale-probs: the same after the reasoning it writes first.",
        rich_help_panel=PANEL,
    ),
]
AnswerFormatOpt = Annotated[
    JudgeAnswerFormat,
    typer.Option(
        help="How the judge is asked to answer: reasoning, then [[A]] (marks), or Omni-RRM's "
        "JSON object with reasoning, score_A, score_B and better (json; for judges trained so, "
        "e.g. omnirm train r1 --answer-format json). Both are parsed either way.",
        rich_help_panel=PANEL,
    ),
]
TiesOpt = Annotated[
    bool,
    typer.Option(help="Offer the judge a tie verdict, [[C]].", rich_help_panel=PANEL),
]
RetriesOpt = Annotated[
    int,
    typer.Option(
        help="Ask again this many times when an answer has no single verdict.",
        rich_help_panel=PANEL,
    ),
]
PromptTemplateOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        help="Your own judge prompt: a TOML file with system and user strings.",
        dir_okay=False,
        rich_help_panel=PANEL,
    ),
]
BaseUrlOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        help="openai: server URL, e.g. http://localhost:8000/v1 "
        "\\[default: $OPENAI_BASE_URL or the OpenAI API].",
        rich_help_panel=PANEL,
    ),
]
ApiKeyEnvOpt = Annotated[
    str,
    typer.Option(
        help="openai: the environment variable holding the API key.", rich_help_panel=PANEL
    ),
]
ConcurrencyOpt = Annotated[
    int, typer.Option(help="openai: requests in flight at once.", rich_help_panel=PANEL)
]
TimeoutOpt = Annotated[
    float, typer.Option(help="openai: seconds to wait for an answer.", rich_help_panel=PANEL)
]
TensorParallelSizeOpt = Annotated[
    int, typer.Option(help="vllm: GPUs to shard the judge over.", rich_help_panel=PANEL)
]
GpuMemoryUtilizationOpt = Annotated[
    float,
    typer.Option(help="vllm: share of GPU memory the engine may take.", rich_help_panel=PANEL),
]
TemperatureOpt = Annotated[
    float, typer.Option(help="Sampling temperature (0 = greedy).", rich_help_panel=PANEL)
]
SeedOpt = Annotated[
    int,
    typer.Option(help="Sampling seed, where the backend honours one.", rich_help_panel=PANEL),
]
MaxNewTokensOpt = Annotated[
    int, typer.Option(help="Longest answer, in tokens.", rich_help_panel=PANEL)
]
CacheOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        help="Answer cache (SQLite) \\[default: ~/.cache/omnirm/judge.sqlite].",
        dir_okay=False,
        rich_help_panel=PANEL,
    ),
]
NoCacheOpt = Annotated[
    bool,
    typer.Option(
        "--no-cache", help="Neither read nor write the answer cache.", rich_help_panel=PANEL
    ),
]


def judge_options(
    *,
    judge: str,
    revision: str | None,
    mode: JudgeMode,
    orders: JudgeOrders,
    verdict: JudgeVerdict,
    answer_format: JudgeAnswerFormat,
    ties: bool,
    retries: int,
    prompt_template: Path | None,
    criteria: str | None,
    base_url: str | None,
    api_key_env: str,
    concurrency: int,
    timeout: float,
    batch_size: int,
    device: str | None,
    tensor_parallel_size: int,
    gpu_memory_utilization: float,
    temperature: float,
    seed: int,
    max_new_tokens: int,
    cache: Path | None,
    no_cache: bool,
    trust_remote_code: bool,
) -> JudgeOptions:
    """The :class:`~omnirm.options.JudgeOptions` of a command's judge options (pass each by
    name), with its ``--criteria``, ``--batch-size``, ``--device`` (``auto``: the backend's
    choice), ``--revision`` and ``--trust-remote-code``."""
    return JudgeOptions(
        spec=judge,
        revision=revision,
        mode=mode.value,
        orders=orders.value,
        verdict=verdict.value,
        answer_format=answer_format.value,
        ties=ties,
        retries=retries,
        prompt_template=prompt_template,
        criteria=criteria,
        base_url=base_url,
        api_key_env=api_key_env,
        concurrency=concurrency,
        timeout=timeout,
        batch_size=batch_size,
        device=None if device in (None, "auto") else device,
        tensor_parallel_size=tensor_parallel_size,
        gpu_memory_utilization=gpu_memory_utilization,
        sampling=SamplingOptions(temperature=temperature, seed=seed, max_new_tokens=max_new_tokens),
        cache=cache,
        use_cache=not no_cache,
        trust_remote_code=trust_remote_code,
    )
