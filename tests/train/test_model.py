import re
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoConfig, BertModel

from isobn_tune.data.tasks import get_task
from isobn_tune.errors import UserError
from isobn_tune.train.model import ClsNormClassifier, build_model, load_tokenizer
from isobn_tune.train.model_source import resolve_model_name
from isobn_tune.train.recipe import TrialConfig

TINY_OVERRIDES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                  "intermediate_size": 64}


def tiny_config(**kw: Any) -> TrialConfig:
    """A tiny random-init encoder with the real MiniLM config and tokenizer (RTE unless given)."""
    values = {"task": "rte", "model": "minilm", "random_init": True, "model_overrides": TINY_OVERRIDES}
    return TrialConfig(**{**values, **kw})


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    tokenizer = load_tokenizer("minilm")
    enc = tokenizer(
        ["A cat sat on the mat.", "Stocks fell sharply today.", "He left."],
        ["A cat was sitting.", "Markets rose.", "She stayed at home all day."],
        padding=True,
        return_tensors="pt",
    )
    return {**enc, "labels": torch.tensor([0, 1, 1])}


def encoder_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k != "labels"}


def test_minilm_resolves_to_the_installed_package_directory(minilm_path):
    assert Path(resolve_model_name("minilm")).resolve() == minilm_path.resolve()


def test_hub_names_pass_through_unchanged():
    assert resolve_model_name("bert-base-uncased") == "bert-base-uncased"


def test_missing_model_path_is_a_user_error_naming_it(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(UserError, match=re.escape(f"model directory '{missing}' does not exist")):
        build_model(TrialConfig(task="rte", model=str(missing)), num_labels=2)


def test_random_init_with_overrides_builds_the_tiny_encoder():
    model = build_model(tiny_config(), num_labels=2)
    config = model.encoder.config
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (32, 2, 64)
    assert len(model.encoder.encoder.layer) == 2
    assert (model.classifier.in_features, model.classifier.out_features) == (32, 2)
    assert config.vocab_size == AutoConfig.from_pretrained(resolve_model_name("minilm")).vocab_size


def test_pooler_pooling_uses_the_encoder_pooler_output(batch):
    model = build_model(tiny_config(pooling="pooler"), num_labels=2).eval()
    with torch.no_grad():
        expected = model.encoder(**encoder_inputs(batch)).pooler_output
        torch.testing.assert_close(model.pooled(batch), expected, rtol=0, atol=0)


def test_cls_pooling_uses_the_last_layer_cls_state(batch):
    model = build_model(tiny_config(pooling="cls"), num_labels=2).eval()
    with torch.no_grad():
        expected = model.encoder(**encoder_inputs(batch)).last_hidden_state[:, 0]
        torch.testing.assert_close(model.pooled(batch), expected, rtol=0, atol=0)


def test_encoder_without_pooler_falls_back_to_cls(batch):
    config = AutoConfig.from_pretrained(resolve_model_name("minilm"), **TINY_OVERRIDES)
    encoder = BertModel(config, add_pooling_layer=False)
    model = build_model(tiny_config(pooling="pooler"), num_labels=2, encoder=encoder).eval()
    assert model.pooling == "cls"
    with torch.no_grad():
        expected = encoder(**encoder_inputs(batch)).last_hidden_state[:, 0]
        torch.testing.assert_close(model.pooled(batch), expected, rtol=0, atol=0)


def test_logits_are_the_head_applied_to_the_normalised_pooled_embedding(batch):
    model = build_model(tiny_config(cls_norm="isobn"), num_labels=2)
    model.train()
    model(batch)  # one training batch gives IsoBN running statistics
    model.eval()
    with torch.no_grad():
        logits, pooled = model(batch)
        expected = model.classifier(model.cls_norm(pooled))
    assert not torch.allclose(model.cls_norm(pooled), pooled)
    torch.testing.assert_close(logits, expected)


def test_stsb_gets_a_regression_head_with_mse_loss(batch):
    model: ClsNormClassifier = build_model(tiny_config(task="stsb"), get_task("stsb").num_labels)
    assert model.classifier.out_features == 1
    scores = torch.tensor([4.5, 0.2, 3.0])
    logits, _ = model(batch)
    loss = model.loss(logits, scores)
    torch.testing.assert_close(loss, torch.nn.functional.mse_loss(logits.squeeze(-1), scores))


def test_classification_uses_cross_entropy(batch):
    model = build_model(tiny_config(), get_task("rte").num_labels)
    logits, _ = model(batch)
    loss = model.loss(logits, batch["labels"])
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, batch["labels"]))
