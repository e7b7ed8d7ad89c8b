"""The GLUE task registry: names, data layout on the hub, labels and metrics of each task."""

from __future__ import annotations

from dataclasses import dataclass

from isobn_tune.errors import UserError


@dataclass(frozen=True)
class TaskSpec:
    """One GLUE task.

    Every dev split is scored with ``split_metric_names``; the names get that split's entry of
    ``dev_suffixes`` appended (MNLI's mismatched split reports ``accuracy_mm``). The first dev split
    is the one model selection uses.
    """

    name: str
    glue_dir_name: str
    hub_config: str
    text_columns: tuple[str, ...]
    num_labels: int
    split_metric_names: tuple[str, ...]
    selection_metric: str
    dev_splits: tuple[str, ...] = ("dev",)
    dev_suffixes: tuple[str, ...] = ("",)

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Every metric reported for the task, over all its dev splits."""
        return tuple(m + s for s in self.dev_suffixes for m in self.split_metric_names)

    def metric_suffix(self, split: str) -> str:
        """The suffix appended to the metric names of dev split ``split``."""
        if split not in self.dev_splits:
            raise ValueError(f"{split!r} is not a dev split of {self.name}: {list(self.dev_splits)}")
        return self.dev_suffixes[self.dev_splits.index(split)]


_PAIR_CLASS_METRICS = ("f1", "accuracy", "acc_and_f1")
_CORRELATIONS = ("pearson", "spearman", "corr")

TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        TaskSpec("cola", "CoLA", "cola", ("sentence",), 2, ("mcc",), "mcc"),
        TaskSpec("sst2", "SST-2", "sst2", ("sentence",), 2, ("accuracy",), "accuracy"),
        TaskSpec("mrpc", "MRPC", "mrpc", ("sentence1", "sentence2"), 2, _PAIR_CLASS_METRICS, "acc_and_f1"),
        TaskSpec("qqp", "QQP", "qqp", ("question1", "question2"), 2, _PAIR_CLASS_METRICS, "acc_and_f1"),
        TaskSpec("stsb", "STS-B", "stsb", ("sentence1", "sentence2"), 1, _CORRELATIONS, "corr"),
        TaskSpec(
            "mnli",
            "MNLI",
            "mnli",
            ("premise", "hypothesis"),
            3,
            ("accuracy",),
            "accuracy",
            dev_splits=("dev_matched", "dev_mismatched"),
            dev_suffixes=("", "_mm"),
        ),
        TaskSpec("qnli", "QNLI", "qnli", ("question", "sentence"), 2, ("accuracy",), "accuracy"),
        TaskSpec("rte", "RTE", "rte", ("sentence1", "sentence2"), 2, ("accuracy",), "accuracy"),
    )
}

PAPER_TASKS: tuple[str, ...] = ("cola", "sst2", "mrpc", "qqp", "qnli", "rte", "mnli")
"""The seven GLUE tasks of the IsoBN paper (STS-B is supported in addition)."""


def get_task(name: str) -> TaskSpec:
    """Look a task up by name, case-insensitively, accepting GLUE spellings like ``SST-2``."""
    key = name.strip().lower().replace("-", "").replace("_", "")
    if key not in TASKS:
        raise UserError(f"unknown task {name!r}; allowed tasks: {', '.join(TASKS)}")
    return TASKS[key]
