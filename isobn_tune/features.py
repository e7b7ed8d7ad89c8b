"""Tokenisation of GLUE splits into :class:`~isobn_tune.batches.TokenizedSplit` arrays, cached on disk."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
from transformers import PreTrainedTokenizerBase

from isobn_tune.batches import TaskData, TokenizedSplit
from isobn_tune.glue_data import DataSource, load_split, source_fingerprint, subsample, text_columns
from isobn_tune.tasks import TaskSpec

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
    has_segments = "token_type_ids" in tokenizer.model_input_names
    features = {"input_ids": datasets.List(datasets.Value("int32"))}
    if has_segments:
        features["token_type_ids"] = datasets.List(datasets.Value("int8"))

    def encode(batch: dict[str, list]) -> dict[str, list]:
        encoded = tokenizer(
            *(batch[c] for c in columns),
            truncation=True,
            max_length=max_seq_length,
            return_attention_mask=False,
            return_token_type_ids=has_segments,
        )
        return {name: encoded[name] for name in features}

    cache_dir.mkdir(parents=True, exist_ok=True)
    tokenized = raw.map(
        encode,
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
        token_type_ids=_flatten(table.column("token_type_ids"))[0] if has_segments else None,
        labels=table.column("label").to_numpy().copy(),
        pad_token_id=tokenizer.pad_token_id,
    )


def _flatten(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Values and offsets (starting at 0) of an arrow list column, as owned numpy arrays."""
    lists = column.combine_chunks()
    offsets = lists.offsets.to_numpy().astype(np.int64)
    values = lists.values.to_numpy()[offsets[0] : offsets[-1]].copy()
    return values, offsets - offsets[0]
