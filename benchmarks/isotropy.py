"""[CLS] isotropy and how much IsoBN acts, per task and method, read from what a sweep logged in MLflow.

The paper's analysis (Zhou, Lin & Ren 2021, section 3). Every trial of a sweep logs per epoch the
mean |correlation| between the dimensions of the pooled [CLS] embedding on the dev set and the
coefficient of variation of their std (at step 0 the pretrained encoder's), and every IsoBN trial
how much IsoBN acts: its largest / smallest per-dimension scale, their CV, eps / median(gamma *
sigma) and whether it stayed within 1% of the identity. Per task and method this prints them at
each trial's best epoch (where its model was kept) for the method's best configuration, the one
the sweep's table reports, median over seeds. With ``--figures`` it copies the isotropy figure the
sweep logged (from the last checkpoint) of that configuration's median seed. Nothing is computed
or plotted here: the numbers and the figure are the sweep's own.

Run: python benchmarks/isotropy.py results/<sweep>   (the sweep directory `isobn-tune run` printed)
     python benchmarks/isotropy.py <parent run id> --tracking-uri sqlite:///results/mlflow.db
     add --figures DIR to copy each method's logged isotropy figure to DIR/isotropy_<task>_<method>.png
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

from isobn_tune.results.aggregate import best_by_method, summarise_groups
from isobn_tune.tracking.names import ISOTROPY_ARTIFACT_DIR, ISOTROPY_FIGURE
from isobn_tune.tracking.readback import find_child, metrics_at_epoch, records_from_mlflow, sweep_run
from isobn_tune.train.isobn_params import (
    ISOBN_EPS_RATIO,
    ISOBN_NEAR_IDENTITY,
    ISOBN_SCALE_CV,
    ISOBN_SCALE_MAX_MIN,
)
from isobn_tune.train.isotropy import ISO_MEAN_ABS_CORR, ISO_STD_CV

PRETRAINED = "pretrained"  # the row of the encoder before fine-tuning
ISOTROPY = (ISO_MEAN_ABS_CORR, ISO_STD_CV)
ACTIVITY = (ISOBN_SCALE_MAX_MIN, ISOBN_SCALE_CV, ISOBN_EPS_RATIO)
COLUMNS = ("mean abs corr", "std CV", "IsoBN scale max/min", "scale CV", "eps / median(gamma sigma)",
           "near identity")


@dataclass(frozen=True)
class Row:
    """One embedding of a task: the pretrained encoder's, or a method's best configuration's."""

    task: str
    method: str
    config: str  # its label; "" for the pretrained encoder
    trial_ids: tuple[str, ...]  # its seeds, by best dev metric (the median seed in the middle)
    medians: dict[str, float]  # over seeds, of each metric logged
    near_identity: int | None  # seeds where IsoBN was within 1% of the identity; None: no IsoBN

    @property
    def median_trial(self) -> str:
        return self.trial_ids[(len(self.trial_ids) - 1) // 2]


def gather(tracking_uri: str, parent_run_id: str, *, every_configuration: bool = False) -> list[Row]:
    """Per task: the pretrained encoder (over all its scored trials), then each method's best
    configuration (or every configuration), whose trials' metrics are read at their best epochs."""
    records = [r for r in records_from_mlflow(tracking_uri, parent_run_id)
               if r.best_objective is not None and r.status != "errored"]
    at_best = metrics_at_epoch(tracking_uri, parent_run_id, (*ISOTROPY, *ACTIVITY, ISOBN_NEAR_IDENTITY))
    before = metrics_at_epoch(tracking_uri, parent_run_id, ISOTROPY, epoch=0)
    summaries = summarise_groups(records)
    chosen = ({(s.task, s.method, s.label): s for s in summaries} if every_configuration
              else best_by_method(summaries))
    rows = []
    for key, best in sorted(chosen.items()):
        task, method = key[0], key[1]
        if not rows or rows[-1].task != task:
            ids = tuple(r.trial_id for r in records if r.config.task == task)
            rows.append(Row(task, PRETRAINED, "", ids, _medians([before.get(i, {}) for i in ids], ISOTROPY),
                            None))
        # the seeds in its median: those that ran the full budget
        seeds = sorted((r for r in best.trials if r.status == "finished" and r.best_objective is not None),
                       key=lambda r: r.best_objective)
        values = [at_best.get(r.trial_id, {}) for r in seeds]
        flags = [v[ISOBN_NEAR_IDENTITY] for v in values if ISOBN_NEAR_IDENTITY in v]
        rows.append(Row(task, method, best.label, tuple(r.trial_id for r in seeds),
                        _medians(values, (*ISOTROPY, *ACTIVITY)), int(sum(flags)) if flags else None))
    return rows


def _medians(values: list[dict[str, float]], keys: tuple[str, ...]) -> dict[str, float]:
    """Each metric's median over the trials that logged it; a metric none logged is left out."""
    logged = {k: [v[k] for v in values if k in v] for k in keys}
    return {k: float(np.median(found)) for k, found in logged.items() if found}


def table(rows: list[Row]) -> str:
    """The rows as Markdown; a dash where a metric was not logged (IsoBN's, for other methods)."""
    lines = [f"| task | embedding | configuration | trials | {' | '.join(COLUMNS)} |",
             "|---|---|---|---|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [_cell(row.medians.get(k), ".3g" if k == ISOBN_EPS_RATIO else ".3f")
                 for k in (*ISOTROPY, *ACTIVITY)]
        cells.append("–" if row.near_identity is None else f"{row.near_identity}/{len(row.trial_ids)}")
        lines.append(f"| {row.task} | {row.method} | {row.config or '–'} | {len(row.trial_ids)} "
                     f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def _cell(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def copy_figure(tracking_uri: str, parent_run_id: str, row: Row, out_dir: Path) -> Path | None:
    """The isotropy figure the sweep logged for the row's median seed, copied to ``out_dir``; None
    if that trial logged none (it ended without a checkpoint)."""
    client = MlflowClient(tracking_uri)
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    run_id = find_child(client, experiment_id, parent_run_id, row.median_trial).info.run_id
    artifact = f"{ISOTROPY_ARTIFACT_DIR}/{ISOTROPY_FIGURE}"
    if artifact not in {a.path for a in client.list_artifacts(run_id, ISOTROPY_ARTIFACT_DIR)}:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"isotropy_{row.task}_{row.method}.png"
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(client.download_artifacts(run_id, artifact, tmp), target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="a sweep directory `isobn-tune run` printed, or a parent run id")
    parser.add_argument("--tracking-uri", default=None, help="the MLflow store of a parent run id")
    parser.add_argument("--figures", type=Path, default=None,
                        help="copy each method's logged isotropy figure here")
    parser.add_argument("--every-configuration", action="store_true",
                        help="a row per configuration, not only each method's best")
    args = parser.parse_args()

    tracking_uri, parent_run_id = sweep_run(args.sweep, args.tracking_uri)
    rows = gather(tracking_uri, parent_run_id, every_configuration=args.every_configuration)
    if not rows:
        raise SystemExit(f"{args.sweep}: no scored trial in MLflow run {parent_run_id}")
    print(table(rows))
    for row in rows:
        if args.figures is not None and row.method != PRETRAINED:
            copied = copy_figure(tracking_uri, parent_run_id, row, args.figures)
            print(f"figure: {copied or f'none logged by trial {row.median_trial}'}")


if __name__ == "__main__":
    main()
