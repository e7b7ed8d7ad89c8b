"""Tokenisation of GLUE splits into :class:`~isobn_tune.data.batches.TokenizedSplit` arrays, cached
on disk."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
from transformers import PreTrainedTokenizerBase

from isobn_tune.data.batches import TaskData, TokenizedSplit
from isobn_tune.data.glue import DataSource, load_split, source_fingerprint, subsample, text_columns
from isobn_tune.data.tasks import TaskSpec

CACHE_ENV = "ISOBN_TUNE_CACHE"
_CACHE_FORMAT = 1  # bump when the tokenised layout changes, to orphan old cache files


def default_cache_dir() -> Path:
    """``$ISOBN_TUNE_CACHE``, else ``~/.cache/isobn_tune``."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/isobn_tune").expanduser()


def tokenize_task(
    task: TaskSpec,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    source: DataSource,
    cache_dir: Path,
    max_train_examples: int | None = None,
    max_dev_examples: int | None = None,
) -> TaskData:
    """Tokenise a task's train and dev splits, reusing earlier results cached in ``cache_dir``.

    Every split is read (and so validated) before any is tokenised: a malformed dev file fails
    before the train split's tokenisation starts.
    """
    limits = {"train": max_train_examples, **{split: max_dev_examples for split in task.dev_splits}}
    raw = {split: subsample(load_split(task, split, source), n) for split, n in limits.items()}

    def tokenize(split: str) -> TokenizedSplit:
        return _tokenize_split(
            task, split, raw[split], tokenizer, max_seq_length, source, Path(cache_dir), limits[split]
        )

    return TaskData(
        task=task.name,
        train=tokenize("train"),
        dev={split: tokenize(split) for split in task.dev_splits},
    )


def _cache_key(
    task: TaskSpec,
    split: str,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    source: DataSource,
    max_examples: int | None,
) -> str:
    parts = (
        _CACHE_FORMAT,
        task.name,
        split,
        tokenizer.name_or_path,
        type(tokenizer).__qualname__,
        len(tokenizer),
        max_seq_length,
        source_fingerprint(task, split, source),
        max_examples,
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def _tokenize_split(
    task: TaskSpec,
    split: str,
    raw: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    source: DataSource,
    cache_dir: Path,
    max_examples: int | None,
) -> TokenizedSplit:
    key = _cache_key(task, split, tokenizer, max_seq_length, source, max_examples)
    columns = list(text_columns(task))
    features = {"input_ids": datasets.List(datasets.Value("int32"))}
    if _has_segments(tokenizer):
        features["token_type_ids"] = datasets.List(datasets.Value("int8"))
    cache_dir.mkdir(parents=True, exist_ok=True)
    tokenized = raw.map(
        lambda batch: encode(tokenizer, [batch[c] for c in columns], max_seq_length),
        batched=True,
        remove_columns=columns,
        features=datasets.Features({**features, "label": raw.features["label"]}),
        cache_file_name=str(cache_dir / f"{task.name}-{split}-{key}.arrow"),
        new_fingerprint=key,
        desc=f"Tokenizing {task.name} {split}",
    )
    table = tokenized.with_format("arrow")[:]
    input_ids, offsets = _flatten(table.column("input_ids"))
    return TokenizedSplit(
        input_ids=input_ids,
        offsets=offsets,
        token_type_ids=_flatten(table.column("token_type_ids"))[0] if "token_type_ids" in features else None,
        labels=table.column("label").to_numpy().copy(),
        pad_token_id=tokenizer.pad_token_id,
    )


def encode(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[Sequence[str]], max_seq_length: int
) -> dict[str, list[list[int]]]:
    """Token ids, and segment ids when the tokenizer has them, of examples given column by column
    (``[text_a]`` or ``[text_a, text_b]``): how training and predictions tokenise alike."""
    encoded = tokenizer(
        *texts,
        truncation=True,
        max_length=max_seq_length,
        return_attention_mask=False,
        return_token_type_ids=_has_segments(tokenizer),
    )
    names = ("input_ids", "token_type_ids") if _has_segments(tokenizer) else ("input_ids",)
    return {name: encoded[name] for name in names}


def encode_split(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[Sequence[str]], max_seq_length: int
) -> TokenizedSplit:
    """Unlabelled examples (column by column) as a split, for predictions; labels are zeros."""
    encoded = encode(tokenizer, texts, max_seq_length)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    segments = encoded.get("token_type_ids")
    return TokenizedSplit(
        input_ids=np.fromiter(itertools.chain.from_iterable(encoded["input_ids"]), np.int32, sum(lengths)),
        offsets=np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]),
        token_type_ids=None if segments is None
        else np.fromiter(itertools.chain.from_iterable(segments), np.int8, sum(lengths)),
        labels=np.zeros(len(lengths), dtype=np.int64),
        pad_token_id=tokenizer.pad_token_id,
    )


def _has_segments(tokenizer: PreTrainedTokenizerBase) -> bool:
    return "token_type_ids" in tokenizer.model_input_names


def _flatten(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Values and offsets (starting at 0) of an arrow list column, as owned numpy arrays."""
    lists = column.combine_chunks()
    offsets = lists.offsets.to_numpy().astype(np.int64)
    values = lists.values.to_numpy()[offsets[0] : offsets[-1]].copy()
    return values, offsets - offsets[0]
