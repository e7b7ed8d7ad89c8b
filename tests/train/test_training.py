import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from isobn_tune.data.batches import TaskData, length_chunks
from isobn_tune.data.glue import DataSource
from isobn_tune.data.tasks import get_task
from isobn_tune.data.tokenization import default_cache_dir, tokenize_task
from isobn_tune.train.checkpoint_files import BEST_MODEL_FILE, CHECKPOINT_FILE, ISOTROPY_FILE
from isobn_tune.train.loop import evaluate, load_checkpoint, make_optimizer, train, train_step
from isobn_tune.train.metrics import compute_metrics
from isobn_tune.train.model import build_model, load_tokenizer
from isobn_tune.train.recipe import TrialConfig

TINY_OVERRIDES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                  "intermediate_size": 64}
CPU = torch.device("cpu")
TIMING_KEYS = ("train_examples_per_s",)
MNLI_HEADER = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"
)
MNLI_LABELS = ("entailment", "neutral", "contradiction")


class Interrupted(Exception):
    """Raised from a report hook to stop a run the way a crash or preemption would."""


def tiny_config(**kw: Any) -> TrialConfig:
    """A tiny random-init encoder (real MiniLM tokenizer and config) on RTE."""
    values = {"task": "rte", "model": "minilm", "random_init": True, "model_overrides": TINY_OVERRIDES,
              "lr": 1e-3, "batch_size": 16, "max_epochs": 1, "seed": 1}
    return TrialConfig(**{**values, **kw})


def deterministic(entry: dict[str, Any]) -> dict[str, Any]:
    """A history entry without its wall-clock measurements."""
    return {k: v for k, v in entry.items() if k not in TIMING_KEYS}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Train on one CPU thread: for these small steps thread hand-offs cost more than they save,
    and the test machine's cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("minilm")


@pytest.fixture(scope="module")
def rte(glue_dir: Path, tokenizer) -> TaskData:
    """64 real RTE training pairs and 32 dev pairs, truncated to 32 tokens."""
    return tokenize_task(get_task("rte"), tokenizer, 32, DataSource(glue_dir), default_cache_dir(), 64, 32)


def write_mnli(root: Path, rows_per_split: dict[str, int]) -> DataSource:
    """A synthetic MNLI folder in the GLUE layout with ``rows_per_split`` examples per split."""
    (root / "MNLI").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in rows_per_split.items():
        lines = [MNLI_HEADER]
        for i in range(n):
            label = MNLI_LABELS[rng.integers(3)]
            lines.append(f"{i}\t{i}\t{i}n\tfiction\t( a )\t( b )\t(ROOT a)\t(ROOT b)\t"
                         f"The cat number {i} sat down.\tA cat sat.\t{label}\t{label}")
        (root / "MNLI" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return DataSource(root)


def test_lr_warms_up_linearly_over_six_percent_then_decays_to_zero(rte):
    cfg = tiny_config(batch_size=2, max_epochs=2)  # 32 steps per epoch
    total, warmup = 64, math.floor(0.06 * 64)
    seen: list[list[float]] = []
    handle = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: seen.append([g["lr"] for g in opt.param_groups])
    )
    try:
        result = train(cfg, rte, device=CPU, save_checkpoints=False)
    finally:
        handle.remove()
    expected = [cfg.lr * min(k / warmup, (total - k) / (total - warmup)) for k in range(total)]
    assert warmup == 3 and len(seen) == total
    np.testing.assert_allclose([lrs[0] for lrs in seen], expected, rtol=1e-9, atol=1e-15)
    assert all(len(set(lrs)) == 1 for lrs in seen)  # decay and no-decay groups share the schedule
    assert result.history[-1]["lr"] == 0.0


def test_weight_decay_excludes_biases_and_layernorm_weights():
    cfg = tiny_config(weight_decay=0.01)
    model = build_model(cfg, num_labels=2)
    names = {id(p): n for n, p in model.named_parameters()}
    decay, no_decay = make_optimizer(model, cfg).param_groups
    decayed = {names[id(p)] for p in decay["params"]}
    excluded = {names[id(p)] for p in no_decay["params"]}
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.01, 0.0)
    assert decayed | excluded == set(names.values()) and not decayed & excluded
    assert {n for n in names.values() if n.endswith("bias") or "LayerNorm" in n} == excluded
    assert "classifier.weight" in decayed and "encoder.embeddings.word_embeddings.weight" in decayed


def test_optimizer_is_fused_adamw_with_the_recipe_eps():
    cfg = tiny_config()
    optimizer = make_optimizer(build_model(cfg, num_labels=2), cfg)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["eps"] for g in optimizer.param_groups] == [1e-6, 1e-6]
    assert all(g["fused"] for g in optimizer.param_groups)  # on CPU too, as transformers.Trainer


