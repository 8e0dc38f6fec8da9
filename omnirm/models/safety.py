"""What omnirm will load from a model folder, checked before transformers or peft opens it.

- **No code from a model unless the command line allows it.** transformers imports Python files
  that a folder's configs name in ``auto_map`` (a custom tokenizer, processor or model class)
  when ``trust_remote_code`` is on. omnirm turns it on only for ``--trust-remote-code`` given on
  that command's line; a checkpoint's ``omnirm_config.json`` (``"trust_remote_code": true``) or a
  config's ``auto_map`` never does. Without the flag, a folder that names code is refused with
  a message naming the flag, before anything of it is imported.
- **Weights from safetensors only.** Pickled weights (``pytorch_model.bin``,
  ``adapter_model.bin``, ``*.pt``) can run code when they are read; omnirm never opens them, and
  says so, rather than letting ``torch.load`` fail with a message that suggests unsafe loading.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omnirm.errors import UsageError

TRUST_FLAG = "--trust-remote-code"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def code_references(folder: str | Path) -> list[str]:
    """``FILE: auto_map`` entries of the configs in ``folder`` (the code they would import)."""
    found = []
    for config in sorted(Path(folder).glob("*config*.json")):
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # transformers reports an unreadable config itself
        auto_map = data.get("auto_map") if isinstance(data, dict) else None
        if auto_map:
            found.append(f"{config.name}: auto_map {json.dumps(auto_map)}")
    return found


def refuse_remote_code(folder: str | Path, trust_remote_code: bool, label: str) -> None:
    """Raise :class:`UsageError` when ``folder`` names Python code to import and the command
    line did not pass ``--trust-remote-code``."""
    if trust_remote_code:
        return
    references = code_references(folder)
    if references:
        raise UsageError(
            f"{label}: {folder} names Python code to run ({'; '.join(references)}); omnirm "
            f"runs code from a model only when you pass {TRUST_FLAG} on the command line "
            "(a model's own config never turns it on). Read the code before you do."
        )


def require_safetensors(folder: str | Path, label: str, *, stem: str = "model") -> None:
    """Raise :class:`UsageError` unless ``folder`` holds safetensors weights: pickled weights
    are refused unopened (``stem`` names the files: ``model``, ``adapter_model``)."""
    path = Path(folder)
    if any(path.glob("*.safetensors")) or (path / f"{stem}.safetensors.index.json").is_file():
        return
    pickled = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickled:
        raise UsageError(
            f"{label}: only safetensors weights are loaded; {path} has only pickled weights "
            f"({', '.join(pickled)}), which omnirm never opens (unpickling can run code). "
            f"Use a copy saved as safetensors ({stem}.safetensors)."
        )
    raise UsageError(f"{label}: {path} holds no weights (expected {stem}.safetensors)")


def check_model_folder(
    folder: str | Path, *, gguf_file: str | None, trust_remote_code: bool, label: str
) -> None:
    """The checks above for a model that transformers loads from ``folder`` (a GGUF file is
    read by transformers itself, without pickle or code)."""
    refuse_remote_code(folder, trust_remote_code, label)
    if gguf_file is None:
        require_safetensors(folder, label)


def weight_options(gguf_file: str | None) -> dict[str, Any]:
    """``from_pretrained`` options that keep transformers on safetensors (GGUF files aside)."""
    return {} if gguf_file else {"use_safetensors": True}
