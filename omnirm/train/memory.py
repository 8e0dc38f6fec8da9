"""How much memory a training run needs, estimated before it starts (printed on stderr).

The estimate is the sum of four parts, in bytes:

- **weights**: every parameter at its element size (4 for fp32);
- **gradients and optimizer state**: each *trainable* parameter's fp32 gradient (4) and AdamW's
  two fp32 moments (8), so 12 bytes per trainable parameter (LoRA trains few);
- **activations** of the largest batch the sampler will form. With T tokens in the batch
  (rows × the widest row), hidden size h, MLP size f, a attention heads, n layers, e bytes per
  activation and S = rows × a × width² attention scores, one transformer layer keeps about
  ``e · (T · (10h + 4f) + 2S)`` for its backward (the inputs of the norms, of the q/k/v/o
  projections and of the MLP's gate, up and down projections, the residuals, and the attention
  scores and probabilities, which the CPU's attention materialises). Without gradient
  checkpointing all n layers keep theirs; with it, each layer keeps only its input
  (``e · T · h``) and one layer's set is rebuilt at a time in the backward:
  ``n · e · T · h + e · (T · (10h + 4f) + 2S)``. Only the layers the backward runs through
  count: from the lowest language-model layer with a trainable parameter up (``--lora-layers``
  on the last 8 of 30 layers: n = 8), all of them when anything below the layers trains;
- **runtime**: a fixed 0.6 GB for the interpreter, torch and the tokenizer.

It is an estimate (the allocator's caching, media towers and temporary buffers come on top, and
GPU attention kernels keep less than S), meant to tell a run that will not fit before it is
killed for memory, and to show what ``--max-length``, ``--batch-size`` and checkpointing buy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

RUNTIME_BYTES = 600 * 1024**2
GB = 1024**3


@dataclass
class MemoryEstimate:
    """The parts of a run's estimated peak memory, in bytes (see the module docs)."""

    weights: int
    trainable_state: int
    activations: int
    batch_tokens: int
    checkpointing: bool

    @property
    def total(self) -> int:
        return self.weights + self.trainable_state + self.activations + RUNTIME_BYTES

    def summary(self) -> str:
        how = "checkpointed" if self.checkpointing else "no checkpointing"
        return (
            f"memory needed ≈ {self.total / GB:.1f} GB: weights {self.weights / GB:.2f}, "
            f"gradients + AdamW {self.trainable_state / GB:.2f}, activations "
            f"{self.activations / GB:.2f} for the largest batch ({self.batch_tokens} tokens, "
            f"{how}), runtime {RUNTIME_BYTES / GB:.1f}"
        )


def largest_batch(loader: Any, lengths: Sequence[int], batch_size: int) -> tuple[int, int]:
    """(rows, width) of the batch with the most padded tokens: from the sampler's own batches
    when it lays them out (length-grouped or contrastive), else the longest record among
    ``batch_size`` rows."""
    if not len(lengths):
        return 0, 0
    batches = getattr(getattr(loader, "sampler", None), "batches", None)
    if callable(batches):
        shapes = [(len(b), max(int(lengths[i]) for i in b)) for b in batches() if len(b)]
        return max(shapes, key=lambda shape: shape[0] * shape[1])
    return min(batch_size, len(lengths)), max(int(n) for n in lengths)


_TEXT_LAYER = re.compile(r"(?:^|\.)(?:model|language_model)\.layers\.(\d+)\.")


def layers_with_gradients(model: Any, layers: int) -> int:
    """How many of the language model's ``layers`` the backward pass runs through (and so keep
    activations): from the lowest one holding a trainable parameter up; all of them when a
    trainable parameter sits outside the layers and the head (embeddings, media towers)."""
    lowest = layers
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        match = _TEXT_LAYER.search(name)
        if match:
            lowest = min(lowest, int(match.group(1)))
        elif "head" not in name.split(".")[0] and not name.startswith(("head", "score")):
            return layers
    return layers - lowest


def memory_estimate(
    model: Any,
    loader: Any,
    lengths: Sequence[int],
    config: Any,
    rows_per_record: float = 1.0,
    records_per_batch: int | None = None,
    bf16: bool = False,
) -> MemoryEstimate:
    """The estimate for training ``model`` (a reward model, or a causal LM) on the batches
    ``loader`` forms from records of ``lengths`` tokens (``rows_per_record``: model rows per
    record, 1 when packed; ``records_per_batch``: default ``config.batch_size``; ``bf16``: the
    run uses bf16 mixed precision, so activations take 2 bytes)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    per_batch = config.batch_size if records_per_batch is None else records_per_batch
    records, width = largest_batch(loader, lengths, per_batch)
    rows = max(1, round(records * rows_per_record)) if records else 0
    text = getattr(model, "backbone", model).config
    text = text.get_text_config() if hasattr(text, "get_text_config") else text
    hidden = int(text.hidden_size)
    mlp = int(getattr(text, "intermediate_size", 4 * hidden))
    heads = int(text.num_attention_heads)
    layers = layers_with_gradients(model, int(text.num_hidden_layers))
    element = 2 if bf16 else 4
    tokens = rows * width
    scores = rows * heads * width * width
    per_layer = element * (tokens * (10 * hidden + 4 * mlp) + 2 * scores)
    if config.gradient_checkpointing:
        activations = layers * element * tokens * hidden + per_layer
    else:
        activations = layers * per_layer
    return MemoryEstimate(
        weights, 12 * trainable, activations, tokens, config.gradient_checkpointing
    )


#: glibc's ``mallopt`` parameter for the size from which blocks are mapped, not taken from the
#: heap, and the threshold set here.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 16 * 1024**2


def release_freed_activations() -> bool:
    """Fix glibc's mmap threshold at 16 MiB, so that the large blocks a training step frees go
    back to the system at once while smaller ones are reused from the heap. Returns whether it
    was set (glibc on Linux only).

    glibc raises the threshold to the size of every mapped block that is freed (up to 32 MiB), so
    after the first step a CPU step's activations come from the heap, and memory freed in the
    middle of the heap is kept: on SmolLM2-135M with gradient checkpointing the resident memory
    grew by about 25 MB per layer per 1,000 tokens over what autograd held. A fixed threshold
    (setting it turns the adjustment off) keeps the peak down; at glibc's starting value (128 KiB)
    every block of a step was mapped anew and its pages faulted in: 50 million page faults and
    twice the wall time on 32 records (``benchmarks/bench_train_vs_trl.py``), against half a
    million at 16 MiB, with the peak still below TRL's.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # another C library (musl): its allocator returns large blocks already
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def huge_pages_for_activations() -> bool:
    """Ask torch to place its large CPU blocks (2 MiB and more) on transparent huge pages
    (``THP_MEM_ALLOC_ENABLE=1``), unless the environment says otherwise. Torch reads the variable
    once, at its first allocation, so this acts only before torch is imported (the training
    commands call it first); returns whether it is in effect. With the kernel's THP in
    ``madvise`` mode (the usual default) a mapped block of activations then costs one page fault
    per 2 MiB instead of per 4 KiB; measured with the 16 MiB threshold above: a third lower peak
    memory on 32 records."""
    import os
    import sys

    if "torch" not in sys.modules:
        os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    return os.environ.get("THP_MEM_ALLOC_ENABLE") == "1"
