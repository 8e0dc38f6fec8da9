"""Omni-RewardBench (``HongbangYuan/OmniRewardBench``) → omnirm records.

Point the reader at a local copy of the benchmark, in either layout:

- **the hub layout** (``huggingface-cli download HongbangYuan/OmniRewardBench --repo-type dataset
  --local-dir BENCH``): one folder per task config holding the ``test`` split as parquet
  (``BENCH/text_to_image/test-00000-of-00001.parquet``, possibly under ``data/``), and
  ``media_data.zip``, which must be unzipped in ``BENCH`` (it holds ``media_data/``). Image and
  audio columns are HF structs ``{bytes, path}``; the ``*_path`` columns name the files in
  ``media_data/``.
- **the authors' JSON copies**: one JSON (or JSONL) file per task, named by the config
  (``text_to_image.json`` or ``text_to_image_preferences.json``), every media field a path.

Fields: ``id, prompt, response1, response2, model1, model2, criteria, criteria_preference``
plus media fields by task. ``criteria_preference`` becomes ``preference`` (``response1`` → 0,
``response2`` → 1, ``tie`` → ``"tie"``; ties are kept). Prompt media (TI2T/TI2I image, TV2T
video, TA2T audio) follow the prompt text as content parts; media responses (T2I, T23D — one
multi-view render per response — and TI2I images, T2V videos, T2A audio) are one part each.
A media field's ``*_path`` is used when present, else the field itself when it is a path; when
a parquet file embeds only bytes, they are written once (named by content hash) under
``BENCH/media_extracted/`` (or ``extract_dir``).

Media paths are written relative to ``BENCH`` (``media_data/text_to_image/….png``): pass
``--media-root BENCH`` to the commands that read the records, or ask for absolute paths
(``absolute_paths=True``; those lie outside any other media root, so readers then need
``--allow-outside-root``). Ids are ``TASK-ID`` (``text_to_3d-12``; an id that already starts
with the task's name is kept as it is), made unique when the same source id repeats (``-2``,
``-3`` …); the source id is kept as ``source_id`` and the two models as ``models``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from omnirm import console
from omnirm.errors import RecordError, UsageError
from omnirm.formats._common import Item, UniqueIds, extra_keys, finish, iter_rows, source_id

MEDIA_DIR = "media_data"
MEDIA_ZIP = "media_data.zip"
EXTRACT_DIR = "media_extracted"


@dataclass(frozen=True)
class BenchTask:
    """One Omni-RewardBench task: its config name, abbreviation, omnirm task name, and the kind
    of medium in the prompt and in the responses (None: text only)."""

    config: str
    abbr: str
    task: str
    prompt_media: str | None = None
    response_media: str | None = None


BENCH_TASKS: tuple[BenchTask, ...] = (
    BenchTask("text_to_text", "T2T", "text_to_text"),
    BenchTask("text_image_to_text", "TI2T", "text_image_to_text", prompt_media="image"),
    BenchTask("text_video_to_text", "TV2T", "text_video_to_text", prompt_media="video"),
    BenchTask("text_audio_to_text", "TA2T", "text_audio_to_text", prompt_media="audio"),
    BenchTask("text_to_image", "T2I", "text_to_image", response_media="image"),
    BenchTask("text_to_video", "T2V", "text_to_video", response_media="video"),
    BenchTask("text_to_audio", "T2A", "text_to_audio", response_media="audio"),
    BenchTask("text_to_3D", "T23D", "text_to_3d", response_media="image"),
    BenchTask(
        "text_image_to_image",
        "TI2I",
        "text_image_to_image",
        prompt_media="image",
        response_media="image",
    ),
)

_BY_NAME: dict[str, BenchTask] = {
    name.lower(): spec for spec in BENCH_TASKS for name in (spec.config, spec.abbr, spec.task)
}

_PREFERENCES: dict[str, int | str] = {"response1": 0, "response2": 1, "tie": "tie"}

#: Source columns the converter interprets; other scalar columns pass through.
_KNOWN_COLUMNS = frozenset(
    {
        "id",
        "prompt",
        "response1",
        "response2",
        "response1_path",
        "response2_path",
        "model1",
        "model2",
        "criteria",
        "criteria_preference",
        *(f"{kind}{suffix}" for kind in ("image", "video", "audio") for suffix in ("", "_path")),
    }
)


def select_tasks(tasks: str | Sequence[str] | None) -> list[BenchTask]:
    """The tasks named (config names, omnirm names or abbreviations like ``T2T``; a string is
    split on commas), in the benchmark's order; all nine for None."""
    if tasks is None:
        return list(BENCH_TASKS)
    names = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    chosen: set[str] = set()
    for name in (n.strip() for n in names):
        if not name:
            continue
        spec = _BY_NAME.get(name.lower())
        if spec is None:
            known = ", ".join(f"{s.abbr} ({s.config})" for s in BENCH_TASKS)
            raise UsageError(f"--tasks: unknown task {name!r}; the tasks are {known}")
        chosen.add(spec.config)
    if not chosen:
        raise UsageError("--tasks: no task named")
    return [spec for spec in BENCH_TASKS if spec.config in chosen]