def test_a_batch_in_length_chunks_takes_the_same_step_as_whole(rte):
    """Chunks change only the padding: IsoBN's batch statistics, the loss and every gradient are
    those of the whole batch (dropout off, so both passes are deterministic)."""
    no_dropout = TINY_OVERRIDES | {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    cfg = tiny_config(cls_norm="isobn", model_overrides=no_dropout)
    idx = np.arange(24)
    chunks = length_chunks(idx, rte.train.lengths, 0)
    assert len(chunks) > 2  # the 24 real pairs have several lengths
    grads, losses = [], []
    for parts in ([idx], chunks):
        torch.manual_seed(0)  # the same random weights for both
        model = build_model(cfg, num_labels=2)
        model.train()
        optimizer = make_optimizer(model, cfg)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        captured = {}

        def keep_grads(opt, args, kwargs, model=model, captured=captured):
            captured.update({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})

        handle = register_optimizer_step_pre_hook(keep_grads)
        try:
            batches = [rte.train.collate(part) for part in parts]
            losses.append(train_step(model, batches, optimizer, scheduler, cfg, CPU).item())
        finally:
            handle.remove()
        grads.append(captured)
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)


def test_evaluation_in_length_order_returns_the_splits_order(glue_dir, tokenizer):
    cfg = tiny_config(eval_batch_size=8)
    model = build_model(cfg, num_labels=2)
    data = tokenize_task(get_task("rte"), tokenizer, 128, DataSource(glue_dir), default_cache_dir(), 2, 32)
    split = data.dev["dev"]
    preds, pooled = evaluate(model, split, cfg, CPU)
    model.eval()
    with torch.no_grad():  # one example at a time: no batch, no padding
        alone = torch.cat([model(split.collate([i]))[1] for i in range(len(split))]).numpy()
    assert len(set(split.lengths.tolist())) > 5 and pooled.shape == alone.shape
    np.testing.assert_allclose(pooled, alone, rtol=1e-4, atol=1e-5)
    assert preds.shape == (len(split),)


def test_same_seed_gives_identical_metrics(rte):
    cfg = tiny_config(max_epochs=2, seed=7)
    first = train(cfg, rte, device=CPU, save_checkpoints=False)
    second = train(cfg, rte, device=CPU, save_checkpoints=False)
    assert [deterministic(e) for e in first.history] == [deterministic(e) for e in second.history]


def test_different_seeds_give_different_runs(rte):
    first = train(tiny_config(seed=7), rte, device=CPU, save_checkpoints=False)
    second = train(tiny_config(seed=8), rte, device=CPU, save_checkpoints=False)
    assert first.history[0]["train_loss"] != second.history[0]["train_loss"]


def test_checkpoint_holds_the_full_trainer_state(rte):
    captured: dict[str, Any] = {}

    def report(metrics: dict[str, Any], checkpoint: Path | None) -> None:
        captured.update(files=sorted(p.name for p in checkpoint.iterdir()), state=load_checkpoint(checkpoint),
                        rng=torch.get_rng_state(), metrics=metrics)

    train(tiny_config(), rte, report=report, device=CPU)
    state = captured["state"]
    steps = 4  # 64 examples in batches of 16
    assert captured["files"] == sorted([BEST_MODEL_FILE, CHECKPOINT_FILE, ISOTROPY_FILE])
    assert (state["epoch"], state["best_epoch"]) == (1, 1)
    assert all(torch.equal(state["best_model"][k], v) for k, v in state["model"].items())
    assert state["best_objective"] == captured["metrics"]["objective"]
    assert state["model"]["cls_norm.running_cov"].shape == (32, 32)
    assert state["model"]["cls_norm.running_std"].shape == (32,)
    assert state["model"]["cls_norm.num_batches_tracked"] == steps
    assert state["scheduler"]["last_epoch"] == steps
    assert all(s["step"] == steps for s in state["optimizer"]["state"].values())
    assert torch.equal(state["rng_cpu"], captured["rng"])


def test_every_checkpoint_and_the_result_keep_the_best_epochs_model(rte):
    """Tune keeps only the newest checkpoints: each carries the best epoch's weights and IsoBN
    statistics, whichever epoch that was."""
    models, best_models, best_epochs = {}, {}, {}

    def report(metrics: dict[str, Any], checkpoint: Path | None) -> None:
        state = load_checkpoint(checkpoint)
        models[state["epoch"]], best_models[state["epoch"]] = state["model"], state["best_model"]
        best_epochs[state["epoch"]] = state["best_epoch"]

    result = train(tiny_config(max_epochs=3, lr=3e-3), rte, report=report, device=CPU)
    for epoch, best_epoch in best_epochs.items():
        assert _equal(best_models[epoch], models[best_epoch])
    assert _equal(result.best_model, models[result.best_epoch])


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_directory_is_removed_after_report(rte):
    handed: list[Path] = []
    train(tiny_config(cls_norm="none"), rte, report=lambda m, ckpt: handed.append(ckpt), device=CPU)
    assert len(handed) == 1 and not handed[0].exists()


