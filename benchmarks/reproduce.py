"""CPU reproduction of the paper's comparison: baseline vs IsoBN, median and std over 5 seeds.

Runs ``search_spaces/reproduce_minilm_cpu.yaml`` as a real sweep (``run_sweep``, the function
behind ``isobn-tune run``; its header says exactly how it is trimmed to fit about 90 minutes on 2
CPU cores), or takes a sweep already run with ``isobn-tune run`` (``--sweep DIR``), then reads
every trial back from MLflow and prints the paper-style table: task x method, median ± std of the
best dev metric over seeds (x100), and the IsoBN − none delta. The paper's per-task numbers are
not reproduced here; its stated claim is an improvement of about 1.0 point on the average of seven
GLUE tasks (BERT-base / RoBERTa-large, full data, 10 epochs), which a trimmed MiniLM run on four
tasks need not show.

Run: python benchmarks/reproduce.py [--space search_spaces/reproduce_minilm_cpu.yaml] [--storage ./results]
     python benchmarks/reproduce.py --sweep results/reproduce-minilm-cpu-<stamp>
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from isobn_tune.aggregate import method_table, summarise_groups, table_markdown
from isobn_tune.mlflow_runs import records_from_mlflow
from isobn_tune.runner import run_sweep
from isobn_tune.sweep_dir import SweepDir, read_manifest

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=str(REPO / "search_spaces" / "reproduce_minilm_cpu.yaml"))
    parser.add_argument("--storage", default=None)
    parser.add_argument("--name", default=None)
    parser.add_argument("--sweep", default=None,
                        help="report this finished sweep directory instead of running one")
    args = parser.parse_args()

    sweep_dir = SweepDir.parse(args.sweep) if args.sweep else run_sweep(
        args.space, storage=args.storage, name=args.name).sweep_dir

    manifest = read_manifest(sweep_dir)
    records = records_from_mlflow(manifest["tracking_uri"], manifest["parent_run_id"])
    rows = method_table(summarise_groups(records))
    print(f"sweep {sweep_dir.root}, MLflow run {manifest['parent_run_id']}: {len(records)} trials")
    print(table_markdown(rows))
    deltas = [a["median"] - b["median"] for a in rows for b in rows
              if a["task"] == b["task"] and a["method"] == "isobn" and b["method"] == "none"]
    if deltas:
        print(f"mean IsoBN − none delta over {len(deltas)} tasks: {100 * float(np.mean(deltas)):+.2f} points "
              "(paper's claim: about +1.0 on the average of seven GLUE tasks, full recipe)")


if __name__ == "__main__":
    main()
