"""The output folder of ``omnirm train bt|r1`` and continuing a run saved there (``--resume``).

- **Output folder**: a folder that is not empty is refused unless ``--force`` (which clears it,
  only when it is an omnirm training folder that holds none of the run's inputs) or
  ``--resume``, so a trained model is never overwritten by accident, nor mixed with the leftovers
  (``merged/``, ``eval_rewards.jsonl``) of an earlier run.
- **Same run**: ``--resume`` compares the resolved configuration with the saved
  ``training_config.json``. A change that makes it another run (the data's content, the model,
  the learning rate, seed, epochs, batch size, number of processes, …) is refused, naming each
  changed option; a harmless one (eval file, save interval, media root, limits) is a warning.
- **State**: ``DIR/state/`` holds what the run needs to continue — the trainable parameters
  only (a LoRA adapter and the head, never the frozen base weights), the optimizer, scheduler
  and random states — and ``progress.json`` (step, processes, the size of every file), written
  last. A state is written to ``state.partial/`` and renamed into place; the one before it is
  kept as ``state.previous/``, so a state cut short (a crash mid-save, a truncated or corrupt
  file) is detected from the recorded sizes or by failing to load, and the previous one is used.
  ``position`` says where in the data the state is (``train r1``: the stage and its step).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omnirm import console
from omnirm.errors import UsageError

STATE = "state"
PREVIOUS = "state.previous"
PARTIAL = "state.partial"
PROGRESS = "progress.json"
CONFIG = "training_config.json"

#: Options that change what is trained: a resumed run must not differ in any of them.
SAME_RUN = (
    "model", "revision", "gguf_file", "trust_remote_code", "data_sha256", "epochs", "lr",
    "batch_size", "grad_accum", "max_length", "lora_r", "lora_alpha", "lora_dropout",
    "lora_layers", "full", "seed", "margin", "center_rewards", "ties", "freeze_media", "bf16",
    "weight_decay", "warmup_ratio", "max_grad_norm", "head_dropout", "criteria", "video_frames",
    "mesh_views", "mesh_size", "processes", "group_by_length", "contrastive_batches",
)  # fmt: skip
#: Options that may change between the parts of a run (a warning names them).
HARMLESS = (
    "data", "eval", "eval_batch_size", "eval_every", "save_every", "output", "media_root",
    "allow_outside_root", "allow_urls", "media_limits", "gradient_checkpointing",
    "max_record_bytes", "share_prefix",
)  # fmt: skip
#: What a user would type for a field that is not spelt as its option.
_OPTION = {
    "data_sha256": "--data (its content)",
    "gguf_file": "the GGUF file",
    "lora_alpha": "LoRA alpha",
    "head_dropout": "head dropout",
    "processes": "the number of processes",
}
#: Files whose presence marks a folder as written by ``omnirm train bt`` (what --force clears).
_MARKERS = (CONFIG, "omnirm_config.json", STATE, PREVIOUS, PARTIAL)


def prepare_output(config: Any, command: str = "omnirm train bt") -> str:
    """Check ``config.output`` before anything is written. Returns ``"new"`` (an empty or new
    folder), ``"resume"`` (a saved run to continue) or ``"clear"`` (``--force`` on an earlier
    run's folder, to be emptied by :func:`clear_output` on the main process). A config without
    ``resume`` never resumes; ``command`` names the training command in messages.

    Raises :class:`UsageError` for a non-empty folder without ``--force`` or ``--resume``, for
    ``--resume`` on a folder that holds no state, and for ``--force`` on a folder that is not a
    training output or that holds an input of the run."""
    out = Path(config.output)
    resume = bool(getattr(config, "resume", False))
    if config.force and resume:
        raise UsageError("--force clears the output folder, --resume continues it: pass one")
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out}: is a file, expected a folder")
    contents = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not contents:
        return "new"
    if resume:
        if not any((out / name / PROGRESS).is_file() for name in (STATE, PREVIOUS)):
            raise UsageError(
                f"--resume: {out} holds no saved training state ({STATE}/{PROGRESS}); pass "
                "--force to clear it and train from the beginning"
            )
        return "resume"
    if not config.force:
        shown = ", ".join(contents[:5]) + (", …" if len(contents) > 5 else "")
        again = ", or --resume to continue the run saved there" if hasattr(config, "resume") else ""
        raise UsageError(
            f"-o {out}: folder is not empty ({shown}); pass --force to clear it and train "
            f"from the beginning{again}"
        )
    if not any((out / name).exists() for name in _MARKERS):
        raise UsageError(
            f"--force: {out} is not a folder written by {command} (no {CONFIG}); "
            "refusing to clear it, choose another -o"
        )
    for what, path in _inputs(config):
        if _inside(path, out):
            raise UsageError(f"--force: {out} holds {what} ({path}); refusing to clear it")
    return "clear"


def clear_output(output: str | Path) -> None:
    """Remove everything in ``output`` (checked by :func:`prepare_output` with ``--force``)."""
    for entry in Path(output).iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _inputs(config: Any) -> list[tuple[str, Path]]:
    """What ``--force`` must never delete: the run's inputs, the working and home folders."""
    found = [("the working folder", Path.cwd()), ("the home folder", Path.home())]
    for what, value in (
        ("the training data", config.data),
        ("the eval data", getattr(config, "eval", None)),
        ("the base model", config.model),
        ("the media root", config.media_root),
    ):
        if value and value != "-" and Path(value).exists():
            found.append((what, Path(value)))
    return found


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies within it (symbolic links resolved)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


# -- the same run ----------------------------------------------------------------------------


def file_sha256(path: str) -> str | None:
    """The SHA-256 of a file's bytes (None for standard input), read in blocks."""
    if path == "-":
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: What ``training_config.json`` records about a run besides its configuration (a ``--config``
#: file may hold them, as a run's own saved config does; they are facts, not settings).
RUN_FACTS = ("processes", "data_sha256")


def run_record(
    config: Any, *, bf16: bool, processes: int, data_sha256: str | None
) -> dict[str, Any]:
    """What ``training_config.json`` holds: the configuration with its defaults resolved (the
    learning rate, bf16), the number of processes and the identity of the training data."""
    record = asdict(config)
    record.update(lr=config.resolved_lr(), bf16=bf16, processes=processes, data_sha256=data_sha256)
    record.pop("resume", None)
    record.pop("force", None)
    return record


def read_saved_config(output: str | Path) -> dict[str, Any]:
    """The ``training_config.json`` of the run being resumed."""
    path = Path(output) / CONFIG
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"--resume: {path} is missing, so the run cannot be checked; pass --force to start over"
        ) from None
    except (OSError, ValueError) as error:
        raise UsageError(f"--resume: {path} is unreadable or corrupt ({error})") from None
    if not isinstance(saved, dict):
        raise UsageError(f"--resume: {path} is corrupt (not a JSON object)")
    return saved


def check_same_run(
    saved: dict[str, Any],
    current: dict[str, Any],
    output: str | Path,
    *,
    same_run: Iterable[str] | None = None,
    harmless: Iterable[str] = HARMLESS,
    bt_defaults: bool = True,
) -> list[str]:
    """Refuse a resumed run that differs from the saved one in a ``same_run`` option (default
    :data:`SAME_RUN`, ``train bt``'s; ``train r1`` passes every option it records but the
    ``harmless`` ones, and ``bt_defaults=False``: its saved ``lr`` is as asked); return a
    warning for each ``harmless`` one that changed. Options the saved file lacks (older
    versions) are not compared; nor is the data's path when both runs know its content."""
    saved = _with_defaults(saved) if bt_defaults else dict(saved)
    harmless = tuple(harmless)
    names = tuple(same_run) if same_run is not None else SAME_RUN
    changed = [name for name in names if name in saved and saved[name] != current.get(name)]
    if "data_sha256" not in saved and saved.get("data") != current.get("data"):
        changed.append("data")
    if changed:
        details = "; ".join(_change(name, saved, current) for name in changed)
        raise UsageError(
            f"--resume: the run saved in {output} was trained with other settings: {details}. "
            "Resume with the saved settings (see its training_config.json), or pass --force "
            "to start over"
        )
    return [
        f"--resume: {_change(name, saved, current)}; continuing"
        for name in harmless
        if name in saved and saved[name] != current.get(name)
    ]


def _with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A configuration saved before defaults were resolved, with them resolved as then: the
    learning rate from ``full``; bf16 was not recorded (not compared)."""
    saved = dict(saved)
    if "lr" in saved and saved["lr"] is None:
        saved["lr"] = 1e-5 if saved.get("full") else 5e-4
    if "bf16" in saved and saved["bf16"] is None:
        del saved["bf16"]
    return saved


def _change(name: str, saved: dict[str, Any], current: dict[str, Any]) -> str:
    option = _OPTION.get(name, "--" + name.replace("_", "-"))
    return f"{option} was {_shown(saved[name])}, now {_shown(current.get(name))}"


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "…"


# -- the state -------------------------------------------------------------------------------


@dataclass
class Progress:
    """``progress.json``: how far the run got, on how many processes, and the size of every
    file of the state (a file whose size differs was cut short)."""

    step: int
    processes: int
    files: dict[str, int]
    result: dict[str, Any] = field(default_factory=dict)  # the run's report so far
    position: dict[str, Any] = field(default_factory=dict)  # where in the run (train r1: stage)


def keep_trainable_only(accelerator: Any) -> None:
    """Make accelerate save and load only the trainable parameters of the model: the frozen
    base weights are the same on every run (they come from ``--model``)."""
    from accelerate.utils import SAFE_WEIGHTS_NAME
    from safetensors.torch import load_file

    def trainable(model: Any) -> set[str]:
        # a tied weight (an LM head sharing the embeddings) once, under its first name:
        # safetensors refuses tensors that share memory, and loading it loads both
        return {n for n, p in model.named_parameters() if p.requires_grad}

    def on_save(models: list[Any], weights: list[dict[str, Any]], output_dir: str) -> None:
        for i, model in enumerate(models):
            keep = trainable(model)
            weights[i] = {k: v for k, v in weights[i].items() if k in keep}

    def on_load(models: list[Any], input_dir: str) -> None:
        for i in range(len(models)):
            model = models.pop(0)  # loaded here, not by accelerate (which wants every weight)
            name = SAFE_WEIGHTS_NAME if i == 0 else SAFE_WEIGHTS_NAME.replace(".", f"_{i}.")
            state = load_file(str(Path(input_dir) / name), device="cpu")
            wanted = trainable(model)
            missing = wanted - state.keys()
            if missing:
                raise ValueError(
                    f"{name} lacks {len(missing)} of the model's trainable parameters, e.g. "
                    f"{min(missing)}"
                )
            model.load_state_dict({k: v for k, v in state.items() if k in wanted}, strict=False)

    accelerator.register_save_state_pre_hook(on_save)
    accelerator.register_load_state_pre_hook(on_load)


def save_state(
    accelerator: Any,
    output: str | Path,
    step: int,
    result: dict[str, Any] | None = None,
    position: dict[str, Any] | None = None,
) -> None:
    """Write the run's state at ``step``, with its report so far (see the module docs). The
    newest complete state stays whole until the new one is; at most two states are on disk."""
    out = Path(output)
    partial, state, previous = out / PARTIAL, out / STATE, out / PREVIOUS
    if accelerator.is_main_process:
        for folder in (partial, previous) if state.exists() else (partial,):
            if folder.exists():
                shutil.rmtree(folder)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        files = {
            str(p.relative_to(partial)): p.stat().st_size
            for p in sorted(partial.rglob("*"))
            if p.is_file()
        }
        progress = Progress(step, accelerator.num_processes, files, result or {}, position or {})
        (partial / PROGRESS).write_text(json.dumps(asdict(progress)) + "\n")
        if state.exists():
            state.rename(previous)
        partial.rename(state)
    accelerator.wait_for_everyone()


def load_state(accelerator: Any, output: str | Path) -> Progress:
    """Load the newest complete state from ``output`` and return its progress; the previous
    state is used (with a warning) when the newest is cut short or corrupt. Raises
    :class:`UsageError` when none can be loaded."""
    out = Path(output)
    problems = []
    for name in (STATE, PREVIOUS):
        folder = out / name
        if not (folder / PROGRESS).is_file():
            continue
        try:
            progress = _read_progress(folder)
            accelerator.load_state(str(folder))
        except Exception as error:  # any loader's error on a damaged file
            problems.append(f"{folder} is corrupt ({error})")
            continue
        for problem in problems:
            console.warn(f"--resume: {problem}; using the state saved before it")
        return progress
    raise UsageError(f"--resume: {'; '.join(problems)}; pass --force to start over")


def saved_progress(output: str | Path) -> Progress:
    """The progress of the state :func:`load_state` would load (the newest whose files are
    whole), read without loading it; :class:`UsageError` when there is none."""
    problems = []
    for name in (STATE, PREVIOUS):
        folder = Path(output) / name
        if (folder / PROGRESS).is_file():
            try:
                return _read_progress(folder)
            except ValueError as error:
                problems.append(f"{folder} is corrupt ({error})")
    raise UsageError(f"--resume: {'; '.join(problems) or 'no state'}; pass --force to start over")


def _read_progress(folder: Path) -> Progress:
    """The folder's ``progress.json``, checked against the files it lists (states written
    before sizes were recorded list none)."""
    try:
        raw = json.loads((folder / PROGRESS).read_text())
        sizes = {str(name): int(size) for name, size in dict(raw.get("files", {})).items()}
        progress = Progress(
            int(raw["step"]),
            int(raw.get("processes", 0)),
            sizes,
            dict(raw.get("result", {})),
            dict(raw.get("position", {})),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"its {PROGRESS} is unreadable ({error})") from None
    for name, size in sizes.items():
        path = folder / name
        actual = path.stat().st_size if path.is_file() else None
        if actual != size:
            found = "missing" if actual is None else f"{actual} bytes"
            raise ValueError(f"{name} is cut short or damaged ({found}, saved with {size} bytes)")
    return progress
