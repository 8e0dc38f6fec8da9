"""``--device`` and ``--dtype`` resolved before anything loads."""

from __future__ import annotations

import pytest
import torch

from omnirm.errors import UsageError
from omnirm.models.devices import inference_dtype, precision_name, resolve_device


def test_auto_dtype_is_bf16_only_on_cuda_devices_that_have_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert inference_dtype(torch.device("cpu")) is torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert inference_dtype(torch.device("cuda:0")) is torch.bfloat16
    assert inference_dtype(torch.device("cpu")) is torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a V100
    assert inference_dtype(torch.device("cuda:0")) is torch.float32


def test_explicit_dtypes_and_their_precision_names() -> None:
    cpu = torch.device("cpu")
    named = {d: precision_name(inference_dtype(cpu, d)) for d in ("float32", "bfloat16", "float16")}
    assert named == {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
    with pytest.raises(UsageError, match="--dtype int8: expected one of auto, float32"):
        inference_dtype(cpu, "int8")


def test_unknown_or_missing_devices_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="not a device name"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device"):
            resolve_device("cuda")
