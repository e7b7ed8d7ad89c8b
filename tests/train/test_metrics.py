import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk

from isobn_tune.data.glue import DataSource, load_split
from isobn_tune.data.tasks import TASKS, get_task
from isobn_tune.train.metrics import average_ranks, compute_metrics, selection_value


def overlap(ds) -> np.ndarray:
    """Jaccard word overlap of each pair: a cheap real-data predictor."""
    scores = []
    for a, b in zip(ds["text_a"], ds["text_b"], strict=True):
        wa, wb = set(a.lower().split()), set(b.lower().split())
        scores.append(len(wa & wb) / max(len(wa | wb), 1))
    return np.array(scores)


def dev(glue_dir, name):
    ds = load_split(get_task(name), "dev", DataSource(glue_dir))
    return ds, np.array(ds["label"])


def test_cola_mcc_of_a_length_rule_matches_sklearn(glue_dir):
    ds, labels = dev(glue_dir, "cola")
    lengths = np.array([len(s.split()) for s in ds["text_a"]])
    predictions = (lengths <= np.median(lengths)).astype(int)
    got = compute_metrics(get_task("cola"), predictions, labels)
    assert got == {"mcc": pytest.approx(sk.matthews_corrcoef(labels, predictions), abs=1e-12)}


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_mrpc_f1_accuracy_of_overlap_thresholding_match_sklearn(glue_dir, threshold):
    ds, labels = dev(glue_dir, "mrpc")
    predictions = (overlap(ds) > threshold).astype(int)
    got = compute_metrics(get_task("mrpc"), predictions, labels)
    f1, acc = sk.f1_score(labels, predictions), sk.accuracy_score(labels, predictions)
    assert got == pytest.approx({"f1": f1, "accuracy": acc, "acc_and_f1": (f1 + acc) / 2}, abs=1e-12)


def test_rte_accuracy_of_overlap_thresholding_matches_sklearn(glue_dir):
    ds, labels = dev(glue_dir, "rte")
    predictions = (overlap(ds) < 0.2).astype(int)  # 1 = not_entailment
    got = compute_metrics(get_task("rte"), predictions, labels)
    assert got == {"accuracy": pytest.approx(sk.accuracy_score(labels, predictions), abs=1e-12)}


@pytest.mark.parametrize("decimals", [3, 0])  # 0 decimals: heavy ties on both sides
def test_stsb_correlations_of_overlap_scores_match_scipy(glue_dir, decimals):
    ds, labels = dev(glue_dir, "stsb")
    predictions = np.round(5 * overlap(ds), decimals).astype(np.float32)
    got = compute_metrics(get_task("stsb"), predictions, labels)
    r = stats.pearsonr(predictions, labels).statistic
    rho = stats.spearmanr(predictions, labels).statistic
    assert got == pytest.approx({"pearson": r, "spearman": rho, "corr": (r + rho) / 2}, abs=1e-6)


def test_average_ranks_match_scipy_on_tie_heavy_data():
    x = np.random.default_rng(0).integers(0, 5, size=1000).astype(float)
    np.testing.assert_allclose(average_ranks(x), stats.rankdata(x))


@pytest.mark.parametrize("seed", range(3))
def test_random_predictions_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels, predictions = rng.integers(0, 2, 500), rng.integers(0, 2, 500)
    got = compute_metrics(get_task("cola"), predictions, labels)
    assert got["mcc"] == pytest.approx(sk.matthews_corrcoef(labels, predictions), abs=1e-12)
    got = compute_metrics(get_task("qqp"), predictions, labels)
    assert got["f1"] == pytest.approx(sk.f1_score(labels, predictions), abs=1e-12)


def test_mnli_three_class_accuracy_per_dev_split():
    rng = np.random.default_rng(1)
    labels, predictions = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    mnli = get_task("mnli")
    expected = sk.accuracy_score(labels, predictions)
    assert compute_metrics(mnli, predictions, labels) == {"accuracy": pytest.approx(expected)}
    mismatched = compute_metrics(mnli, predictions, labels, split="dev_mismatched")
    assert mismatched == {"accuracy_mm": pytest.approx(expected)}


@pytest.mark.parametrize("constant", [0, 1])
def test_all_one_class_predictions_give_finite_metrics(glue_dir, constant):
    _, labels = dev(glue_dir, "mrpc")
    predictions = np.full_like(labels, constant)
    got = compute_metrics(get_task("mrpc"), predictions, labels)
    assert got["f1"] == pytest.approx(sk.f1_score(labels, predictions, zero_division=0.0))
    assert compute_metrics(get_task("cola"), predictions, labels) == {"mcc": 0.0}


def test_constant_regression_predictions_give_zero_correlation():
    labels = np.linspace(0, 5, 50)
    got = compute_metrics(get_task("stsb"), np.full(50, 2.5), labels)
    assert got == {"pearson": 0.0, "spearman": 0.0, "corr": 0.0}


def test_every_task_reports_its_metric_names_and_selection_value():
    rng = np.random.default_rng(2)
    for task in TASKS.values():
        labels = rng.random(40) * 5 if task.is_regression else rng.integers(0, task.num_labels, 40)
        reported = {}
        for split in task.dev_splits:
            reported |= compute_metrics(task, rng.permutation(labels), labels, split=split)
        assert tuple(reported) == task.metric_names
        assert selection_value(task, reported) == reported[task.selection_metric]


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="3 predictions for 4 labels"):
        compute_metrics(get_task("rte"), np.zeros(3), np.zeros(4))
