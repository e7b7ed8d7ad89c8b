"""The MLflow UI in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) shows a
sweep's parent run, its child runs and the parent's seed-median metrics.

The sweep logs to the default store beside its results, and ``mlflow ui --backend-store-uri
sqlite:///<results>/mlflow.db`` serves it, as the README tells users to do. Skipped with the
reason when Chromium or Playwright is missing (CI installs both).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import mlflow_server, tiny_space, trial_runs, write_yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from isobn_tune.runner import run_sweep

# The quickstart's UI tests (test_quickstart.py) cover these pages by default; this module's own
# point, the UI serving a store while a sweep writes to it, runs with the slow tests.
pytestmark = [pytest.mark.browser, pytest.mark.slow]

@dataclass
class UiSweep:
    url: str
    parent: Run
    children: list[Run]


@pytest.fixture(scope="module")
def ui(
    browser: Any, ray_session: Any, glue_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UiSweep]:
    """A two-seed sweep logged to the default store beside its results, served by ``mlflow ui``
    (which boots while the sweep runs)."""
    root = tmp_path_factory.mktemp("ui")
    results = root / "results"
    store = f"sqlite:///{results / 'mlflow.db'}"
    results.mkdir()
    MlflowClient(store).search_experiments()  # create the store's tables before two processes open it
    space = tiny_space(glue_dir, results, recipe={"max_epochs": 1},
                       grid={"cls_norm": ["none"], "lr": [1e-3], "batch_size": [16], "seeds": [1, 2]})
    with mlflow_server(store, root, command="ui", wait=False) as server, pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        outcome = run_sweep(write_yaml(root / "space.yaml", space), name="ui-sweep")
        assert json.loads((results / "ui-sweep" / "sweep.json").read_text())["tracking_uri"] == store
        client = MlflowClient(store)
        parent = client.get_run(outcome.parent_run_id)
        server.wait_healthy()
        yield UiSweep(server.url, parent, trial_runs(client, parent))


def test_runs_page_shows_parent_and_child_runs(ui: UiSweep, page: Any) -> None:
    page.goto(f"{ui.url}/#/experiments/{ui.parent.info.experiment_id}/runs", wait_until="domcontentloaded")
    parent_link = page.get_by_role("link", name=ui.parent.info.run_name, exact=True)
    parent_link.wait_for()
    row = page.locator("[role=row]").filter(has=parent_link)
    row.locator("button[data-component-id*='runnamecellrenderer']").click()  # expand the nested runs
    for child in ui.children:
        page.get_by_role("link", name=child.info.run_name, exact=True).wait_for()


def test_parent_run_page_shows_seed_median_metrics(ui: UiSweep, page: Any) -> None:
    run = ui.parent.info
    page.goto(f"{ui.url}/#/experiments/{run.experiment_id}/runs/{run.run_id}", wait_until="domcontentloaded")
    medians = {k: v for k, v in ui.parent.data.metrics.items() if k.endswith("/median")}
    assert medians
    for name, value in medians.items():
        page.get_by_text(name, exact=True).wait_for()
        page.get_by_text(repr(value), exact=True).first.wait_for()
