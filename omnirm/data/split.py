"""``omnirm data split``: deterministic train/validation/test splits keyed on the prompt.

Each record goes to the split chosen by a hash of (seed, prompt), so every record that shares a
prompt — the same pair under several criteria, or several pairs for one question — lands in the
same split, and the assignment never depends on file order or on the other records. Ratios hold
over distinct prompts, not records: a split's share of records can differ when prompts carry
very different numbers of records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from omnirm.errors import UsageError
from omnirm.records import Record, as_parts

DEFAULT_NAMES: tuple[str, ...] = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitSpec:
    """Split names with their ratios (normalised to sum to 1) and the hashing seed."""

    names: tuple[str, ...]
    ratios: tuple[float, ...]
    seed: int = 0

    @classmethod
    def parse(cls, ratios: str, names: str | None = None, seed: int = 0) -> SplitSpec:
        """From command-line text: ``"0.8,0.1,0.1"`` (or ``"80,10,10"``) and ``"train,validation,test"``."""
        try:
            values = tuple(float(x) for x in ratios.split(","))
        except ValueError:
            raise UsageError(
                f"--ratios: expected numbers separated by commas, got {ratios!r}"
            ) from None
        split_names = (
            tuple(n.strip() for n in names.split(",")) if names else DEFAULT_NAMES[: len(values)]
        )
        if len(values) > len(DEFAULT_NAMES) and names is None:
            raise UsageError(f"--ratios has {len(values)} parts: name them with --names")
        if len(split_names) != len(values):
            raise UsageError(
                f"{len(values)} ratios but {len(split_names)} names ({', '.join(split_names)})"
            )
        if len(set(split_names)) != len(split_names) or not all(split_names):
            raise UsageError(f"split names must be distinct and non-empty, got {names!r}")
        if any(v < 0 for v in values) or sum(values) <= 0:
            raise UsageError(f"--ratios must be non-negative with a positive sum, got {ratios!r}")
        total = sum(values)
        return cls(split_names, tuple(v / total for v in values), seed)


def prompt_key(record: Record) -> str:
    """A canonical text of the record's prompt (and history): what the split hashes.

    A plain-string prompt and the same text as one text part give the same key.
    """
    prompt = as_parts(record.prompt) if record.prompt is not None else None
    messages = (
        [{"role": m["role"], "content": as_parts(m["content"])} for m in record.messages]
        if record.messages is not None
        else None
    )
    return json.dumps([prompt, messages], sort_keys=True, ensure_ascii=False)


def assign_split(key: str, spec: SplitSpec) -> str:
    """The split name for a key: its seeded hash mapped to [0, 1) against cumulative ratios."""
    digest = hashlib.blake2b(f"{spec.seed}\x00{key}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") / 2**64
    cumulative = 0.0
    for name, ratio in zip(spec.names, spec.ratios, strict=True):
        cumulative += ratio
        if point < cumulative:
            return name
    return spec.names[-1]  # rounding: the sum of ratios can fall just short of 1


def split_of(record: Record, spec: SplitSpec) -> str:
    """The split a record belongs to."""
    return assign_split(prompt_key(record), spec)


def check_names(requested: Sequence[str], spec: SplitSpec) -> None:
    unknown = [n for n in requested if n not in spec.names]
    if unknown:
        raise UsageError(f"unknown split {unknown[0]!r}; the splits are {', '.join(spec.names)}")
