"""Batch layouts for training: keep the records of one group in the same batch.

A criteria-following data set holds the same pair under a criterion and under its opposite (or
under several criteria). Shuffled record by record, the two halves of such a contrast fall into
different batches, and each batch's gradient mostly says "prefer the fuller answer" or "prefer
the shorter one" — the criterion-independent part, which cancels only across batches. Kept in
one batch, the criterion-independent parts cancel inside each step and what is left is the
criterion's effect, which is what the model has to learn.

:class:`GroupedSampler` shuffles whole groups (seeded, reshuffled each epoch through
``set_epoch``, as accelerate calls it) and lays them out so that every full batch holds whole
groups; only the epoch's last, partly filled batches may split one.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler

from omnirm.records import Record

OPEN_BATCHES = 16  # bounds the first-fit search, so laying out an epoch stays linear


def contrast_key(record: Record) -> str:
    """Records with the same conversation and responses (whatever their criterion and label)
    share this key."""
    content = {"prompt": record.prompt, "messages": record.messages, "responses": record.responses}
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class GroupedSampler(Sampler[int]):
    """Indices of ``keys`` in an order where records of one key are adjacent and full batches of
    ``batch_size`` hold whole groups (a group larger than a batch is split into batch-sized
    chunks). Deterministic for a (seed, epoch)."""

    def __init__(self, keys: Sequence[str], batch_size: int, seed: int = 0) -> None:
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        groups: dict[str, list[int]] = {}
        for index, key in enumerate(keys):
            groups.setdefault(key, []).append(index)
        self.groups = list(groups.values())
        self.size = len(keys)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        return iter(self.order())

    def order(self) -> list[int]:
        """This epoch's order: :meth:`batches` one after the other."""
        return [index for batch in self.batches() for index in batch]

    def batches(self) -> list[list[int]]:
        """This epoch's batches: each of whole groups (or batch-sized chunks of one), the full
        ones first."""
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        chunks = [
            group[start : start + self.batch_size]
            for group in self.groups
            for start in range(0, len(group), self.batch_size)
        ]
        rng.shuffle(chunks)
        batches: list[list[int]] = []
        open_batches: list[list[int]] = []  # first fit among the few batches with room
        for chunk in chunks:
            for batch in open_batches:
                if len(batch) + len(chunk) <= self.batch_size:
                    batch.extend(chunk)
                    break
            else:
                batch = list(chunk)
                batches.append(batch)
                open_batches.append(batch)
            open_batches = [b for b in open_batches if len(b) < self.batch_size][-OPEN_BATCHES:]
        # A DataLoader cuts the order every batch_size indices: full batches first keep every
        # cut on a batch boundary; the partly filled rest come last.
        full = [b for b in batches if len(b) == self.batch_size]
        rest = [b for b in batches if len(b) < self.batch_size]
        return full + rest
