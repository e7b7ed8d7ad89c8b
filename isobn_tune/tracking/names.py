"""Every name a sweep uses in MLflow: tags, metric keys and artifact paths.

Tracking writes them, and ``isobn-tune report``, the statistics and the benchmarks read them back;
all import them from here.
"""

from __future__ import annotations

# The sweep's experiment, as MLflow's UI reads it: a model-training experiment, opened at its runs.
# MLflow's UI before 3.17 (and a tracking server of that age) chooses the experiment's view by its
# kind tag; 3.17's UI ignores the tag and follows the page address's workflow type instead.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # MLflow's own
EXPERIMENT_KIND_TRAINING = "custom_model_development"
UI_WORKFLOW_QUERY = "workflowType=machine_learning"  # not its default "genai" (traces, token usage)

# Tags of both kinds of run.
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: nests a child run under its parent
KIND_TAG = "isobn.kind"  # KIND_SWEEP (the parent) or KIND_TRIAL
KIND_SWEEP, KIND_TRIAL = "sweep", "trial"
STATUS_TAG = "isobn.status"  # trials: running, finished, stopped (by the scheduler), errored

# Tags of the parent run.
SWEEP_TAG = "isobn.sweep"
TASKS_TAG = "isobn.tasks"
SCHEDULER_TAG = "isobn.scheduler"
SWEEP_ERRORED = "errored trials"  # the parent's STATUS_TAG when any trial errored
NOTE_TAG = "mlflow.note.content"  # MLflow's own: the run's description, shown on its page


def best_group_tag(task: str) -> str:
    """The best configuration group of ``task`` (highest seed median)."""
    return f"isobn.best_group.{task}"


def best_label_tag(task: str) -> str:
    return f"isobn.best_label.{task}"


# Tags of a trial's child run.
TRIAL_TAG = "isobn.trial_id"
TASK_TAG = "isobn.task"
SEED_TAG = "isobn.seed"
GROUP_TAG = "isobn.config_group"  # the configuration without its seed
METHOD_TAG = "isobn.method"
ERROR_TAG = "isobn.error"
NEAR_IDENTITY_TAG = "isobn.near_identity"  # "true": IsoBN ended within 1% of the identity
RETRIED_TAG = "isobn.retried"
# "true": run by `isobn-tune confirm` at fresh seeds: it confirms, never selects (TrialRecord.confirmation)
CONFIRMATION_TAG = "isobn.confirmation"
# Why a race (scheduler race_by_config) stopped the trial's configuration, on each of its seeds' runs.
RACE_EPOCH_TAG = "isobn.race.epoch"  # the epoch it stopped at
RACE_INCUMBENT_TAG = "isobn.race.incumbent"  # the configuration it lost to, as that one's GROUP_TAG
RACE_DIFF_TAG = "isobn.race.diff_points"  # median over the shared seeds of it - incumbent, x100
RACE_P_VALUE_TAG = "isobn.race.p_value"  # of the one-sided paired test
RACE_PAIRS_TAG = "isobn.race.n_pairs"  # the seeds compared

# Metrics. A child run has every finite number its trial reports per epoch (step = epoch), plus:
BEST_DEV_METRIC = "best_dev_metric"  # the trial's best dev objective, logged when it ends
BEST_EPOCH_METRIC = "best_epoch"  # per epoch: the epoch of the best dev objective so far
# The [CLS] isotropy (ISO_*, train/isotropy.py) and how much IsoBN acts (ISOBN_*, train/isobn_params.py)
# are metrics too, named next to the code that computes them.
EPOCH_METRIC = "epoch"


def group_metric(task: str, label: str, statistic: str) -> str:
    """A parent-run metric of one configuration over its seeds (statistic: median, std, n_seeds)."""
    return f"{task}/{label}/{statistic}"


def best_median_metric(task: str) -> str:
    return f"{task}/best_median"


# Artifacts.
SPACE_ARTIFACT = "space.yaml"  # the parent's effective space file (overrides applied)
TABLE_CSV_ARTIFACT = "results/table.csv"
TABLE_MD_ARTIFACT = "results/table.md"
TRIAL_CONFIG_ARTIFACT = "trial_config.json"
ISOTROPY_ARTIFACT_DIR = "isotropy"
ISOTROPY_FIGURE = "isotropy.png"  # in ISOTROPY_ARTIFACT_DIR: before / after, from the last checkpoint
FIGURES_ARTIFACT_DIR = "figures"  # the parent's seed scores, learning and budget curves (PNG + CSV)


def groups_artifact(task: str) -> str:
    return f"groups/{task}.json"


def race_artifact(task: str) -> str:
    """The parent's list of the configurations a race stopped in ``task``, with the RACE_* values."""
    return f"race/{task}.json"


def trial_configs_artifact(task: str) -> str:
    return f"trial_configs/{task}.json"


# The MLflow model `isobn-tune export` logs on the parent run (the classifier directory as a pyfunc).
CLASSIFIER_ARTIFACT = "classifier"  # the pyfunc's artifact key: the classifier directory


def model_name(task: str) -> str:
    """The name of the MLflow model exported from ``task``'s sweep."""
    return f"{task}-classifier"
