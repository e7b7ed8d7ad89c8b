import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from isobn_tune.data.batches import TokenizedSplit, random_batches
from isobn_tune.data.glue import DataSource, load_split, subsample
from isobn_tune.data.tasks import get_task
from isobn_tune.data.tokenization import default_cache_dir, tokenize_task


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="module")
def rte(tokenizer, glue_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return tokenize_task(get_task("rte"), tokenizer, 64, DataSource(glue_dir), cache, 96, 33)


def tokenize_rte(tokenizer, glue_dir, cache_dir, max_seq_length=64):
    return tokenize_task(get_task("rte"), tokenizer, max_seq_length, DataSource(glue_dir), cache_dir, 40, 8)


def test_splits_have_the_requested_sizes_and_dtypes(rte):
    assert (len(rte.train), list(rte.dev), len(rte.dev["dev"])) == (96, ["dev"], 33)
    split = rte.train
    assert (split.input_ids.dtype, split.offsets.dtype, split.token_type_ids.dtype) == (
        np.int32,
        np.int64,
        np.int8,
    )
    assert split.labels.dtype == np.int64 and len(split.offsets) == 97
    assert len(split.input_ids) == len(split.token_type_ids) == split.offsets[-1]


def test_examples_are_the_tokenizer_pairs_truncated(rte, tokenizer, glue_dir):
    raw = subsample(load_split(get_task("rte"), "train", DataSource(glue_dir)), 96)
    expected = tokenizer(list(raw["text_a"]), list(raw["text_b"]), truncation=True, max_length=64)
    split = rte.train
    for i in range(len(split)):
        got = split.input_ids[split.offsets[i] : split.offsets[i + 1]]
        assert got.tolist() == expected["input_ids"][i]
    assert split.lengths.max() == 64
    np.testing.assert_array_equal(split.labels, raw["label"])


def test_collate_pads_to_the_longest_example_of_the_batch(rte, tokenizer):
    split = rte.train
    indices = [3, 0, 7]
    batch = split.collate(indices)
    lengths = split.lengths[indices]
    assert batch["input_ids"].shape == (3, lengths.max())
    assert batch["attention_mask"].sum(1).tolist() == lengths.tolist()
    assert (batch["input_ids"][batch["attention_mask"] == 0] == tokenizer.pad_token_id).all()
    first = split.input_ids[split.offsets[3] : split.offsets[4]]
    assert batch["input_ids"][0, : lengths[0]].tolist() == first.tolist()
    segments = batch["token_type_ids"][0, : lengths[0]]
    assert segments[0] == 0 and segments[-1] == 1  # [CLS] of text_a, last [SEP] of text_b
    assert batch["labels"].tolist() == split.labels[indices].tolist()
    assert batch["input_ids"].dtype == batch["labels"].dtype == torch.int64


def test_second_call_loads_from_cache_without_tokenizing(tokenizer, glue_dir, tmp_path, monkeypatch):
    calls = []
    original = type(tokenizer).__call__

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(tokenizer), "__call__", counting)
    first = tokenize_rte(tokenizer, glue_dir, tmp_path)
    assert calls
    calls.clear()
    second = tokenize_rte(tokenizer, glue_dir, tmp_path)
    assert calls == []
    np.testing.assert_array_equal(first.train.input_ids, second.train.input_ids)
    calls.clear()
    tokenize_rte(tokenizer, glue_dir, tmp_path, max_seq_length=32)
    assert calls, "a different max_seq_length must not reuse the cache"


def test_tokenizer_without_segment_ids_gives_none(minilm_path, glue_dir, tmp_path):
    roberta_like = AutoTokenizer.from_pretrained(
        minilm_path, model_input_names=["input_ids", "attention_mask"]
    )
    data = tokenize_rte(roberta_like, glue_dir, tmp_path)
    assert data.train.token_type_ids is None
    assert set(data.train.collate([0, 1])) == {"input_ids", "attention_mask", "labels"}


def test_regression_labels_are_float32(tokenizer, glue_dir, tmp_path):
    data = tokenize_task(get_task("stsb"), tokenizer, 32, DataSource(glue_dir), tmp_path, 10, 10)
    assert data.train.labels.dtype == np.float32
    assert data.train.collate([0, 1])["labels"].dtype == torch.float32


def test_default_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ISOBN_TUNE_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("ISOBN_TUNE_CACHE")
    assert default_cache_dir().parts[-2:] == (".cache", "isobn_tune")


def split_of(n: int) -> TokenizedSplit:
    return TokenizedSplit(
        input_ids=np.arange(n, dtype=np.int32),
        offsets=np.arange(n + 1, dtype=np.int64),
        token_type_ids=None,
        labels=np.zeros(n, dtype=np.int64),
        pad_token_id=0,
    )


def test_shuffled_batches_are_a_reproducible_permutation():
    def order(seed):
        g = torch.Generator().manual_seed(seed)
        return np.concatenate(
            list(random_batches(split_of(70), 32, generator=g, drop_singleton=False))
        )

    assert sorted(order(0).tolist()) == list(range(70))
    np.testing.assert_array_equal(order(0), order(0))
    assert not np.array_equal(order(0), order(1))


@pytest.mark.parametrize(("drop", "sizes"), [(True, [32, 32]), (False, [32, 32, 1])])
def test_a_final_singleton_batch_is_dropped_on_request(drop, sizes):
    g = torch.Generator().manual_seed(0)
    batches = random_batches(split_of(65), 32, generator=g, drop_singleton=drop)
    assert [len(b) for b in batches] == sizes
