"""``--device`` and ``--dtype``: where a model runs and in what precision, checked before
anything is loaded onto it."""

from __future__ import annotations

from typing import Any

from omnirm.errors import UsageError


def resolve_device(spec: str | None) -> Any:
    """The ``torch.device`` for ``--device`` (``auto``/None: CUDA when there is one, else the
    CPU). Raises :class:`UsageError` for a name torch does not know or a device this machine
    does not have."""
    import torch

    if spec in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {spec}: not a device name (cpu, cuda, cuda:1, mps …)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {spec}: this machine has no CUDA device that torch can use "
                "(use --device cpu)"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UsageError(f"--device {spec}: this machine has {count} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {spec}: MPS is not available on this machine")
    return device


#: ``--dtype`` choices, and the short names ``scored_by.precision`` gives them.
DTYPES = ("auto", "float32", "bfloat16", "float16")
PRECISIONS = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def inference_dtype(device: Any, choice: str = "auto") -> Any:
    """The ``torch.dtype`` weights load in for inference on ``device`` (a ``torch.device``):
    ``auto`` is bf16 on a CUDA device that supports it (half the memory, the precision
    reward models are trained in there) and fp32 elsewhere (a CPU's exact reference)."""
    import torch

    if choice not in DTYPES:
        raise UsageError(f"--dtype {choice}: expected one of {', '.join(DTYPES)}")
    if choice == "auto":
        cuda = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda else torch.float32
    return getattr(torch, choice)


def precision_name(dtype: Any) -> str:
    """``fp32``, ``bf16`` or ``fp16`` for a ``torch.dtype``."""
    return PRECISIONS[str(dtype).removeprefix("torch.")]
