"""Tokenised splits as flat numpy arrays and their batches with dynamic padding.

Kept free of ``datasets`` so the training loop imports only torch, numpy and transformers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from isobn_tune.data import BATCHINGS


@dataclass
class TokenizedSplit:
    """All examples of a split, token ids concatenated; example ``i`` is ``offsets[i]:offsets[i+1]``.

    Plain numpy arrays, so Ray's object store shares them between workers without copies.
    ``token_type_ids`` is None for tokenizers without segment ids (e.g. RoBERTa).
    """

    input_ids: np.ndarray  # int32, flat
    offsets: np.ndarray  # int64, n + 1
    token_type_ids: np.ndarray | None  # int8, flat
    labels: np.ndarray  # int64 class ids or float32 scores
    pad_token_id: int

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @cached_property
    def lengths(self) -> np.ndarray:
        """Tokens per example; computed once, since every collated batch or chunk reads it."""
        return np.diff(self.offsets)

    def collate(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """The examples at ``indices``, padded to the longest of them."""
        idx = np.asarray(indices, dtype=np.int64)
        lengths = self.lengths[idx]
        mask = np.arange(lengths.max(initial=0)) < lengths[:, None]
        flat = (self.offsets[idx][:, None] + np.arange(mask.shape[1]))[mask]
        input_ids = np.full(mask.shape, self.pad_token_id, dtype=np.int64)
        input_ids[mask] = self.input_ids[flat]
        batch = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(mask.astype(np.int64)),
        }
        if self.token_type_ids is not None:
            token_type_ids = np.zeros(mask.shape, dtype=np.int64)
            token_type_ids[mask] = self.token_type_ids[flat]
            batch["token_type_ids"] = torch.from_numpy(token_type_ids)
        batch["labels"] = torch.from_numpy(self.labels[idx])
        return batch


@dataclass
class TaskData:
    """A task's tokenised train split and dev splits (keyed by ``TaskSpec.dev_splits``)."""

    task: str
    train: TokenizedSplit
    dev: dict[str, TokenizedSplit]


def random_batches(
    split: TokenizedSplit,
    batch_size: int,
    *,
    generator: torch.Generator,
    drop_singleton: bool,
) -> Iterator[np.ndarray]:
    """Index arrays of consecutive batches of a ``generator``-drawn permutation.

    With ``drop_singleton`` a last batch of exactly one example is dropped, since batch
    statistics need at least two.
    """
    order = torch.randperm(len(split), generator=generator).numpy()
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        if drop_singleton and len(batch) == 1:
            return
        yield batch


def length_grouped_batches(
    split: TokenizedSplit,
    batch_size: int,
    *,
    generator: torch.Generator,
    drop_singleton: bool,
    mega_batch_factor: int = 50,
) -> Iterator[np.ndarray]:
    """Index arrays of batches of similar lengths, as transformers' ``LengthGroupedSampler``.

    The indices are shuffled with ``generator`` (one ``torch.randperm`` over the split), cut into
    mega-batches of ``mega_batch_factor * batch_size`` examples, each sorted by length (longest
    first, stable) and cut into batches of ``batch_size``. The order of the batches is then drawn
    with the same generator, except that the batch holding the longest example comes first, so
    running out of memory shows at the first step. Same generator seed, same batches.

    Every full mega-batch splits into full batches, so only the last batch of the last mega-batch
    can be short; with ``drop_singleton`` it is dropped when it holds a single example (batch
    statistics need at least two), and no other batch is ever smaller than ``batch_size``.
    The batches are drawn at call time, so bad arguments raise here and not at the first step.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if mega_batch_factor < 1:
        raise ValueError(f"mega_batch_factor must be >= 1, got {mega_batch_factor!r}")
    if drop_singleton and batch_size == 1 and len(split) > 0:
        raise ValueError("batch_size=1 with drop_singleton=True would drop every batch; use batch_size >= 2")
    lengths = split.lengths
    order = torch.randperm(len(split), generator=generator).numpy()
    mega = mega_batch_factor * batch_size
    batches: list[np.ndarray] = []
    for start in range(0, len(order), mega):
        members = order[start : start + mega]
        members = members[np.argsort(-lengths[members], kind="stable")]
        batches.extend(members[i : i + batch_size] for i in range(0, len(members), batch_size))
    if drop_singleton and batches and len(batches[-1]) == 1:
        batches.pop()
    if not batches:
        return iter(())
    perm = torch.randperm(len(batches), generator=generator).tolist()
    batches = [batches[i] for i in perm]
    longest = int(np.argmax([lengths[b[0]] for b in batches]))  # each batch is sorted longest first
    batches[0], batches[longest] = batches[longest], batches[0]
    return iter(batches)


def length_chunks(indices: np.ndarray, lengths: np.ndarray, chunk_cost: float) -> list[np.ndarray]:
    """A batch's ``indices``, longest first, cut into chunks to be padded each to its own longest.

    A random batch padded to its longest example wastes much of its compute on padding (RTE:
    about 40% of the tokens, and more of the attention). The cuts minimise the padded tokens of
    all chunks plus ``chunk_cost`` tokens per chunk, the price of one more, smaller, encoder pass;
    a batch of similar lengths stays whole. Cutting between equal lengths never pays, so the
    dynamic programme runs over the distinct lengths: at most max-length squared steps for any
    batch size.
    """
    indices = np.asarray(indices)
    if len(indices) == 0:
        return []
    order = indices[np.argsort(-lengths[indices], kind="stable")]
    sorted_lengths = lengths[order]
    starts = np.flatnonzero(np.r_[True, sorted_lengths[1:] != sorted_lengths[:-1]])
    bounds = np.r_[starts, len(order)]  # chunk boundaries may fall only here
    best = np.zeros(len(bounds))  # best[j]: least cost of the examples before bounds[j]
    cut = np.zeros(len(bounds), dtype=np.int64)
    for j in range(1, len(bounds)):
        costs = best[:j] + (bounds[j] - bounds[:j]) * sorted_lengths[starts[:j]] + chunk_cost
        cut[j] = int(np.argmin(costs))
        best[j] = costs[cut[j]]
    chunks, j = [], len(bounds) - 1
    while j > 0:
        chunks.append(order[bounds[cut[j]] : bounds[j]])
        j = cut[j]
    return chunks[::-1]


def train_batches(
    split: TokenizedSplit,
    batch_size: int,
    *,
    batching: str,
    generator: torch.Generator,
    drop_singleton: bool = True,
) -> Iterator[np.ndarray]:
    """A training epoch's batches by the recipe's ``batching`` name (one of ``BATCHINGS``).

    ``"random"``: :func:`random_batches`; ``"length_grouped"``:
    :func:`length_grouped_batches` with its default mega-batch factor.
    """
    if batching == "random":
        return random_batches(split, batch_size, generator=generator, drop_singleton=drop_singleton)
    if batching == "length_grouped":
        return length_grouped_batches(split, batch_size, generator=generator, drop_singleton=drop_singleton)
    raise ValueError(f"unknown batching {batching!r}; allowed: {', '.join(BATCHINGS)}")
