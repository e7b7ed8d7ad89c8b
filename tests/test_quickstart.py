"""A newcomer's first minutes: the quickstart from a clone in an empty directory, with no GLUE folder
(``GLUE_DIR`` unset) and no network; its console in a pipe; its log; ``isobn-tune ui`` on it; and
what the MLflow UI then shows in headless Chromium.

The default run keeps the quickstart's shape (6 trials, 2 epochs, FIFO, the bundled rows, the real
MiniLM tokenizer) with the tiny random-init encoder of the other end-to-end tests on fewer rows, so
it takes about half a minute; the ``slow`` test runs the quickstart exactly as the README says.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import REPO_ROOT, TINY_MODEL, error_lines, kill_session, run_cli, session_pids
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from isobn_tune.data import sample_glue
from isobn_tune.results.paired_tests import too_few_text
from isobn_tune.runner import run_sweep
from isobn_tune.tracking.names import FIGURES_ARTIFACT_DIR, STATUS_TAG, UI_WORKFLOW_QUERY
from isobn_tune.tracking.readback import child_runs

QUICKSTART = "search_spaces/quickstart.yaml"
SHORTER = (
    "data.max_train_examples=64", "data.max_dev_examples=64", "data.max_seq_length=32",
    "model.random_init=true", f"model.overrides={json.dumps(TINY_MODEL['overrides'])}",
)
MAX_CONSOLE_LINES = 25
NOISE = ("Checkpoint successfully created", "Loading weights", "tensorboard", "Token authentication",
         "Creating initial MLflow database", "Traceback", "Configuration for experiment")
PROGRESS = re.compile(r"^\[stsb \d\d:\d\d\] \d+ running, \d+ finished, \d+ errored, \d+ paused, "
                      r"\d+ pending of 6( \| best -?\d\.\d{4} \(\w+\))?( \| ETA \w+)?$")


@dataclass
class Quickstart:
    clone: Path
    proc: subprocess.CompletedProcess[str]
    seconds: float

    @property
    def lines(self) -> list[str]:
        return (self.proc.stdout + self.proc.stderr).splitlines()

    @property
    def sweep_root(self) -> Path:
        (manifest,) = (self.clone / "results").glob("quickstart-*/sweep.json")
        return manifest.parent


def clone_checkout(dest: Path) -> Path:
    """The files a ``git clone`` of this checkout has (tracked, plus new files git does not
    ignore), copied from the working tree: nothing generated, no data, no virtualenv."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO_ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def newcomer_env() -> dict[str, str]:
    """No GLUE folder, no tracking server, no network."""
    env = {k: v for k, v in os.environ.items() if k not in ("GLUE_DIR", "MLFLOW_TRACKING_URI")}
    return env | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def run_quickstart(tmp: Path, *overrides: str) -> Quickstart:
    clone = clone_checkout(tmp / "isobn-tune")
    start = time.monotonic()
    proc = run_cli("run", QUICKSTART, *overrides, env=newcomer_env(), cwd=clone)
    return Quickstart(clone, proc, time.monotonic() - start)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Quickstart:
    return run_quickstart(tmp_path_factory.mktemp("newcomer"), *SHORTER)


def assert_a_short_useful_console(qs: Quickstart) -> None:
    assert qs.proc.returncode == 0, qs.proc.stdout + qs.proc.stderr
    lines, root = qs.lines, qs.sweep_root
    assert len(lines) <= MAX_CONSOLE_LINES, "\n".join(lines)
    assert lines[0].startswith(f"sweep {root}: 6 trials over 1 task(s); full log {root / 'sweep.log'}")
    assert f"if interrupted: isobn-tune resume {root}" in lines
    progress = [line for line in lines if line.startswith("[stsb ")]
    assert progress and all(PROGRESS.match(line) for line in progress), progress
    assert progress[-1].split("] ")[1].startswith("0 running, ") and "0 pending of 6 | best" in progress[-1]
    assert "| task | isobn | none | isobn − none |" in lines
    assert lines[-1] == f"browse it: isobn-tune ui {root}"
    assert not [line for line in lines if any(noise in line for noise in NOISE)]


def test_quickstart_runs_from_a_clone_with_no_data_folder_and_no_network(quickstart: Quickstart) -> None:
    assert quickstart.proc.returncode == 0, quickstart.proc.stdout + quickstart.proc.stderr
    manifest = json.loads((quickstart.sweep_root / "sweep.json").read_text())
    assert manifest["space"]["data"]["glue_dir"] == sample_glue.SETTING
    client = MlflowClient(manifest["tracking_uri"])
    parent = client.get_run(manifest["parent_run_id"])
    children = child_runs(client, parent.info.experiment_id, parent.info.run_id)
    assert len(children) == 6 and {run.info.status for run in children} == {"FINISHED"}


