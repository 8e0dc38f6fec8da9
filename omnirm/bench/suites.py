"""The benchmark suites ``omnirm bench --suite`` reads, from the folder a user downloaded.

Each suite turns its published files into omnirm records carrying the gold label
(``preference``), ``task`` (the task or section the example counts toward) and, where the suite
has finer groups, an extra key ``subset``. Nothing is downloaded here: ``docs/bench-suites.md``
gives the download command and the folder layout of each suite.

- ``omni-rewardbench``: Omni-RewardBench, nine tasks (delegates to
  :func:`omnirm.formats.read_omni_rewardbench`).
- ``vl-rewardbench``: VL-RewardBench, image + question pairs; tasks ``general``,
  ``hallucination``, ``reasoning``; subset = the source dataset the official ``cal.py`` groups by.
- ``multimodal-rewardbench``: Multimodal RewardBench (``data/all_data.json``); tasks
  ``correctness``, ``preference``, ``knowledge``, ``math``, ``coding``, ``safety`` (subsets
  ``bias``/``toxicity``), ``vqa``.
- ``rewardbench``: RewardBench v1, the ``filtered`` split; tasks ``chat``, ``chat-hard``,
  ``safety``, ``reasoning``; subset = the original subset (``hep-python`` …).
- ``rewardbench2``: RewardBench 2, best-of-N; tasks ``factuality``, ``precise-if``, ``math``,
  ``safety``, ``focus``, ``ties``; the correct completions come first, so the gold is index 0.
- ``jsonl``: omnirm records with gold labels (one file, or a folder of ``*.jsonl``).

:func:`read_suite` yields ``(position, Record | InvalidRecord)`` like
:func:`omnirm.records.iter_records`, which is what :func:`omnirm.bench.run.scored_records` takes;
:func:`read_suite_items` yields the converters' items (record dicts or located
:class:`~omnirm.errors.RecordError` s). Layout problems (a missing file, a wrong folder) raise
:class:`~omnirm.errors.UsageError` when the reader is called, before any record is read; a bad
row is a located error in the stream. Everything streams: parquet in small batches, images
written out once (named by content hash, under ``DATA_DIR/media_extracted/``) when a parquet
file embeds them. Media paths are relative to ``DATA_DIR`` (the folder itself, or the folder of
the file given), so ``--media-root DATA_DIR`` resolves them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from omnirm import console
from omnirm.bench.metrics import RB1_EXAMPLE_COUNTS as RB_EXAMPLE_COUNTS
from omnirm.bench.metrics import RB1_SECTIONS as RB_SECTIONS
from omnirm.bench.metrics import RB2_SUBSETS
from omnirm.errors import RecordError, UsageError
from omnirm.formats._common import Item, UniqueIds, finish, is_swapped, iter_rows, source_id
from omnirm.formats.omni_rewardbench import (
    BENCH_TASKS,
    EXTRACT_DIR,
    BenchMedia,
    parquet_rows,
    read_omni_rewardbench,
)
from omnirm.options import default_media_root
from omnirm.records import InvalidRecord, Record, iter_records, parse_record

TaskNames = str | Sequence[str] | None

#: The seed of the chosen/rejected order of RewardBench pairs (see :func:`is_swapped`): fixed,
#: so the same id always gets the same order and the chosen response is first in about half.
ORDER_SEED = 0


@dataclass(frozen=True)
class Suite:
    """One benchmark suite: where it comes from, its tasks, how it is scored, and its reader.

    ``reader(data_dir, tasks=…, extract_dir=…)`` checks the layout at once (raising
    :class:`UsageError`) and returns the stream of items.
    """

    name: str
    title: str
    source: str
    tasks: tuple[str, ...]
    scoring: str
    reader: Callable[..., Iterator[Item]]
    best_of_n: bool = False
    official: str | None = None  # its leaderboard rule: a key of bench.metrics.OFFICIAL_RULES


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _slug(name: str) -> str:
    """A task or subset name as compared and written: lower case, runs of spaces, ``_`` and
    ``/`` as one ``-`` (``Precise IF`` → ``precise-if``)."""
    return re.sub(r"[\s_/]+", "-", name.strip().lower())


def _names(tasks: TaskNames) -> list[str]:
    names = tasks.split(",") if isinstance(tasks, str) else list(tasks or [])
    return [n.strip() for n in names if n.strip()]


class _Selection:
    """Which tasks (or subsets) ``--tasks`` keeps, checked against the suite's known names."""

    def __init__(
        self, suite: str, tasks: TaskNames, known_tasks: Iterable[str], known_subsets: Iterable[str]
    ) -> None:
        self.wanted: set[str] | None = None
        if tasks is None:
            return
        names = _names(tasks)
        if not names:
            raise UsageError("--tasks: no task named")
        known_tasks = list(known_tasks)
        known = {_slug(n) for n in [*known_tasks, *known_subsets]}
        unknown = [n for n in names if _slug(n) not in known]
        if unknown:
            raise UsageError(
                f"--tasks: {suite} has no task or subset {', '.join(map(repr, unknown))}; "
                f"its tasks are {', '.join(known_tasks)}"
            )
        self.wanted = {_slug(n) for n in names}

    def keeps(self, task: str, subset: str | None = None) -> bool:
        if self.wanted is None:
            return True
        return _slug(task) in self.wanted or (subset is not None and _slug(subset) in self.wanted)


