"""A sweep logging over HTTP to a real ``mlflow server`` on 127.0.0.1, with secrets around it.

The server runs on a SQLite store in a temporary directory; the sweep's tracking URI carries a
user and password (the server has no auth, so they are only something that must not leak), the
environment holds a fake Hugging Face token, AWS keys and a password, the space file mentions
the token in a comment and its description, and its model overrides pass a hub ``token``. The
secret tests scan every param, tag and text artifact of every run for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import (
    TINY_MODEL,
    artifact_bytes,
    artifact_files,
    mlflow_server,
    tiny_space,
    trial_runs,
    write_yaml,
)
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from isobn_tune.cli import main as cli_main
from isobn_tune.runner import resume_sweep, run_sweep
from isobn_tune.tracking.names import UI_WORKFLOW_QUERY

# An `mlflow server` and a sweep (about 35 s): slow, to keep the default run within its budget.
pytestmark = pytest.mark.slow

SECRETS = {
    "HF_TOKEN": "hf_FakeTokenAbCdEfGhIjKlMnOpQrStUv",
    "AWS_ACCESS_KEY_ID": "AKIAFAKE1234567890AB",
    "AWS_SECRET_ACCESS_KEY": "fakeSecretKey/abc+1234567890XYZ",
    "DB_PASSWORD": "hunter2-not-a-real-one",
}
URI_PASSWORD = "pa55-in-the-uri"
OVERRIDE_TOKEN = "plain-override-secret-42"  # neither in the environment nor shaped like a known token
MAX_EPOCHS = 2


@dataclass
class ServerSweep:
    url: str
    client: MlflowClient
    parent: Run
    children: list[Run]
    space_text: str
    sweep_dir: Path


@pytest.fixture(scope="module")
def sweep(ray_session, glue_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerSweep]:
    root = tmp_path_factory.mktemp("server")
    with mlflow_server(f"sqlite:///{root / 'server.db'}", root) as server, pytest.MonkeyPatch.context() as mp:
        url = server.url
        for key, value in SECRETS.items():
            mp.setenv(key, value)
        uri_with_password = url.replace("http://", f"http://alice:{URI_PASSWORD}@")
        model = TINY_MODEL | {"overrides": TINY_MODEL["overrides"] | {"token": OVERRIDE_TOKEN}}
        space = tiny_space(
            glue_dir, root / "results", model=model,
            description=f"pulls with token {SECRETS['HF_TOKEN']}",
            grid={"cls_norm": ["none"], "lr": [1e-3], "batch_size": [16], "seeds": [1, 2]},
            recipe={"max_epochs": MAX_EPOCHS},
            mlflow={"tracking_uri": uri_with_password},
        )
        space_file = write_yaml(root / "space.yaml", space)
        space_file.write_text(f"# export HF_TOKEN={SECRETS['HF_TOKEN']}\n" + space_file.read_text())
        outcome = run_sweep(space_file, name="over-http")
        client = MlflowClient(url)
        parent = client.get_run(outcome.parent_run_id)
        yield ServerSweep(url, client, parent, trial_runs(client, parent), space_file.read_text(),
                          root / "results" / "over-http")


def test_sweep_runs_are_on_the_server(sweep: ServerSweep) -> None:
    experiment = sweep.client.get_experiment_by_name("tiny")
    assert experiment is not None
    runs = sweep.client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["isobn.kind"] for r in runs) == ["sweep", "trial", "trial"]
    assert {c.data.tags["mlflow.parentRunId"] for c in sweep.children} == {sweep.parent.info.run_id}


def test_every_epoch_logged_over_http(sweep: ServerSweep) -> None:
    for child in sweep.children:
        history = sweep.client.get_metric_history(child.info.run_id, "objective")
        assert sorted(m.step for m in history) == list(range(1, MAX_EPOCHS + 1))
        assert child.data.tags["isobn.status"] == "finished"


def test_artifacts_served_over_http(sweep: ServerSweep) -> None:
    png = artifact_bytes(sweep.client, sweep.children[0].info.run_id, "isotropy/isotropy.png")
    assert png.startswith(b"\x89PNG")
    table = artifact_bytes(sweep.client, sweep.parent.info.run_id, "results/table.md").decode()
    assert table.startswith("| task | none |")


def _logged_strings(sweep: ServerSweep) -> dict[str, str]:
    """Every param, tag and text artifact of every run of the sweep, by where it was found."""
    found = {}
    for run in [sweep.parent, *sweep.children]:
        rid = run.info.run_id
        found |= {f"{rid} param {k}": v for k, v in run.data.params.items()}
        found |= {f"{rid} tag {k}": v for k, v in run.data.tags.items()}
        found[f"{rid} name"] = run.info.run_name
        for path in artifact_files(sweep.client, rid):
            try:
                found[f"{rid} artifact {path}"] = artifact_bytes(sweep.client, rid, path).decode()
            except UnicodeDecodeError:
                continue  # PNG and .npz figures carry no text
    return found


def test_no_secret_in_params_tags_or_artifacts(sweep: ServerSweep) -> None:
    logged = _logged_strings(sweep)
    assert any(k.endswith("artifact space.yaml") for k in logged)
    assert any(k.endswith("artifact trial_config.json") for k in logged)
    for secret in [*SECRETS.values(), URI_PASSWORD, OVERRIDE_TOKEN, "alice:"]:
        leaks = [where for where, text in logged.items() if secret in text]
        assert not leaks, f"{secret!r} logged in {leaks}"


def test_space_file_logged_with_secrets_masked(sweep: ServerSweep) -> None:
    logged = artifact_bytes(sweep.client, sweep.parent.info.run_id, "space.yaml").decode()
    assert "http://***@127.0.0.1:" in logged
    assert "# export HF_TOKEN: '***'" in logged
    assert logged.count("\n") == sweep.space_text.count("\n")


def test_trial_config_logged_with_override_token_masked(sweep: ServerSweep) -> None:
    config = json.loads(artifact_bytes(sweep.client, sweep.children[0].info.run_id, "trial_config.json"))
    assert config["cls_norm"] == "none"
    assert config["model_overrides"]["token"] == "***"


# --- no credential at rest -------------------------------------------------------------------------

def test_no_tracking_credential_in_the_sweep_directory(sweep: ServerSweep) -> None:
    """Manifest, log, Tune's state (its pickled callbacks too), results and checkpoints."""
    files = [p for p in sweep.sweep_dir.rglob("*") if p.is_file()]
    assert any(p.name == "tuner.pkl" for p in files) and any(p.name == "sweep.log" for p in files)
    for secret in (URI_PASSWORD.encode(), b"alice:"):
        assert [str(p) for p in files if secret in p.read_bytes()] == []


