"""Grouped batch layout: whole groups per batch, every index once, seeded and per epoch."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from omnirm.records import parse_record
from omnirm.train.batching import GroupedSampler, contrast_key


def batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def test_a_pair_under_opposite_criteria_shares_its_key() -> None:
    base = {"id": "a", "prompt": "Q?", "responses": ["short", "long answer"], "preference": 0}
    under = parse_record({**base, "criteria": "Prefer the shorter answer."})
    opposite = parse_record({**base, "id": "a-opposite", "criteria": "Longer.", "preference": 1})
    other = parse_record({**base, "id": "b", "prompt": "Another question?"})
    assert contrast_key(under) == contrast_key(opposite) != contrast_key(other)


def test_pairs_of_two_fill_batches_of_eight_whole() -> None:
    keys = [f"pair{i // 2}" for i in range(40)]  # 20 pairs, each under two criteria
    sampler = GroupedSampler(keys, batch_size=8, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(40))
    for batch in batches(order, 8):
        counts = Counter(keys[i] for i in batch)
        assert set(counts.values()) == {2}, batch


def test_the_order_is_seeded_and_changes_with_the_epoch() -> None:
    keys = [f"k{i // 2}" for i in range(64)]
    first = GroupedSampler(keys, 8, seed=0)
    again = GroupedSampler(keys, 8, seed=0)
    assert list(first) == list(again)
    first.set_epoch(1)
    assert list(first) != list(again)
    assert list(GroupedSampler(keys, 8, seed=1)) != list(again)


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=11), min_size=1, max_size=60),
    batch_size=st.integers(min_value=1, max_value=9),
    seed=st.integers(min_value=0, max_value=5),
)
def test_batches_hold_whole_groups_full_ones_first(
    sizes: list[int], batch_size: int, seed: int
) -> None:
    keys = [f"g{g}" for g, size in enumerate(sizes) for _ in range(size)]
    sampler = GroupedSampler(keys, batch_size, seed)
    laid_out = sampler.batches()
    assert sorted(sampler.order()) == list(range(len(keys)))
    assert [i for b in laid_out for i in b] == sampler.order()
    lengths = [len(b) for b in laid_out]
    assert all(0 < n <= batch_size for n in lengths)
    full = lengths.count(batch_size)
    assert lengths[:full] == [batch_size] * full  # so a DataLoader's cuts fall on them
    for batch in laid_out:
        for key, count in Counter(keys[i] for i in batch).items():
            size = sizes[int(key[1:])]
            assert count == size if size <= batch_size else count <= batch_size


def test_the_training_loader_under_accelerate_keeps_pairs_together() -> None:
    """What train bt iterates: prepared by accelerate, reshuffled through set_epoch."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    from omnirm.train.bt import BTConfig, training_loader

    records = [
        parse_record(
            {
                "id": f"p{i // 2}-{i % 2}",
                "prompt": f"Question {i // 2}?",
                "criteria": "Shorter." if i % 2 else "Longer.",
                "responses": ["a", "b b"],
                "preference": i % 2,
            }
        )
        for i in range(32)
    ]
    config = BTConfig(model="m", data="d", output="o", batch_size=8, contrastive_batches=True)
    accelerator = Accelerator(
        cpu=True, dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True)
    )
    loader = accelerator.prepare(training_loader(records, lambda rows: rows, config))
    epochs = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        seen = [[r.id.split("-")[0] for r in batch] for batch in loader]
        assert all(set(Counter(batch).values()) == {2} for batch in seen)
        epochs.append(seen)
    flat = [sorted(i for batch in seen for i in batch) for seen in epochs]
    assert flat[0] == flat[1]
    assert epochs[0] != epochs[1]


def padded_tokens(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)


def test_length_grouped_batches_hold_similar_lengths_in_a_seeded_order() -> None:
    import random

    from omnirm.train.batching import LengthGroupedSampler

    rng = random.Random(0)
    lengths = [rng.randint(20, 1000) for _ in range(1000)]
    sampler = LengthGroupedSampler(lengths, batch_size=8, seed=5)
    order = [int(i) for i in sampler]
    assert sorted(order) == list(range(1000))
    grouped = batches(order, 8)
    shuffled = list(range(1000))
    rng.shuffle(shuffled)
    assert padded_tokens(grouped, lengths) < 0.1 * padded_tokens(batches(shuffled, 8), lengths)
    # the batches come in a random order, not longest first
    widths = [max(lengths[i] for i in b) for b in grouped]
    assert widths != sorted(widths, reverse=True) and widths != sorted(widths)
    again = LengthGroupedSampler(lengths, batch_size=8, seed=5)
    assert [int(i) for i in again] == order
    again.set_epoch(1)
    assert [int(i) for i in again] != order
    assert [int(i) for i in LengthGroupedSampler(lengths, 8, seed=6)] != order


def test_a_resumed_length_grouped_loader_goes_on_exactly_where_it_stopped() -> None:
    """What train bt does on --resume: the same (seed, epoch) order, its seen batches skipped."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    from omnirm.train.bt import BTConfig, training_loader

    records = [
        parse_record({"id": f"r{i}", "prompt": "Q?", "responses": ["a", "b"], "preference": 0})
        for i in range(50)
    ]
    lengths = [(i * 37) % 101 for i in range(50)]
    config = BTConfig(model="m", data="d", output="o", batch_size=4, seed=3)

    def loader() -> Any:
        accelerator = Accelerator(
            cpu=True, dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True)
        )
        prepared = accelerator.prepare(
            training_loader(records, lambda rows: [r.id for r in rows], config, lengths=lengths)
        )
        return accelerator, prepared

    accelerator, whole = loader()
    whole.set_epoch(1)
    uninterrupted = list(whole)
    assert len(uninterrupted) == 13
    for batch in uninterrupted:  # similar lengths together
        widths = [lengths[int(r[1:])] for r in batch]
        assert max(widths) - min(widths) <= 40
    accelerator, resumed = loader()
    resumed.set_epoch(1)
    assert list(accelerator.skip_first_batches(resumed, 5)) == uninterrupted[5:]