def _exists(data_dir: Path) -> None:
    if not data_dir.exists():
        raise UsageError(f"{data_dir}: no such file or folder")


def _shards(folder: Path, pattern: str) -> list[Path]:
    """Parquet shards matching ``pattern`` in ``folder/data/`` (the hub layout) or ``folder``."""
    for place in (folder / "data", folder):
        found = sorted(place.glob(pattern))
        if found:
            return found
    return []


def _first_file(folder: Path, candidates: Sequence[str]) -> Path | None:
    for name in candidates:
        path = folder / name
        if path.is_file():
            return path
    return None


def _rows(path: Path, batch_size: int = 64) -> Iterator[tuple[int, Any]]:
    """Rows of a parquet (in batches), JSON array or JSONL file, numbered from 1."""
    if path.suffix.lower() == ".parquet":
        yield from parquet_rows(path, batch_size=batch_size)
    else:
        yield from iter_rows(path)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _text(row: dict[str, Any], key: str, *, field: str | None = None) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise RecordError(f"expected a string, got {_kind(value)}", field=field or key)
    return value


def _strings(row: dict[str, Any], key: str, *, at_least: int = 1) -> list[str]:
    value = row.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(f"expected a list of strings, got {_kind(value)}", field=key)
    if len(value) < at_least:
        raise RecordError(f"expected at least {at_least}, got {len(value)}", field=key)
    return list(value)


