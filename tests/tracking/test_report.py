"""`isobn-tune report`: the paper-style table read back from MLflow, by sweep directory or by
parent run id (as subprocesses), for a sweep run through the CLI, which also checks that
``--tracking-uri`` wins over the space file and ``$MLFLOW_TRACKING_URI``."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import artifact_bytes, run_cli, tiny_space, trial_runs, write_yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from isobn_tune.cli import main
from isobn_tune.errors import UserError
from isobn_tune.sweep.directory import SweepDir, read_manifest
from isobn_tune.tracking.names import NOTE_TAG
from isobn_tune.tracking.report import print_report

# A sweep of its own (about 30 s); `report` on a sweep stays in the default run (sweep/test_runner.py).
pytestmark = pytest.mark.slow


@dataclass
class CliSweep:
    root: Path
    sweep_dir: Path
    tracking_uri: str
    client: MlflowClient
    parent: Run


@pytest.fixture(scope="module")
def sweep(ray_session: Any, glue_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> CliSweep:
    """A sweep run through the CLI's ``main`` in-process (on the module's Ray)."""
    root = tmp_path_factory.mktemp("report")
    uri = {name: f"sqlite:///{root / name}.db" for name in ("cli", "file", "env")}
    content = tiny_space(glue_dir, root / "results", mlflow={"tracking_uri": uri["file"]})
    space = write_yaml(root / "space.yaml", content)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri["env"])
        assert main(["run", str(space), "--name", "rep", "--tracking-uri", uri["cli"]]) == 0
    manifest = read_manifest(SweepDir.parse(str(root / "results" / "rep")))
    client = MlflowClient(uri["cli"])
    parent = client.get_run(manifest["parent_run_id"])
    return CliSweep(root, root / "results" / "rep", uri["cli"], client, parent)


def _table_artifact(sweep: CliSweep) -> str:
    return artifact_bytes(sweep.client, sweep.parent.info.run_id, "results/table.md").decode()


def test_cli_tracking_uri_wins_over_file_and_environment(sweep: CliSweep) -> None:
    assert len(trial_runs(sweep.client, sweep.parent)) == 4
    assert not (sweep.root / "file.db").exists()
    assert not (sweep.root / "env.db").exists()


def test_report_of_sweep_dir_prints_the_parent_runs_description(sweep: CliSweep) -> None:
    result = run_cli("report", str(sweep.sweep_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout == sweep.parent.data.tags[NOTE_TAG]
    assert result.stdout.startswith(_table_artifact(sweep))  # the table, then the comparisons
    assert "| task | role | A | B | A − B: estimate [interval]" in result.stdout


def test_report_of_run_id_prints_the_same(sweep: CliSweep, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", sweep.parent.info.run_id, "--tracking-uri", sweep.tracking_uri]) == 0  # in-process
    assert capsys.readouterr().out == sweep.parent.data.tags[NOTE_TAG]


def test_report_csv_is_the_parent_table_csv_with_every_comparison_row(
    sweep: CliSweep, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(sweep.sweep_dir), "--format", "csv"]) == 0
    logged = artifact_bytes(sweep.client, sweep.parent.info.run_id, "results/table.csv").decode()
    assert capsys.readouterr().out == logged
    rows = list(csv.DictReader(io.StringIO(logged)))
    (best,) = [r for r in rows if r["role"] == "confirmatory"]
    assert best["method"] == "isobn" and best["n_pairs"] == "2" and best["verdict"] == ""  # 2 seeds: no test
    assert best["unit"] == "points (metric x 100)" and "too few seeds for a test" in best["note"]
    assert float(best["diff_min"]) <= float(best["estimate"]) <= float(best["diff_max"])


def test_report_json_holds_every_comparison(sweep: CliSweep, capsys) -> None:
    labels = sorted({r.data.params["cls_norm"] for r in trial_runs(sweep.client, sweep.parent)})
    print_report(str(sweep.sweep_dir), groups=True)
    found = [ln.split()[1] for ln in capsys.readouterr().out.splitlines() if ln.startswith("rte ")]
    none_label = next(label for label in found if label.startswith("none_"))
    isobn_label = next(label for label in found if label.startswith("isobn_"))
    print_report(str(sweep.sweep_dir), fmt="json", compare=[none_label, isobn_label])
    report = json.loads(capsys.readouterr().out)
    assert labels == ["isobn", "none"]
    assert [(c["a"], c["b"], c["role"], c["verdict"]) for c in report["comparisons"]] == [
        (isobn_label, none_label, "confirmatory", None), (none_label, isobn_label, "exploratory", None)]
    assert report["unit"] == "points (metric x 100)" and report["across_tasks"]["n_comparisons"] == 1
    assert report["selected_on"] == {"rte": [1, 2]} and report["confirmed_on"] == {"rte": []}


def test_report_refuses_an_unknown_format_or_configuration(sweep: CliSweep) -> None:
    with pytest.raises(UserError, match="report format 'xml'"):
        print_report(str(sweep.sweep_dir), fmt="xml")
    with pytest.raises(UserError, match="--compare: no configuration 'nope'"):
        print_report(str(sweep.sweep_dir), compare=["nope", "none_lr0.001_bs16"])


def test_report_groups_lists_each_group_median_over_seeds(sweep: CliSweep, capsys) -> None:
    print_report(str(sweep.sweep_dir), groups=True)
    lines = capsys.readouterr().out.splitlines()
    for method in ("none", "isobn"):
        runs = [r for r in trial_runs(sweep.client, sweep.parent) if r.data.params["cls_norm"] == method]
        values = [r.data.metrics["best_dev_metric"] for r in runs]
        (line,) = [ln for ln in lines if ln.split()[1:2] and ln.split()[1].startswith(f"{method}_")]
        assert f"median {np.median(values):.4f} std {np.std(values):.4f}" in line


def test_report_of_unknown_run_is_a_user_error(sweep: CliSweep) -> None:
    with pytest.raises(UserError, match="no MLflow run 'f00'"):
        print_report("f00", tracking_uri=sweep.tracking_uri)


def test_report_of_non_sweep_directory_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a sweep directory"):
        print_report(str(tmp_path))


def test_report_and_the_space_tools_import_neither_torch_nor_ray() -> None:
    code = (
        "import sys\n"
        "import isobn_tune.cli, isobn_tune.tracking.report, isobn_tune.tracking.readback\n"
        "import isobn_tune.space, isobn_tune.train.cls_norm, isobn_tune.results.statistics\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray', 'transformers'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
