"""CPU reproduction of the paper's comparison: no [CLS] normaliser vs IsoBN, paired over 5 seeds.

Runs ``search_spaces/reproduce_minilm_cpu.yaml`` as a real sweep (``run_sweep``, the function
behind ``isobn-tune run``; its header says how it is sized to train within 100 minutes on 2 CPU
cores), or takes a sweep already run (``--sweep DIR``), then prints what the sweep logged in
MLflow: the wall time, the task x method table with every configuration's paired comparison with
the baseline (median difference, 95% bootstrap interval over seed pairs, P(A > B), verdict), and
per configuration how much IsoBN acted and the [CLS] isotropy at each trial's best epoch (median
over seeds; ``isotropy.py``). The paper's per-task numbers are not reproduced here; its stated
claim is an improvement of about 1.0 point on the average of seven GLUE tasks (BERT-base /
RoBERTa-large, full data, 10 epochs), which MiniLM on two tasks need not show.

Run: python benchmarks/reproduce.py [--space search_spaces/reproduce_minilm_cpu.yaml] [--storage ./results]
     python benchmarks/reproduce.py --sweep results/reproduce-minilm-cpu-<stamp>
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path

from isotropy import gather, table

from isobn_tune.results.tables import sweep_results
from isobn_tune.runner import run_sweep
from isobn_tune.tracking.readback import records_from_mlflow, sweep_run

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=str(REPO / "search_spaces" / "reproduce_minilm_cpu.yaml"))
    parser.add_argument("--storage", default=None)
    parser.add_argument("--name", default=None)
    parser.add_argument("--sweep", default=None,
                        help="report this finished sweep directory instead of running one")
    args = parser.parse_args()

    if args.sweep:
        sweep = args.sweep
    else:
        started, t0 = datetime.now(), time.monotonic()
        sweep = run_sweep(args.space, storage=args.storage, name=args.name).sweep_dir.root
        minutes = (time.monotonic() - t0) / 60
        print(f"wall {started:%H:%M:%S} -> {datetime.now():%H:%M:%S} = {minutes:.1f} min "
              f"(run_sweep: tokenising, Ray, every trial, MLflow)")
    tracking_uri, parent_run_id = sweep_run(sweep)
    records = records_from_mlflow(tracking_uri, parent_run_id)
    print(f"sweep {sweep}, MLflow run {parent_run_id}: {len(records)} trials")
    print(sweep_results(records).description())
    print("How much IsoBN acted and the [CLS] isotropy, at each trial's best epoch (median over seeds):")
    print(table(gather(tracking_uri, parent_run_id, every_configuration=True)))


if __name__ == "__main__":
    main()