def read_omni_rewardbench(
    source: Path,
    *,
    tasks: str | Sequence[str] | None = None,
    absolute_paths: bool = False,
    extract_dir: Path | None = None,
) -> Iterator[Item]:
    """Read a local Omni-RewardBench copy (the folder, or one task's parquet/JSON file).

    ``tasks`` selects tasks (``"T2T,TI2T"``, config or omnirm names); missing tasks are an
    error when named and a warning otherwise. Records come task by task in the benchmark's
    order, rows in file order. Raises :class:`UsageError` up front for a folder with no data,
    or with ``media_data.zip`` not unzipped.
    """
    source = Path(source)
    selected = select_tasks(tasks)
    if source.is_file():
        spec = _task_of_file(source)
        if spec not in selected:
            raise UsageError(
                f"{source} holds task {spec.abbr} ({spec.config}), not selected by --tasks"
            )
        bench, plan = _bench_root(source, spec), [(spec, [source])]
    elif source.is_dir():
        bench, plan = source, _plan(source, selected, named=tasks is not None)
    else:
        raise UsageError(f"{source}: no such file or folder")
    needs_media = any(spec.prompt_media or spec.response_media for spec, _ in plan)
    if needs_media and not (bench / MEDIA_DIR).is_dir() and (bench / MEDIA_ZIP).is_file():
        raise UsageError(
            f"{bench / MEDIA_ZIP} is not unzipped: the records point into {bench / MEDIA_DIR}/, "
            f"so unzip it first (cd {bench} && unzip {MEDIA_ZIP})"
        )
    media = BenchMedia(bench, absolute_paths, extract_dir or bench / EXTRACT_DIR)
    return _records(plan, media)


def _plan(
    bench: Path, selected: list[BenchTask], *, named: bool
) -> list[tuple[BenchTask, list[Path]]]:
    plan = [(spec, _task_files(bench, spec)) for spec in selected]
    missing = [spec for spec, files in plan if not files]
    if missing and (named or len(missing) == len(plan)):
        raise UsageError(
            f"{bench}: no data for {', '.join(s.config for s in missing)} (looked for "
            f"CONFIG/test-*.parquet, CONFIG/data/test-*.parquet, CONFIG.json(l) and "
            f"CONFIG_preferences.json(l))"
        )
    for spec in missing:
        console.warn(f"{bench}: no data for {spec.config}; skipping that task")
    return [(spec, files) for spec, files in plan if files]


def _children(folder: Path) -> dict[str, Path]:
    """The entries of a folder by lower-cased name (none when it is not a folder)."""
    if not folder.is_dir():
        return {}
    return {child.name.lower(): child for child in folder.iterdir()}


def _task_files(bench: Path, spec: BenchTask) -> list[Path]:
    """The files holding one task: parquet shards of its ``test`` split, else a JSON file."""
    name = spec.config.lower()
    for parent in (bench, bench / "data"):
        folder = _children(parent).get(name)
        if folder is None or not folder.is_dir():
            continue
        for place in (folder, folder / "data"):
            shards = sorted(place.glob("test*.parquet")) or sorted(place.glob("*.parquet"))
            if shards:
                return shards
    for parent in (bench, bench / "data"):
        entries = _children(parent)
        for stem in (name, f"{name}_preferences"):
            for suffix in (".jsonl", ".json"):
                found = entries.get(stem + suffix)
                if found is not None and found.is_file():
                    return [found]
    return []


