"""``--device``: where a model runs, checked before anything is loaded onto it."""

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
