"""GLUE metrics in plain numpy, and the name of the objective every trial reports."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from isobn_tune.data.tasks import TaskSpec

OBJECTIVE = "objective"  # the task's selection metric on dev at the current epoch
BEST_OBJECTIVE = "best_objective"  # its best value over epochs so far (the paper keeps the best epoch)
MODE = "max"


def compute_metrics(
    task: TaskSpec, predictions: np.ndarray, labels: np.ndarray, split: str | None = None
) -> dict[str, float]:
    """The task's metrics on one dev split (default: the first, the selection split).

    ``predictions`` are class ids, or scores for regression. Metric names carry the split's
    suffix (MNLI's ``dev_mismatched`` gives ``accuracy_mm``). Undefined correlations (a constant
    input) count as 0 rather than NaN.
    """
    predictions = np.asarray(predictions).ravel()
    labels = np.asarray(labels).ravel()
    if predictions.shape != labels.shape:
        raise ValueError(f"{predictions.shape[0]} predictions for {labels.shape[0]} labels")
    suffix = task.metric_suffix(split if split is not None else task.dev_splits[0])
    values: dict[str, float] = {}
    if task.is_regression:
        values["pearson"] = pearson(predictions, labels)
        values["spearman"] = spearman(predictions, labels)
        values["corr"] = (values["pearson"] + values["spearman"]) / 2
    else:
        values["accuracy"] = float(np.mean(predictions == labels)) if len(labels) else 0.0
        values["mcc"] = matthews_corrcoef(predictions, labels, task.num_labels)
        values["f1"] = f1_positive(predictions, labels)
        values["acc_and_f1"] = (values["accuracy"] + values["f1"]) / 2
    return {name + suffix: values[name] for name in task.split_metric_names}


def selection_value(task: TaskSpec, metrics: Mapping[str, float]) -> float:
    """The value of the task's selection metric, which is higher-is-better."""
    return float(metrics[task.selection_metric])


def matthews_corrcoef(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Matthews correlation (multi-class form); 0 when either side is constant."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.float64)
    np.add.at(confusion, (labels.astype(np.int64), predictions.astype(np.int64)), 1)
    true_sum, pred_sum = confusion.sum(axis=1), confusion.sum(axis=0)
    n, correct = confusion.sum(), np.trace(confusion)
    cov_true_pred = correct * n - true_sum @ pred_sum
    cov_pred = n * n - pred_sum @ pred_sum
    cov_true = n * n - true_sum @ true_sum
    if cov_pred * cov_true == 0:
        return 0.0
    return float(cov_true_pred / np.sqrt(cov_pred * cov_true))


def f1_positive(predictions: np.ndarray, labels: np.ndarray) -> float:
    """F1 of class 1; 0 when there are no true positives."""
    true_pos = np.sum((predictions == 1) & (labels == 1))
    wrong = np.sum((predictions == 1) != (labels == 1))
    return float(2 * true_pos / (2 * true_pos + wrong)) if true_pos else 0.0


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; 0 when either side is constant."""
    dx = x.astype(np.float64) - np.mean(x, dtype=np.float64)
    dy = y.astype(np.float64) - np.mean(y, dtype=np.float64)
    denominator = np.sqrt(np.sum(dx * dx) * np.sum(dy * dy))
    return float(np.sum(dx * dy) / denominator) if denominator > 0 else 0.0


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation, ties given their average rank; 0 when either side is constant."""
    return pearson(average_ranks(x), average_ranks(y))


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks
