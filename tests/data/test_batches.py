"""Length-grouped training batches, length chunks and the ``batching`` dispatch, on splits with
known lengths."""

import itertools
import time

import numpy as np
import pytest
import torch

from isobn_tune.data.batches import (
    BATCHINGS,
    TokenizedSplit,
    length_chunks,
    length_grouped_batches,
    random_batches,
    train_batches,
)


def make_split(lengths) -> TokenizedSplit:
    """A split whose example ``i`` has ``lengths[i]`` tokens (ids ``1..``, no segment ids)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    input_ids = (np.arange(offsets[-1]) % 1000 + 1).astype(np.int32)
    return TokenizedSplit(input_ids, offsets, None, np.zeros(len(lengths), dtype=np.int64), pad_token_id=0)


def varied_split(n=2000, seed=0) -> TokenizedSplit:
    return make_split(np.random.default_rng(seed).integers(5, 250, size=n))


def grouped(split, batch_size, seed, *, drop_singleton=True, mega_batch_factor=50):
    gen = torch.Generator().manual_seed(seed)
    return list(
        length_grouped_batches(
            split,
            batch_size,
            generator=gen,
            drop_singleton=drop_singleton,
            mega_batch_factor=mega_batch_factor,
        )
    )


def mega_batch_of(n, batch_size, seed, mega_batch_factor):
    """Each example's mega-batch: the generator's first randperm, cut every factor * batch_size."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    mega_of = np.empty(n, dtype=np.int64)
    mega_of[order] = np.arange(n) // (mega_batch_factor * batch_size)
    return mega_of


def padding(split, batches, batch_size):
    lengths = split.lengths
    return sum(batch_size * int(lengths[b].max()) - int(lengths[b].sum()) for b in batches)


@pytest.mark.parametrize(
    ("n", "drop_singleton", "n_kept", "sizes"),
    [
        (45, True, 44, {4}),  # mega-batches of 12: 12+12+12+9, the 9 cut 4+4+1: the 1 is dropped
        (45, False, 45, {4, 1}),
        (43, True, 43, {4, 3}),  # tail of 3: kept either way
        (43, False, 43, {4, 3}),
        (37, True, 36, {4}),  # last mega-batch a single example
        (48, True, 48, {4}),
    ],
)
def test_every_index_once_and_only_the_singleton_tail_dropped(n, drop_singleton, n_kept, sizes):
    split = make_split(np.arange(n) % 7 + 3)
    batches = grouped(split, 4, seed=1, drop_singleton=drop_singleton, mega_batch_factor=3)
    flat = np.concatenate(batches)
    assert len(flat) == n_kept and len(np.unique(flat)) == n_kept and set(flat) <= set(range(n))
    assert {len(b) for b in batches} == sizes
    assert sum(len(b) < 4 for b in batches) == (n_kept % 4 != 0)  # at most one short batch
    assert len(batches) == -(-n_kept // 4)  # no batch smaller than necessary
    assert all(b.dtype == np.int64 for b in batches)


def test_batches_are_length_sorted_within_their_mega_batch():
    split, batch_size, factor, seed = varied_split(1000), 8, 5, 3
    batches = grouped(split, batch_size, seed, mega_batch_factor=factor)
    mega_of = mega_batch_of(len(split), batch_size, seed, factor)
    lengths = split.lengths
    per_mega: dict[int, list[np.ndarray]] = {}
    for b in batches:
        assert len(set(mega_of[b])) == 1
        per_mega.setdefault(int(mega_of[b[0]]), []).append(b)
    for group in per_mega.values():
        group.sort(key=lambda b: -lengths[b].max())
        for longer, shorter in zip(group, group[1:], strict=False):
            assert lengths[longer].min() >= lengths[shorter].max()


def test_padding_is_far_below_random_batching():
    split, batch_size, seed = varied_split(), 16, 7
    random = list(
        random_batches(
            split,
            batch_size,
            generator=torch.Generator().manual_seed(seed),
            drop_singleton=True,
        )
    )
    group = grouped(split, batch_size, seed)
    assert padding(split, group, batch_size) < 0.3 * padding(split, random, batch_size)
    widths = [split.collate(b)["input_ids"].shape[1] for b in group]
    assert widths == [int(split.lengths[b].max()) for b in group]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_first_batch_holds_the_longest_example(seed):
    lengths = np.random.default_rng(seed).integers(5, 100, size=500)
    longest = 480 + seed  # unique longest example, placed anywhere by the shuffle
    lengths[longest] = 300
    batches = grouped(make_split(lengths), 8, seed, mega_batch_factor=4)
    assert longest in batches[0]
    assert longest not in np.concatenate(batches[1:])


def test_same_seed_same_batches_and_different_seed_different_order():
    split = varied_split(600)
    first, again, other = grouped(split, 8, 11), grouped(split, 8, 11), grouped(split, 8, 12)
    assert len(first) == len(again) and all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert [b.tolist() for b in first] != [b.tolist() for b in other]
    assert [b[0] for b in first[1:10]] != [b[0] for b in other[1:10]]


def test_batch_order_is_shuffled_across_the_epoch():
    split = varied_split(2000)
    batches = grouped(split, 8, 5, mega_batch_factor=5)  # 50 mega-batches, 250 batches
    max_lengths = np.array([split.lengths[b].max() for b in batches])
    assert not (np.diff(max_lengths) <= 0).all() and not (np.diff(max_lengths) >= 0).all()
    # consecutive batches mostly come from different mega-batches (in mega-batch order: 4 pairs in 5)
    mega = [mega_batch_of(len(split), 8, 5, 5)[b[0]] for b in batches]
    assert np.mean(np.diff(mega) == 0) < 0.1
    assert sorted(mega) != mega


def test_generator_is_consumed_at_call_and_empty_split_gives_no_batches():
    assert grouped(make_split([]), 4, 0) == []
    gen = torch.Generator().manual_seed(0)
    batches = length_grouped_batches(make_split(np.arange(10) + 1), 4, generator=gen, drop_singleton=True)
    after = torch.rand(1, generator=gen)
    gen2 = torch.Generator().manual_seed(0)
    list(length_grouped_batches(make_split(np.arange(10) + 1), 4, generator=gen2, drop_singleton=True))
    assert torch.equal(after, torch.rand(1, generator=gen2)) and len(list(batches)) == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"batch_size": -3}, "batch_size must be >= 1, got -3"),
        ({"mega_batch_factor": 0}, "mega_batch_factor must be >= 1, got 0"),
        ({"batch_size": 1, "drop_singleton": True}, "batch_size=1 with drop_singleton"),
    ],
)
def test_bad_arguments_raise_naming_the_value(kwargs, match):
    args = {"batch_size": 4, "drop_singleton": True} | kwargs
    with pytest.raises(ValueError, match=match):
        length_grouped_batches(make_split([3, 4, 5]), generator=torch.Generator(), **args)


