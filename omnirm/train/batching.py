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
from typing import Any

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


#: Batches a window of the shuffled order holds: lengths are sorted inside each window only, so
#: the order stays random across windows while batches hold records of similar length.
WINDOW_BATCHES = 64


class LengthGroupedSampler(Sampler[int]):
    """Indices in batches of records of similar length, so that a batch is padded to little more
    than its own rows: each epoch's order is a seeded permutation (seed, epoch), cut into windows
    of ``WINDOW_BATCHES`` batches; each window is sorted by length and cut into batches; the
    batches are then shuffled (full ones first, so a DataLoader's cuts fall on them).

    Deterministic for a (seed, epoch): a resumed run that skips the batches it has seen
    (``accelerate.skip_first_batches``) goes on exactly where it stopped. The order is built in
    numpy arrays (a few bytes per record), not Python lists.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0) -> None:
        import numpy as np

        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        return (int(index) for index in self.order())

    def order(self) -> Any:
        """This epoch's indices (a numpy array): :meth:`batches` one after the other."""
        import numpy as np

        batches = self.batches()
        return np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)

    def batches(self) -> list[Any]:
        """This epoch's batches (numpy arrays of indices), the full ones first."""
        import numpy as np

        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        window = self.batch_size * WINDOW_BATCHES
        batches: list[Any] = []
        for start in range(0, len(order), window):
            part = order[start : start + window]
            part = part[np.argsort(-self.lengths[part], kind="stable")]
            batches.extend(
                part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)
            )
        full = [
            batches[i] for i in rng.permutation(len(batches)) if len(batches[i]) == self.batch_size
        ]
        rest = [b for b in batches if len(b) < self.batch_size]
        return full + rest
