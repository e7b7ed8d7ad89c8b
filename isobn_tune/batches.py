"""Tokenised splits as flat numpy arrays and their batches with dynamic padding.

Kept free of ``datasets`` so the training loop imports only torch, numpy and transformers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch


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

    @property
    def lengths(self) -> np.ndarray:
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


def iter_batches(
    split: TokenizedSplit,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None,
    drop_singleton: bool,
) -> Iterator[np.ndarray]:
    """Index arrays of consecutive batches, in a ``generator``-drawn order when ``shuffle``.

    With ``drop_singleton`` a last batch of exactly one example is dropped, since batch
    statistics need at least two.
    """
    n = len(split)
    order = torch.randperm(n, generator=generator).numpy() if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        batch = order[start : start + batch_size]
        if drop_singleton and len(batch) == 1:
            return
        yield batch
