"""The generative-judge options, shared by every command that can run a judge (score, bench).

Each command lists them in its signature (typer needs the parameters), spelled the same way
everywhere through these aliases; :func:`judge_settings` gathers their values."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

PANEL = "Generative judge"


class JudgeMode(str, Enum):
    PAIRWISE = "pairwise"
    POINTWISE = "pointwise"


class JudgeOrders(str, Enum):
    BOTH = "both"
    AB = "ab"


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


def judge_options(values: dict[str, Any]) -> Any:
    """A :class:`~omnirm.runners.JudgeOptions` from a command's parameter values (its
    ``locals()``): the judge options above plus ``criteria``, ``batch_size``, ``device`` and
    ``trust_remote_code``."""
    from omnirm.runners import JudgeOptions

    device = values.get("device")
    return JudgeOptions(
        spec=values["judge"],
        revision=values.get("revision"),
        mode=values["mode"].value,
        orders=values["orders"].value,
        ties=values["ties"],
        retries=values["retries"],
        prompt_template=values["prompt_template"],
        criteria=values.get("criteria"),
        base_url=values["base_url"],
        api_key_env=values["api_key_env"],
        concurrency=values["concurrency"],
        timeout=values["timeout"],
        batch_size=values.get("batch_size", 8),
        device=None if device in (None, "auto") else device,
        tensor_parallel_size=values["tensor_parallel_size"],
        gpu_memory_utilization=values["gpu_memory_utilization"],
        temperature=values["temperature"],
        seed=values["seed"],
        max_new_tokens=values["max_new_tokens"],
        cache=values["cache"],
        use_cache=not values["no_cache"],
        trust_remote_code=values.get("trust_remote_code", False),
    )