def test_manifest_keeps_the_uri_without_user_info_and_names_what_resume_needs(sweep: ServerSweep) -> None:
    manifest = json.loads((sweep.sweep_dir / "sweep.json").read_text())
    assert manifest["tracking_uri"] == manifest["space"]["mlflow"]["tracking_uri"] == sweep.url
    assert manifest["resume_env"] == ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"]
    text = json.dumps(manifest)
    assert [secret for secret in [*SECRETS.values(), OVERRIDE_TOKEN] if secret in text] == []
    assert manifest["space"]["description"] == "pulls with token ***"


def test_resume_without_the_credential_says_what_to_set(
    sweep: ServerSweep, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    assert cli_main(["resume", str(sweep.sweep_dir)]) == 2
    assert capsys.readouterr().err == (
        f"error: the sweep's tracking server {sweep.url} needs MLFLOW_TRACKING_USERNAME and "
        "MLFLOW_TRACKING_PASSWORD set (not stored with the sweep), or its full URI with --tracking-uri\n"
    )


def test_resume_with_the_credential_in_the_environment(sweep: ServerSweep, monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", URI_PASSWORD)
    outcome = resume_sweep(str(sweep.sweep_dir))
    assert outcome.parent_run_id == sweep.parent.info.run_id
    assert sorted(r.status for r in outcome.records) == ["finished", "finished"]
    assert sweep.client.get_run(outcome.parent_run_id).info.status == "FINISHED"


def test_ui_of_a_sweep_on_a_server_prints_its_parent_runs_address_without_the_credential(
    sweep: ServerSweep, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", URI_PASSWORD)
    uri_with_password = sweep.url.replace("http://", f"http://alice:{URI_PASSWORD}@")
    for args in ([], ["--tracking-uri", uri_with_password]):  # the server is the UI: nothing started
        assert cli_main(["ui", str(sweep.sweep_dir), *args]) == 0
        run = sweep.parent.info
        assert capsys.readouterr().out == (f"{sweep.url}/#/experiments/{run.experiment_id}/runs/{run.run_id}"
                                           f"?{UI_WORKFLOW_QUERY}\n")