def _scalars(row: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The given keys of a row whose values are strings, numbers or lists of strings (kept as
    extra keys of the record; structs and embedded media are left out)."""
    out: dict[str, Any] = {}
    for key in keys:
        value = row.get(key)
        if isinstance(value, str | int | float | bool) or (
            isinstance(value, list) and value and all(isinstance(v, str) for v in value)
        ):
            out[key] = value
    return out


def _convert(
    files: Sequence[Path],
    build: Callable[[dict[str, Any], int], dict[str, Any] | None],
    *,
    batch_size: int = 64,
) -> Iterator[Item]:
    """Rows of ``files`` through ``build(row, number)``: a record dict (validated here), None
    for a row the task selection drops, or a :class:`RecordError` naming the field."""
    for path in files:
        shown = str(path)
        for number, row in _rows(path, batch_size):
            if isinstance(row, RecordError):
                yield row
                continue
            if not isinstance(row, dict):
                yield RecordError(
                    f"expected an object, got {_kind(row)}", source=shown, line=number
                )
                continue
            try:
                record = build(row, number)
            except RecordError as error:
                yield error.located(source=shown, line=number, record_id=_row_id(row))
                continue
            if record is not None:
                yield finish(record, source=shown, line=number)


def _row_id(row: dict[str, Any]) -> str | None:
    return source_id(row.get("id", row.get("ID")))


# --------------------------------------------------------------------------------------------
# omni-rewardbench
# --------------------------------------------------------------------------------------------


def _read_omni(
    data_dir: Path, *, tasks: TaskNames = None, extract_dir: Path | None = None
) -> Iterator[Item]:
    return read_omni_rewardbench(data_dir, tasks=tasks, extract_dir=extract_dir)


# --------------------------------------------------------------------------------------------
# vl-rewardbench
# --------------------------------------------------------------------------------------------

VL_TASKS = ("general", "hallucination", "reasoning")

#: Source dataset → task, as the official ``cal.py`` (and lmms-eval) group them.
VL_GROUPS: dict[str, str] = {
    "vlfeedback": "general",
    "wildvision-battle": "general",
    "povid": "hallucination",
    "rlaif-v": "hallucination",
    "rlhf-v": "hallucination",
    "reasoning_tasks": "reasoning",
}

#: Id prefix (up to the first ``_`` or ``-``) → source dataset, after ``cal.py``'s
#: ``get_dataset_from_id``; any other prefix is VLFeedback.
_VL_PREFIXES: dict[str, str] = {
    "rlaif": "rlaif-v",
    "rlhf": "rlhf-v",
    "mathverse": "reasoning_tasks",
    "mmmu": "reasoning_tasks",
    "wildvision": "wildvision-battle",
    "hallucination": "povid",
}

_VL_LAYOUT = (
    "the hub layout, data/test-*.parquet (huggingface-cli download MMInstruction/VL-RewardBench "
    "--repo-type dataset --local-dir DIR), or the GitHub layout, data/data.jsonl with "
    "data/images/"
)
_VL_CONSUMED = frozenset({"id", "query", "response", "human_ranking", "image", "image_path"})
_IMAGE_TOKEN = re.compile(r"\s*<image>\s*")


def vl_dataset(record_id: str) -> str:
    """The VL-RewardBench source dataset of an example, from its id (``RLAIF-V-14`` →
    ``rlaif-v``, ``mathverse_1294`` → ``reasoning_tasks``)."""
    prefix = re.split(r"[_-]", record_id, maxsplit=1)[0].lower()
    return _VL_PREFIXES.get(prefix, "vlfeedback")


def _read_vl(
    data_dir: Path, *, tasks: TaskNames = None, extract_dir: Path | None = None
) -> Iterator[Item]:
    _exists(data_dir)
    selection = _Selection("vl-rewardbench", tasks, VL_TASKS, VL_GROUPS)
    if data_dir.is_file():
        files = [data_dir]
    else:
        files = _shards(data_dir, "test-*.parquet")
        if not files:
            found = _first_file(data_dir, ("data/data.jsonl", "data.jsonl"))
            if found is None:
                raise UsageError(
                    f"{data_dir}: not a VL-RewardBench copy: found neither data/test-*.parquet "
                    f"nor data/data.jsonl; expected {_VL_LAYOUT}"
                )
            files = [found]
    root = default_media_root(data_dir)  # where the scorer resolves them too
    media = BenchMedia(root, False, extract_dir or root / EXTRACT_DIR)
    ids = UniqueIds()

    def build(row: dict[str, Any], number: int) -> dict[str, Any] | None:
        raw_id = _row_id(row)
        dataset = vl_dataset(raw_id or "")
        task = VL_GROUPS[dataset]
        if not selection.keeps(task, dataset):
            return None
        record_id = ids(raw_id or f"vl-rewardbench-row{number}")
        query = _IMAGE_TOKEN.sub("\n", _text(row, "query")).strip()
        responses = _strings(row, "response", at_least=2)
        if len(responses) != 2:
            raise RecordError(f"expected 2 responses, got {len(responses)}", field="response")
        best = _vl_best(row.get("human_ranking"))
        models = row.get("models")
        # lmms-eval's order rule: swap when the two responses' lengths sum to an odd number,
        # so the preferred response (first in ~all source rows) is not always first.
        if sum(len(r) for r in responses) % 2 == 1:
            responses.reverse()
            best = 1 - best
            if isinstance(models, list):
                models = models[::-1]
        record: dict[str, Any] = {
            "id": record_id,
            "task": task,
            "prompt": [
                {"type": "text", "text": query},
                {"type": "image", "path": _vl_image(row, media, files[0].parent)},
            ],
            "responses": responses,
            "preference": best,
            "subset": dataset,
        }
        if raw_id is not None:
            record["source_id"] = raw_id
        if isinstance(models, list):
            record["models"] = models
        record.update(_scalars(row, (k for k in row if k not in _VL_CONSUMED and k != "models")))
        return record

    return _convert(files, build, batch_size=16)


def _vl_best(ranking: Any) -> int:
    """The preferred response from ``human_ranking`` (each response's rank, 0 = best)."""
    if (
        not isinstance(ranking, list)
        or len(ranking) != 2
        or not all(isinstance(r, int) and not isinstance(r, bool) for r in ranking)
        or ranking[0] == ranking[1]
    ):
        raise RecordError(
            f"expected two different ranks ([0, 1] or [1, 0]), got {ranking!r}",
            field="human_ranking",
        )
    return 0 if ranking[0] < ranking[1] else 1


def _vl_image(row: dict[str, Any], media: BenchMedia, file_dir: Path) -> str:
    """The prompt image: ``image_path`` (GitHub layout, relative to the JSONL's folder), or the
    hub's ``image`` struct (its bytes written out once)."""
    path = row.get("image_path")
    if isinstance(path, str) and path.strip():
        return _relative_media(path.strip(), file_dir, media)
    image = row.get("image")
    if isinstance(image, dict):
        data, name = image.get("bytes"), image.get("path")
        if isinstance(data, bytes | bytearray) and data:
            return media.extract(bytes(data), name if isinstance(name, str) else None)
        if isinstance(name, str) and name.strip():
            return _relative_media(name.strip(), file_dir, media)
    raise RecordError("no image: neither image_path nor image holds a path or data", field="image")


def _relative_media(path: str, file_dir: Path, media: BenchMedia) -> str:
    """A media path written relative to the file that names it, as a record path."""
    posix = PurePosixPath(path.replace("\\", "/"))
    if posix.is_absolute():
        return path
    return media.local(file_dir / Path(*posix.parts))


# --------------------------------------------------------------------------------------------
# multimodal-rewardbench
# --------------------------------------------------------------------------------------------

MMRB_TASKS = ("correctness", "preference", "knowledge", "math", "coding", "safety", "vqa")

#: ``Category`` → task (``reasoning`` splits into math / coding by id, as the scoring does).
_MMRB_CATEGORIES: dict[str, str] = {
    "open_generation/correctness_task": "correctness",
    "open_generation/preference_task": "preference",
    "knowledge": "knowledge",
    "safety": "safety",
    "vqa": "vqa",
}
_MMRB_LAYOUT = (
    "the repository's data/ folder after scripts/0_download_data.py: data/all_data.json "
    "(Text, Image, Output1, Output2, Better, Category, ID) and data/images/"
)
_MMRB_CONSUMED = frozenset({"ID", "Text", "Image", "Output1", "Output2", "Better", "Category"})


def mmrb_task(category: str, example_id: str) -> tuple[str, str | None]:
    """``(task, subset)`` of a Multimodal RewardBench example, as ``2_get_accuracy.py`` groups
    it: ``reasoning`` → ``math`` (ids starting with ``math``) or ``coding``; ``safety`` →
    subset ``bias`` (ids starting with ``pairs``) or ``toxicity``."""
    lowered = example_id.lower()
    if category == "reasoning":
        return ("math" if lowered.startswith("math") else "coding"), None
    if category == "safety":
        return "safety", ("bias" if lowered.startswith("pairs") else "toxicity")
    return _MMRB_CATEGORIES.get(category, _slug(category.rsplit("/", 1)[-1])), None


def _read_mmrb(
    data_dir: Path, *, tasks: TaskNames = None, extract_dir: Path | None = None
) -> Iterator[Item]:
    _exists(data_dir)
    selection = _Selection("multimodal-rewardbench", tasks, MMRB_TASKS, ("bias", "toxicity"))
    if data_dir.is_file():
        source = data_dir
    else:
        found = _first_file(data_dir, ("all_data.json", "data/all_data.json"))
        if found is None:
            release = _first_file(data_dir, ("all_data_release.json", "data/all_data_release.json"))
            hint = (
                f" ({release} is there: run python scripts/0_download_data.py in the "
                "repository, which fetches the images and writes data/all_data.json)"
                if release is not None
                else ""
            )
            raise UsageError(
                f"{data_dir}: not a Multimodal RewardBench copy: no all_data.json or "
                f"data/all_data.json{hint}; expected {_MMRB_LAYOUT}"
            )
        source = found
    root = default_media_root(data_dir)  # where the scorer resolves them too
    media = BenchMedia(root, False, root / EXTRACT_DIR)
    ids = UniqueIds()

    def build(row: dict[str, Any], number: int) -> dict[str, Any] | None:
        raw_id = _row_id(row) or f"multimodal-rewardbench-{number}"
        category = row.get("Category")
        if category is None and isinstance(row.get("Meta"), dict):
            category = row["Meta"].get("Category")
        if not isinstance(category, str) or not category.strip():
            raise RecordError(f"expected a category name, got {_kind(category)}", field="Category")
        task, subset = mmrb_task(category.strip(), raw_id)
        if not selection.keeps(task, subset):
            return None
        better = row.get("Better")
        if better not in ("Output1", "Output2"):
            raise RecordError(f"expected 'Output1' or 'Output2', got {better!r}", field="Better")
        image = _text(row, "Image")
        record: dict[str, Any] = {
            "id": ids(raw_id),
            "task": task,
            "prompt": [
                {"type": "text", "text": _text(row, "Text")},
                {"type": "image", "path": _relative_media(image, source.parent, media)},
            ],
            "responses": [_text(row, "Output1"), _text(row, "Output2")],
            "preference": 0 if better == "Output1" else 1,
        }
        if subset is not None:
            record["subset"] = subset
        record["category"] = category
        record.update(_scalars(row, (k for k in row if k not in _MMRB_CONSUMED)))
        return record

    return _convert([source], build)


# --------------------------------------------------------------------------------------------
# rewardbench (v1)
# --------------------------------------------------------------------------------------------

_RB_SECTION_OF = {subset: section for section, subsets in RB_SECTIONS.items() for subset in subsets}
_RB_LAYOUT = (
    "data/filtered-*.parquet (huggingface-cli download allenai/reward-bench --repo-type dataset "
    "--local-dir DIR)"
)
_RB_CONSUMED = frozenset({"id", "prompt", "chosen", "rejected", "chosen_model", "rejected_model"})


def _read_rb(
    data_dir: Path, *, tasks: TaskNames = None, extract_dir: Path | None = None
) -> Iterator[Item]:
    _exists(data_dir)
    selection = _Selection("rewardbench", tasks, RB_SECTIONS, _RB_SECTION_OF)
    files = [data_dir] if data_dir.is_file() else _shards(data_dir, "filtered-*.parquet")
    if not files:
        other = _shards(data_dir, "*.parquet")
        seen = f" (found only {', '.join(p.name for p in other[:3])})" if other else ""
        raise UsageError(
            f"{data_dir}: not a RewardBench copy: no data/filtered-*.parquet{seen}; omnirm reads "
            f"the filtered split, expected {_RB_LAYOUT}"
        )
    ids = UniqueIds()

    def build(row: dict[str, Any], number: int) -> dict[str, Any] | None:
        subset = _text(row, "subset")
        section = _RB_SECTION_OF.get(subset)
        if section is None:
            raise RecordError(
                f"unknown subset {subset!r}: not one of the filtered split's 23", field="subset"
            )
        if not selection.keeps(section, subset):
            return None
        raw_id = _row_id(row)
        record_id = ids(raw_id or f"rewardbench-{number}")
        chosen, rejected = _text(row, "chosen"), _text(row, "rejected")
        models = [row.get("chosen_model"), row.get("rejected_model")]
        swapped = is_swapped(record_id, ORDER_SEED)
        record: dict[str, Any] = {
            "id": record_id,
            "task": section,
            "prompt": _text(row, "prompt"),
            "responses": [rejected, chosen] if swapped else [chosen, rejected],
            "preference": 1 if swapped else 0,
            "subset": subset,
        }
        if raw_id is not None:
            record["source_id"] = raw_id
        if all(isinstance(m, str) for m in models):
            record["models"] = models[::-1] if swapped else models
        record.update(_scalars(row, (k for k in row if k not in _RB_CONSUMED and k != "subset")))
        return record

    return _convert(files, build)


# --------------------------------------------------------------------------------------------
# rewardbench2
# --------------------------------------------------------------------------------------------

RB2_TASKS = tuple(_slug(s) for s in RB2_SUBSETS)

_RB2_LAYOUT = (
    "data/test-*.parquet (huggingface-cli download allenai/reward-bench-2 --repo-type dataset "
    "--local-dir DIR)"
)
_RB2_CONSUMED = frozenset(
    {"id", "prompt", "chosen", "rejected", "subset", "num_correct", "additional_metadata"}
)


def _read_rb2(
    data_dir: Path, *, tasks: TaskNames = None, extract_dir: Path | None = None
) -> Iterator[Item]:
    _exists(data_dir)
    selection = _Selection("rewardbench2", tasks, RB2_TASKS, RB2_SUBSETS)
    files = [data_dir] if data_dir.is_file() else _shards(data_dir, "test-*.parquet")
    if not files:
        raise UsageError(
            f"{data_dir}: not a RewardBench 2 copy: no data/test-*.parquet; expected {_RB2_LAYOUT}"
        )
    ids = UniqueIds()

    def build(row: dict[str, Any], number: int) -> dict[str, Any] | None:
        subset = _text(row, "subset")
        task = _slug(subset)
        if not selection.keeps(task, subset):
            return None
        raw_id = _row_id(row)
        record_id = ids(f"{task}-{raw_id}" if raw_id is not None else f"{task}-row{number}")
        chosen = _strings(row, "chosen")
        rejected = _strings(row, "rejected")
        num_correct = row.get("num_correct")
        if num_correct is not None and num_correct != len(chosen):
            raise RecordError(
                f"is {num_correct!r} but chosen holds {len(chosen)} completions",
                field="num_correct",
            )
        record: dict[str, Any] = {
            "id": record_id,
            "task": task,
            "prompt": _text(row, "prompt"),
            "responses": [*chosen, *rejected],
            "preference": 0,
            "subset": subset,
            "num_correct": len(chosen),
        }
        if raw_id is not None:
            record["source_id"] = raw_id
        record.update(_scalars(row, (k for k in row if k not in _RB2_CONSUMED)))
        return record

    return _convert(files, build)


# --------------------------------------------------------------------------------------------
# jsonl
# --------------------------------------------------------------------------------------------


def _read_jsonl(
    data_dir: Path, *, tasks: TaskNames = None, extract_dir: Path | None = None
) -> Iterator[Item]:
    _exists(data_dir)
    files = [data_dir] if data_dir.is_file() else sorted(data_dir.glob("*.jsonl"))
    if not files:
        raise UsageError(
            f"{data_dir}: no *.jsonl file in this folder; the jsonl suite reads omnirm records "
            "with gold labels (preference, ranking or gold_scores), one file or a folder of them"
        )
    wanted = {_slug(n) for n in _names(tasks)} if tasks is not None else None
    if wanted is not None and not wanted:
        raise UsageError("--tasks: no task named")
    return _jsonl_items(files, wanted)


def _jsonl_items(files: list[Path], wanted: set[str] | None) -> Iterator[Item]:
    ids = UniqueIds()
    kept = 0
    for path in files:
        for line, item in iter_records(path):
            if isinstance(item, InvalidRecord):
                yield item.error
                continue
            task = item.resolved_task
            if wanted is not None and _slug(task) not in wanted:
                continue
            if not item.has_label:
                yield RecordError(
                    "no gold label: a benchmark record needs preference, ranking or gold_scores",
                    source=str(path),
                    line=line,
                    record_id=item.id,
                    field="preference",
                )
                continue
            record = item.to_dict()
            record["task"] = task
            unique = ids(item.id)
            if unique != item.id:
                record["id"] = unique
                record.setdefault("source_id", item.id)
            kept += 1
            yield finish(record, source=str(path), line=line)
    if wanted is not None and kept == 0:
        console.warn(f"--tasks {','.join(sorted(wanted))}: no record has such a task")


# --------------------------------------------------------------------------------------------
# Registry and entry points
# --------------------------------------------------------------------------------------------

SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite(
            "omni-rewardbench",
            "Omni-RewardBench",
            "https://huggingface.co/datasets/HongbangYuan/OmniRewardBench",
            tuple(spec.task for spec in BENCH_TASKS),
            "pairs with human ties; w/o ties and w/ ties accuracy per task, overall = mean of tasks",
            _read_omni,
        ),
        Suite(
            "vl-rewardbench",
            "VL-RewardBench",
            "https://huggingface.co/datasets/MMInstruction/VL-RewardBench",
            VL_TASKS,
            "pair accuracy per task; overall = accuracy over all pairs, macro = mean of the 3 tasks",
            _read_vl,
        ),
        Suite(
            "multimodal-rewardbench",
            "Multimodal RewardBench",
            "https://github.com/facebookresearch/multimodal_rewardbench",
            MMRB_TASKS,
            "pair accuracy per task; overall = accuracy over all pairs",
            _read_mmrb,
        ),
        Suite(
            "rewardbench",
            "RewardBench",
            "https://huggingface.co/datasets/allenai/reward-bench",
            tuple(RB_SECTIONS),
            "pair accuracy per subset; section = subsets weighted by EXAMPLE_COUNTS; "
            "score = mean of the 4 sections",
            _read_rb,
            official="rewardbench",
        ),
        Suite(
            "rewardbench2",
            "RewardBench 2",
            "https://huggingface.co/datasets/allenai/reward-bench-2",
            RB2_TASKS,
            "best-of-N: correct iff the chosen scores highest (1/k when k tie at the top); "
            "Ties has its own weighted score; overall = mean of the 6 subsets",
            _read_rb2,
            best_of_n=True,
            official="rewardbench2",
        ),
        Suite(
            "jsonl",
            "omnirm records",
            "your own omnirm records with gold labels",
            (),
            "as the records' labels say; per task (given, or inferred from the content)",
            _read_jsonl,
        ),
    )
}