def test_resume_from_epoch_one_checkpoint_matches_uninterrupted_run(rte, tmp_path):
    cfg = tiny_config(max_epochs=2)
    saved = tmp_path / "epoch1"

    def crash_after_first_epoch(metrics: dict[str, Any], checkpoint: Path | None) -> None:
        shutil.copytree(checkpoint, saved)
        raise Interrupted

    with pytest.raises(Interrupted):
        train(cfg, rte, report=crash_after_first_epoch, device=CPU)
    reported: list[dict[str, Any]] = []
    resumed = train(cfg, rte, report=lambda m, c: reported.append(m), resume_state=load_checkpoint(saved),
                    device=CPU)
    uninterrupted = train(cfg, rte, device=CPU)
    assert [m["epoch"] for m in reported] == [2]
    assert deterministic(resumed.history[1]) == deterministic(uninterrupted.history[1])
    assert (resumed.best_objective, resumed.best_epoch) == (uninterrupted.best_objective,
                                                           uninterrupted.best_epoch)


def test_patience_stops_when_dev_metric_stalls(rte):
    # A vanishing lr leaves predictions (and so the objective) unchanged after epoch 1.
    cfg = tiny_config(cls_norm="none", lr=1e-12, max_epochs=5, patience=2)
    result = train(cfg, rte, device=CPU, save_checkpoints=False)
    assert [e["epoch"] for e in result.history] == [1, 2, 3]
    assert result.stopped_early and result.best_epoch == 1


def test_without_patience_all_epochs_run(rte):
    cfg = tiny_config(cls_norm="none", lr=1e-12, max_epochs=3)
    result = train(cfg, rte, device=CPU, save_checkpoints=False)
    assert len(result.history) == 3 and not result.stopped_early


def test_mnli_reports_matched_and_mismatched_dev_metrics(tmp_path, tokenizer):
    sizes = {"train": 16, "dev_matched": 5, "dev_mismatched": 7}
    source = write_mnli(tmp_path / "glue", sizes)
    data = tokenize_task(get_task("mnli"), tokenizer, 32, source, tmp_path / "cache")
    result = train(tiny_config(task="mnli", batch_size=8), data, device=CPU, save_checkpoints=False)
    metrics = result.history[0]
    assert metrics["objective"] == metrics["dev_accuracy"]
    # Each accuracy is a fraction of its own split's size.
    assert metrics["dev_accuracy"] * 5 == pytest.approx(round(metrics["dev_accuracy"] * 5))
    assert metrics["dev_accuracy_mm"] * 7 == pytest.approx(round(metrics["dev_accuracy_mm"] * 7))


def test_bf16_autocast_trains_with_float32_isobn_statistics(rte):
    captured: dict[str, Any] = {}
    result = train(tiny_config(precision="bf16"), rte, device=CPU,
                   report=lambda m, ckpt: captured.update(load_checkpoint(ckpt)["model"]))
    assert math.isfinite(result.history[0]["train_loss"]) and math.isfinite(result.best_objective)
    for name in ("cls_norm.running_cov", "cls_norm.running_std"):
        assert captured[name].dtype == torch.float32 and torch.isfinite(captured[name]).all()


def majority_metrics(task_name: str, labels: np.ndarray) -> dict[str, float]:
    """The dev metrics of always predicting the most frequent label."""
    majority = np.full_like(labels, np.bincount(labels).argmax())
    return {f"dev_{k}": v for k, v in compute_metrics(get_task(task_name), majority, labels).items()}


def real_minilm_config(task: str, **kw: Any) -> TrialConfig:
    return TrialConfig(task=task, model="minilm", cls_norm="isobn", seed=0, **kw)


@pytest.mark.slow
def test_pretrained_minilm_with_isobn_beats_majority_on_real_mrpc_dev(glue_dir, tokenizer):
    """640 real MRPC training pairs, 2 epochs; scored on 200 real dev pairs (68-72% positive, so
    always answering "paraphrase" already scores acc_and_f1 0.75)."""
    data = tokenize_task(get_task("mrpc"), tokenizer, 64, DataSource(glue_dir), default_cache_dir(), 640, 200)
    result = train(real_minilm_config("mrpc", lr=1e-4, batch_size=16, max_epochs=2), data, device=CPU,
                   save_checkpoints=False)
    baseline = majority_metrics("mrpc", data.dev["dev"].labels)
    assert result.best_objective > baseline["dev_acc_and_f1"]


def test_pretrained_minilm_with_isobn_fits_its_real_training_examples(glue_dir, tokenizer):
    """The cheap stand-in for the test above: 32 real CoLA sentences, scored on themselves."""
    data = tokenize_task(get_task("cola"), tokenizer, 32, DataSource(glue_dir), default_cache_dir(), 32, 2)
    data = TaskData("cola", data.train, {"dev": data.train})
    result = train(real_minilm_config("cola", lr=3e-4, batch_size=8, max_epochs=4), data, device=CPU,
                   save_checkpoints=False)
    losses = [e["train_loss"] for e in result.history]
    assert majority_metrics("cola", data.train.labels)["dev_mcc"] == 0.0
    assert result.best_objective > 0.8
    assert losses[-1] < 0.5 * losses[0]