def test_the_console_shows_a_summary_in_a_pipe(quickstart: Quickstart) -> None:
    assert_a_short_useful_console(quickstart)


def test_every_seed_is_in_a_median_and_three_seeds_get_no_verdict(quickstart: Quickstart) -> None:
    """FIFO: every trial runs both epochs, so each method's median is over its 3 seeds, and the
    comparison says how many seeds were better and that 3 are too few for a test."""
    manifest = json.loads((quickstart.sweep_root / "sweep.json").read_text())
    client = MlflowClient(manifest["tracking_uri"])
    children = child_runs(client, client.get_run(manifest["parent_run_id"]).info.experiment_id,
                          manifest["parent_run_id"])
    assert {run.data.tags[STATUS_TAG] for run in children} == {"finished"}
    lines = quickstart.lines
    header = lines.index("| task | isobn | none | isobn − none |")
    cells = lines[header + 2].split(" | ")
    assert cells[1].endswith("(n=3)") and cells[2].endswith("(n=3)")
    assert "/3 seeds better, range [" in cells[3] and too_few_text() in cells[3]
    assert not [line for line in lines if "in no median" in line]


def test_everything_else_goes_to_the_sweep_log(quickstart: Quickstart) -> None:
    log = (quickstart.sweep_root / "sweep.log").read_text()
    assert "(fine_tune_trial pid=" in log  # the trials' own output, forwarded by Ray
    assert "Creating initial MLflow database tables" in log
    for line in quickstart.lines:  # and what the console showed, for the record
        if not line.startswith("[stsb "):
            assert line in log


def test_the_bundled_sample_is_in_the_wheel(tmp_path: Path) -> None:
    """A user installing the package (not this checkout) gets the rows too."""
    clone = clone_checkout(tmp_path / "isobn-tune")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(clone)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("isobn_tune-*.whl")
    names = set(subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)], check=True,
                               capture_output=True, text=True).stdout.split())
    for name in ("README.md", "STS-B/train.tsv", "STS-B/dev.tsv"):
        assert f"isobn_tune/data/sample_glue/{name}" in names