def get_suite(name: str) -> Suite:
    """The suite of that name; :class:`UsageError` listing the suites for any other."""
    suite = SUITES.get(name.strip().lower())
    if suite is None:
        raise UsageError(f"--suite: unknown suite {name!r}; the suites are {', '.join(SUITES)}")
    return suite


def read_suite_items(
    name: str,
    data_dir: str | Path,
    *,
    tasks: TaskNames = None,
    extract_dir: Path | None = None,
) -> Iterator[Item]:
    """The suite's records as converter items: record dicts (valid omnirm records) or located
    :class:`RecordError` s, in the files' order. ``tasks`` keeps only those tasks or subsets
    (comma-separated names, case and ``_``/space insensitive); ``extract_dir`` is where media
    embedded in parquet files are written (default ``DATA_DIR/media_extracted``). Raises
    :class:`UsageError` at once when ``data_dir`` does not hold the suite's layout."""
    return get_suite(name).reader(Path(data_dir), tasks=tasks, extract_dir=extract_dir)


def read_suite(
    name: str,
    data_dir: str | Path,
    *,
    tasks: TaskNames = None,
    extract_dir: Path | None = None,
) -> Iterator[tuple[int, Record | InvalidRecord]]:
    """The suite's records as ``(position, Record | InvalidRecord)``, the shape
    :func:`omnirm.records.iter_records` yields (``position`` counts items from 1; the errors
    carry their own file and row). Arguments as :func:`read_suite_items`, whose layout checks
    run before this returns."""
    return _as_records(read_suite_items(name, data_dir, tasks=tasks, extract_dir=extract_dir))


def _as_records(items: Iterator[Item]) -> Iterator[tuple[int, Record | InvalidRecord]]:
    for position, item in enumerate(items, start=1):
        if isinstance(item, RecordError):
            yield position, InvalidRecord(item.line or position, item, {"id": item.record_id})
        else:
            yield position, parse_record(item)


__all__ = [
    "MMRB_TASKS",
    "ORDER_SEED",
    "RB2_SUBSETS",
    "RB2_TASKS",
    "RB_EXAMPLE_COUNTS",
    "RB_SECTIONS",
    "SUITES",
    "VL_GROUPS",
    "VL_TASKS",
    "Suite",
    "get_suite",
    "mmrb_task",
    "read_suite",
    "read_suite_items",
    "vl_dataset",
]
