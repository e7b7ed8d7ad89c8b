"""A tracking server down mid-sweep for longer than MLflow's own retries, as a user meets it.

Starts ``mlflow server`` on 127.0.0.1 (a SQLite store in a temporary directory), runs
``isobn-tune run`` against it from the command line (the tiny random-init encoder of the tests on
2,400 RTE training rows: 4 trials x ``--epochs``, 2 at a time) with ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=2``,
stops the server's whole process group once a trial has reported its first epoch, starts it again
``--outage-s`` seconds later on the same port and store, and waits for the sweep. Prints the
sweep's exit code and console, per trial the epochs in Tune's results and how many of them MLflow
lacks or holds twice, then what ``isobn-tune sync`` logs and the same comparison again.

Run: python benchmarks/tracking_outage.py [--outage-s 120] [--epochs 6] [--glue-dir ../shared/glue]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import requests
import yaml
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parent.parent
SPACE = {
    "name": "outage",
    "model": {"name_or_path": "minilm", "random_init": True,
              "overrides": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                            "intermediate_size": 64}},
    "tasks": ["rte"],
    "data": {"max_train_examples": 2400, "max_dev_examples": 256, "max_seq_length": 128},
    "grid": {"cls_norm": ["none", "isobn"], "lr": [1e-3], "batch_size": [16], "seeds": [1, 2]},
    "recipe": {"max_epochs": 6},
    "scheduler": {"type": "fifo"},
    "resources": {"cpus_per_trial": 1},
    "run": {"max_failures": 0},
}


def start_server(tmp: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp / 'server.db'}",
         "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        env=os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                return proc
        except requests.RequestException:
            time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


def rows_by_trial(task_dir: Path) -> dict[str, list[dict]]:
    return {d.name: [json.loads(line) for line in (d / "result.json").read_text().splitlines()]
            for d in sorted(task_dir.glob("*/")) if (d / "result.json").is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outage-s", type=float, default=120.0)
    parser.add_argument("--epochs", type=int, default=6, help="per trial (more: outlasts an outage)")
    parser.add_argument("--glue-dir", default=str(REPO.parent / "shared" / "glue"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        space = SPACE | {"data": SPACE["data"] | {"glue_dir": args.glue_dir},
                         "run": SPACE["run"] | {"storage_path": str(tmp / "results")},
                         "recipe": {"max_epochs": args.epochs}}
        (tmp / "space.yaml").write_text(yaml.safe_dump(space))
        server = start_server(tmp, port)
        env = os.environ | {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2"}
        command = ["isobn-tune", "run", str(tmp / "space.yaml"), "--name", "outage", "--tracking-uri", url]
        sweep = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
        task_dir = tmp / "results" / "outage" / "rte"
        while not any(rows_by_trial(task_dir).values()):  # a trial's first epoch
            time.sleep(0.5)
        stop(server)
        down = time.monotonic()
        time.sleep(args.outage_s)
        server = start_server(tmp, port)
        print(f"server down {time.monotonic() - down:.0f} s (MLFLOW_HTTP_REQUEST_MAX_RETRIES=2)")
        console, _ = sweep.communicate()
        print(f"`isobn-tune run` exit code {sweep.returncode}; its console:\n{console}")
        print("Tune's results vs MLflow:")
        compare(MlflowClient(url), task_dir)
        sync = subprocess.run(["isobn-tune", "sync", str(tmp / "results" / "outage")], env=env,
                              capture_output=True, text=True)
        print(f"then `isobn-tune sync`: {sync.stdout.strip() or sync.stderr.strip()}")
        compare(MlflowClient(url), task_dir)
        stop(server)


def compare(client: MlflowClient, task_dir: Path) -> None:
    """Per trial: its epochs in Tune's results, how many MLflow lacks or holds twice, its status."""
    runs = {r.data.tags["isobn.trial_id"]: r
            for r in client.search_runs(client.get_experiment_by_name("outage").experiment_id,
                                        filter_string="tags.`isobn.kind` = 'trial'")}
    for trial_id, rows in rows_by_trial(task_dir).items():
        run = runs.get(trial_id)
        history = client.get_metric_history(run.info.run_id, "epoch") if run else []
        steps = collections.Counter(int(m.step) for m in history)
        epochs = [row["epoch"] for row in rows]
        missing = sum(epoch not in steps for epoch in epochs)
        twice = sum(count > 1 for count in steps.values())
        status = f"status {run.data.tags['isobn.status']}" if run else "no run"
        print(f"  {trial_id}: {len(epochs)} epochs in Tune's results, {missing} missing from MLflow, "
              f"{twice} logged twice, {status}")


if __name__ == "__main__":
    main()