def _task_of_file(path: Path) -> BenchTask:
    """The task a single file holds, from its name or its folders' names."""
    candidates = [path.stem.lower().removesuffix("_preferences")]
    candidates += [parent.name.lower() for parent in path.parents][:3]
    for name in candidates:
        for spec in BENCH_TASKS:
            if name == spec.config.lower():
                return spec
    raise UsageError(
        f"{path}: cannot tell which task this file holds; name it by the task "
        "(text_to_image.json) or point at the benchmark folder"
    )


def _bench_root(path: Path, spec: BenchTask) -> Path:
    """The benchmark folder of a single task file: the nearest folder with media_data(.zip),
    else the folder above the task's own folder, else the file's folder."""
    for folder in list(path.parents)[:4]:
        if (folder / MEDIA_DIR).is_dir() or (folder / MEDIA_ZIP).is_file():
            return folder
    for folder in list(path.parents)[:3]:
        if folder.name.lower() == spec.config.lower():
            return folder.parent
    return path.parent


@dataclass
class BenchMedia:
    """Turns the benchmark's media fields into paths for the records."""

    bench: Path
    absolute: bool
    extract_dir: Path
    warned: bool = field(default=False)

    def reference(self, row: dict[str, Any], name: str, kind: str) -> str:
        """The path of the medium in column ``name`` (``image``, ``response1`` …) of a row."""
        by_path = row.get(f"{name}_path")
        if isinstance(by_path, str) and by_path.strip():
            return self.benchmark_path(by_path.strip(), f"{name}_path")
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return self.benchmark_path(value.strip(), name)
        if isinstance(value, dict):
            data, inner = value.get("bytes"), value.get("path")
            if isinstance(data, bytes | bytearray) and data:
                return self.extract(bytes(data), inner if isinstance(inner, str) else None)
            if isinstance(inner, str) and inner.strip():
                return self.benchmark_path(inner.strip(), name)
        raise RecordError(
            f"no {kind}: neither {name}_path nor {name} holds a path or embedded data",
            field=name,
        )

    def benchmark_path(self, value: str, field: str | None = None) -> str:
        """A path from the benchmark, relative to ``media_data/``, as a record path.

        Absolute paths from the authors' machines are re-rooted at their ``media_data`` part.
        A value that names no file (``.``, ``..``, ``/``) is a :class:`RecordError`.
        """
        path = PurePosixPath(value.replace("\\", "/"))
        if path.name in ("", ".."):
            raise RecordError(f"expected the path of a file, got {value!r}", field=field)
        if path.is_absolute():
            if MEDIA_DIR not in path.parts:
                return value
            path = PurePosixPath(*path.parts[path.parts.index(MEDIA_DIR) :])
        elif path.parts[0] != MEDIA_DIR:
            path = MEDIA_DIR / path
        if not self.warned and not (self.bench / MEDIA_DIR).is_dir():
            self.warned = True
            console.warn(
                f"{self.bench} has no {MEDIA_DIR}/ folder: the media paths will not resolve "
                f"until {MEDIA_ZIP} is downloaded and unzipped there"
            )
        return self.local(self.bench / path) if self.absolute else str(path)

    def local(self, path: Path) -> str:
        """How a file on disk is named in a record: relative to the benchmark folder when inside
        it (unless absolute paths were asked for), else absolute."""
        path = path.absolute()
        if not self.absolute:
            try:
                return path.relative_to(self.bench.absolute()).as_posix()
            except ValueError:
                pass
        return str(path)

    def extract(self, data: bytes, name: str | None) -> str:
        """Write embedded media bytes once (named by their hash) and return the record path."""
        digest = hashlib.blake2b(data, digest_size=12).hexdigest()
        target = self.extract_dir / f"{digest}{_suffix(data, name)}"
        if not target.exists():
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".part")
                partial.write_bytes(data)
                partial.replace(target)
            except OSError as exc:
                raise UsageError(
                    f"cannot write embedded media to {self.extract_dir}: {exc}; "
                    "choose a writable folder with --extract-dir"
                ) from None
        return self.local(target)


_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG", 0, ".png"),
    (b"\xff\xd8\xff", 0, ".jpg"),
    (b"GIF8", 0, ".gif"),
    (b"WEBP", 8, ".webp"),
    (b"WAVE", 8, ".wav"),
    (b"fLaC", 0, ".flac"),
    (b"OggS", 0, ".ogg"),
    (b"ID3", 0, ".mp3"),
    (b"ftyp", 4, ".mp4"),
)