def test_a_failing_trial_is_named_on_the_console_with_its_error_and_traceback(
    ray_session: Any, write_space: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 32 hidden units cannot split into 3 attention heads: the model cannot be built in the trial.
    model = {**TINY_MODEL, "overrides": {**TINY_MODEL["overrides"], "num_attention_heads": 3}}
    grid = {"cls_norm": ["none"], "lr": [1e-3], "batch_size": [16], "seeds": [1]}
    space_file = write_space(model=model, grid=grid)
    outcome = run_sweep(space_file, name="fails")
    assert [r.status for r in outcome.records] == ["errored"]
    out = capsys.readouterr()
    lines = out.out.splitlines()
    ((trial_id, (reason, traceback_file)),) = error_lines(out.out).items()
    assert reason.startswith("ValueError: ") and "attention heads (3)" in reason
    assert traceback_file.is_file() and trial_id in str(traceback_file)
    assert "Traceback" not in out.out + out.err and len(lines) <= MAX_CONSOLE_LINES
    sweep = tmp_path / "results" / "fails"
    assert f"1 trial(s) errored; retry them with `isobn-tune resume {sweep} --retry-errored`" in lines


@pytest.mark.slow
def test_the_quickstart_as_the_readme_gives_it(tmp_path: Path) -> None:
    qs = run_quickstart(tmp_path)
    assert_a_short_useful_console(qs)


# ----- `isobn-tune ui` on the quickstart's sweep -----------------------------------------------------

@dataclass
class Ui:
    url: str  # the parent run's page, as printed
    parent: Run
    children: list[Run]
    figures: list[str]


@pytest.fixture(scope="module")
def ui(quickstart: Quickstart) -> Iterator[Ui]:
    """``isobn-tune ui SWEEP_DIR`` in its own session; afterwards Ctrl-C (SIGINT) must end it and
    every process it started."""
    proc = subprocess.Popen(["isobn-tune", "ui", str(quickstart.sweep_root)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=newcomer_env(), start_new_session=True)
    try:
        first = proc.stdout.readline()  # blocks until the UI answers (or the command fails)
        assert first.startswith("MLflow UI: http://127.0.0.1:"), first + proc.stdout.read()
        url = first.removeprefix("MLflow UI: ").strip()
        manifest = json.loads((quickstart.sweep_root / "sweep.json").read_text())
        client = MlflowClient(manifest["tracking_uri"])
        parent = client.get_run(manifest["parent_run_id"])
        figures = [a.path for a in client.list_artifacts(parent.info.run_id, FIGURES_ARTIFACT_DIR)]
        yield Ui(url, parent, child_runs(client, parent.info.experiment_id, parent.info.run_id), figures)
        assert session_pids(proc.pid), "the UI stopped before Ctrl-C"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, proc.stdout.read()
        assert not session_pids(proc.pid), "processes of `isobn-tune ui` outlived it"
    finally:
        kill_session(proc.pid)
        proc.wait(timeout=30)


def test_ui_prints_the_parent_runs_address_and_serves_it(ui: Ui) -> None:
    base, _, fragment = ui.url.partition("/#/")
    assert fragment == (f"experiments/{ui.parent.info.experiment_id}/runs/{ui.parent.info.run_id}"
                        f"?{UI_WORKFLOW_QUERY}")
    got = requests.get(f"{base}/api/2.0/mlflow/runs/get", params={"run_id": ui.parent.info.run_id},
                       timeout=30)
    assert got.json()["run"]["info"]["run_name"] == ui.parent.info.run_name


@pytest.mark.browser
def test_the_sweeps_experiment_opens_at_its_runs_not_the_genai_view(ui: Ui, page: Any) -> None:
    """From the printed address, the experiment's link opens MLflow's model-training view with the
    runs table; MLflow 3.17 would otherwise open its GenAI view (traces, token usage)."""
    experiment_id = ui.parent.info.experiment_id
    page.goto(ui.url, wait_until="domcontentloaded")
    page.locator(f"a[href^='#/experiments/{experiment_id}']:not([href*='/runs/'])").first.click()
    page.get_by_role("link", name=ui.parent.info.run_name, exact=True).wait_for()
    fragment = page.url.partition("/#/")[2]
    assert fragment.startswith(f"experiments/{experiment_id}/runs?"), page.url
    assert UI_WORKFLOW_QUERY in fragment.split("?", 1)[1].split("&"), page.url


@pytest.mark.browser
def test_the_parent_run_page_shows_the_results_table(ui: Ui, page: Any) -> None:
    page.goto(ui.url, wait_until="domcontentloaded")
    page.get_by_role("columnheader", name="isobn − none").wait_for()
    page.get_by_role("cell", name="stsb", exact=True).first.wait_for()


@pytest.mark.browser
def test_the_parent_run_page_shows_the_seed_median_metrics(ui: Ui, page: Any) -> None:
    page.goto(ui.url, wait_until="domcontentloaded")
    medians = {k: v for k, v in ui.parent.data.metrics.items() if k.endswith("/median")}
    assert medians
    for name, value in medians.items():
        page.get_by_text(name, exact=True).wait_for()
        page.get_by_text(repr(value), exact=True).first.wait_for()


@pytest.mark.browser
def test_the_runs_table_shows_readable_child_names(ui: Ui, page: Any) -> None:
    base = ui.url.partition("/#/")[0]
    page.goto(f"{base}/#/experiments/{ui.parent.info.experiment_id}/runs", wait_until="domcontentloaded")
    parent_link = page.get_by_role("link", name=ui.parent.info.run_name, exact=True)
    parent_link.wait_for()
    page.locator("[role=row]").filter(has=parent_link).locator(
        "button[data-component-id*='runnamecellrenderer']").click()  # expand the nested runs
    for child in ui.children:
        assert child.info.run_name.startswith("stsb · ") and " · seed " in child.info.run_name
        page.get_by_role("link", name=child.info.run_name, exact=True).wait_for()


@pytest.mark.browser
def test_the_parent_runs_artifacts_list_its_figures(ui: Ui, page: Any) -> None:
    assert any(name.endswith(".png") for name in ui.figures), ui.figures
    run_page, _, query = ui.url.partition("?")
    page.goto(f"{run_page}/artifacts?{query}", wait_until="domcontentloaded")
    page.get_by_text(FIGURES_ARTIFACT_DIR, exact=True).first.click()
    for path in ui.figures:
        page.get_by_text(path.rpartition("/")[2], exact=True).first.wait_for()