def test_batch_size_one_without_drop_keeps_every_example():
    batches = grouped(make_split([3, 9, 4, 1]), 1, 0, drop_singleton=False)
    assert sorted(int(b[0]) for b in batches) == [0, 1, 2, 3] and batches[0].tolist() == [1]


def test_train_batches_dispatches_by_name():
    split = make_split(np.arange(1, 42))  # 41 examples: a singleton tail at batch size 8
    by_name = {
        name: list(train_batches(split, 8, batching=name, generator=torch.Generator().manual_seed(4)))
        for name in BATCHINGS
    }
    random = list(
        random_batches(split, 8, generator=torch.Generator().manual_seed(4), drop_singleton=True)
    )
    assert [b.tolist() for b in by_name["random"]] == [b.tolist() for b in random]
    assert [b.tolist() for b in by_name["length_grouped"]] == [b.tolist() for b in grouped(split, 8, 4)]
    assert len(np.concatenate(by_name["length_grouped"])) == 40  # drop_singleton defaults to True
    kept = list(
        train_batches(
            split,
            8,
            batching="length_grouped",
            generator=torch.Generator().manual_seed(4),
            drop_singleton=False,
        )
    )
    assert len(np.concatenate(kept)) == 41


def test_unknown_batching_names_the_allowed_values():
    with pytest.raises(ValueError, match=r"unknown batching 'sorted'; allowed: random, length_grouped"):
        train_batches(make_split([3, 4]), 2, batching="sorted", generator=torch.Generator())


def chunk_cost(chunks, lengths, per_chunk):
    return sum(len(c) * lengths[c].max() + per_chunk for c in chunks)


def brute_force_best(lengths, per_chunk):
    """The least cost over every way of cutting the longest-first order into contiguous chunks."""
    ordered = np.sort(lengths)[::-1]
    n, best = len(ordered), np.inf
    for k in range(n):
        for cuts in itertools.combinations(range(1, n), k):
            parts = np.split(ordered, cuts)
            best = min(best, sum(len(p) * p.max() + per_chunk for p in parts))
    return best


@pytest.mark.parametrize("per_chunk", [0, 20, 256, 10_000])
def test_length_chunks_partition_the_batch_at_the_least_padded_cost(per_chunk):
    rng = np.random.default_rng(per_chunk)
    for _ in range(20):
        lengths = rng.integers(3, 128, size=400)
        batch = rng.choice(400, size=int(rng.integers(1, 11)), replace=False)
        chunks = length_chunks(batch, lengths, per_chunk)
        assert sorted(np.concatenate(chunks).tolist()) == sorted(batch.tolist())
        assert all(np.all(np.diff(lengths[c]) <= 0) for c in chunks)  # each chunk longest first
        assert np.all(np.diff([lengths[c[0]] for c in chunks]) < 0)  # chunks longest first, no ties cut
        assert chunk_cost(chunks, lengths, per_chunk) == brute_force_best(lengths[batch], per_chunk)


def test_length_chunks_keep_similar_lengths_whole_and_split_mixed_ones():
    lengths = np.array([120] * 16 + [12] * 16)
    assert [len(c) for c in length_chunks(np.arange(16), lengths, 256)] == [16]
    mixed = length_chunks(np.arange(32), lengths, 256)  # 3840 tokens padded whole, 2368 in two chunks
    assert [sorted(c.tolist()) for c in mixed] == [list(range(16)), list(range(16, 32))]
    assert len(length_chunks(np.arange(32), lengths, 10_000)) == 1  # not worth one more pass
    assert length_chunks(np.arange(0), lengths, 256) == []


def test_length_chunks_of_a_huge_batch_take_milliseconds():
    lengths = np.random.default_rng(0).integers(1, 513, size=65536)
    start = time.perf_counter()
    chunks = length_chunks(np.arange(65536), lengths, 256)
    assert time.perf_counter() - start < 2.0  # the programme runs over the 512 distinct lengths
    assert sum(map(len, chunks)) == 65536 and len(chunks) > 1