def _suffix(data: bytes, name: str | None) -> str:
    """A file suffix for media bytes: from the stored name, else from the magic number."""
    if name:
        suffix = PurePosixPath(name).suffix.lower()
        if suffix:
            return suffix
    for magic, offset, suffix in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return suffix
    return ".bin"


def _records(plan: list[tuple[BenchTask, list[Path]]], media: BenchMedia) -> Iterator[Item]:
    ids = UniqueIds()
    for spec, files in plan:
        for path in files:
            shown = str(path)
            for number, row in _rows(path):
                if isinstance(row, RecordError):
                    yield row
                    continue
                if not isinstance(row, dict):
                    yield RecordError("expected a JSON object", source=shown, line=number)
                    continue
                raw_id = source_id(row.get("id"))
                record_id = ids(_record_id(spec, raw_id, number))
                try:
                    record = _record(row, spec, record_id, raw_id, media)
                except RecordError as error:
                    yield error.located(source=shown, line=number, record_id=record_id)
                    continue
                yield finish(record, source=shown, line=number)


def _record_id(spec: BenchTask, raw_id: str | None, number: int) -> str:
    """``TASK-ID`` (ids restart in each task's file), the id itself when it already names the
    task, or ``TASK-rowN`` when the row has none."""
    if raw_id is None:
        return f"{spec.task}-row{number}"
    if raw_id.lower().startswith((spec.task, spec.config.lower())):
        return raw_id
    return f"{spec.task}-{raw_id}"


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    if path.suffix.lower() == ".parquet":
        yield from parquet_rows(path)
    else:
        yield from iter_rows(path)


def parquet_rows(path: Path, batch_size: int = 64) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a parquet file as dicts, read in batches; embedded media bytes are not read for
    columns that have a ``*_path`` twin."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        columns = [n for n in names if f"{n}_path" not in names]
        number = 0
        for batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
            for row in batch.to_pylist():
                number += 1
                yield number, row
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise RecordError(f"cannot read parquet: {exc}", source=str(path)) from None


def _text(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        raise RecordError(f"expected a string, got {_kind(value)}", field=name)
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _record(
    row: dict[str, Any], spec: BenchTask, record_id: str, raw_id: str | None, media: BenchMedia
) -> dict[str, Any]:
    label = row.get("criteria_preference")
    preference = _PREFERENCES.get(label.strip().lower()) if isinstance(label, str) else None
    if preference is None:
        raise RecordError(
            f"expected 'response1', 'response2' or 'tie', got {label!r}",
            field="criteria_preference",
        )
    prompt_text = _text(row, "prompt")
    if not prompt_text.strip():
        raise RecordError("empty prompt", field="prompt")
    prompt: str | list[dict[str, str]] = prompt_text
    if spec.prompt_media is not None:
        prompt = [
            {"type": "text", "text": prompt_text},
            {
                "type": spec.prompt_media,
                "path": media.reference(row, spec.prompt_media, spec.prompt_media),
            },
        ]
    responses: list[Any] = []
    for name in ("response1", "response2"):
        if spec.response_media is None:
            responses.append(_text(row, name))
        else:
            path = media.reference(row, name, spec.response_media)
            responses.append([{"type": spec.response_media, "path": path}])

    record: dict[str, Any] = {"id": record_id, "task": spec.task, "prompt": prompt}
    criteria = row.get("criteria")
    if criteria is not None and not isinstance(criteria, str):
        raise RecordError(f"expected a string, got {_kind(criteria)}", field="criteria")
    if criteria and criteria.strip():
        record["criteria"] = criteria.strip()
    record.update(responses=responses, preference=preference)
    models = [row.get("model1"), row.get("model2")]
    if any(m is not None for m in models):
        record["models"] = models
    if raw_id is not None:
        record["source_id"] = raw_id
    for key, value in extra_keys(row, _KNOWN_COLUMNS).items():
        if isinstance(value, str | int | float | bool):  # not embedded media or other structs
            record.setdefault(key, value)
    return record


__all__ = ["BENCH_TASKS", "BenchTask", "read_omni_rewardbench", "select_tasks"]
