"""The Ray cluster launcher configs validate and keep the properties a sweep relies on."""

import copy
import re
from typing import Any

import jsonschema
import pytest
import yaml
from helpers import REPO_ROOT
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = REPO_ROOT
CONFIGS = ["cluster.yaml", "cluster_local.yaml"]
REMOTE_ROOT = "~/isobn-tune"
SECRET_PATTERNS = [
    r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
    r"aws_secret_access_key|aws_session_token|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    r"\bhf_[A-Za-z0-9]{30,}\b",  # Hugging Face tokens
]


def _raw(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / name).read_text())


def _prepared(name: str) -> dict[str, Any]:
    """The config as `ray up` sees it: merged with the provider's defaults."""
    return prepare_config(copy.deepcopy(_raw(name)))


@pytest.mark.parametrize("name", CONFIGS)
def test_ray_launcher_accepts_config(name: str) -> None:
    validate_config(_prepared(name))


def test_launcher_validation_rejects_unknown_keys() -> None:
    config = _prepared("cluster.yaml")
    config["head_start_commands"] = ["ray start --head"]
    with pytest.raises(jsonschema.ValidationError, match="head_start_commands"):
        validate_config(config)


def test_aws_gpu_worker_type_and_cpu_only_head() -> None:
    config = _raw("cluster.yaml")
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert head["resources"]["GPU"] == 0
    assert any(w["resources"].get("GPU", 0) >= 1 and w["max_workers"] >= 1 for w in workers)


def test_local_head_advertises_no_gpus() -> None:
    start = " ".join(_raw("cluster_local.yaml")["head_start_ray_commands"])
    assert "--num-gpus=0" in start


@pytest.mark.parametrize("name", CONFIGS)
def test_every_node_installs_isobn_tune(name: str) -> None:
    config = _prepared(name)
    for key in ("head_setup_commands", "worker_setup_commands"):
        assert any(re.search(rf"pip install -e {re.escape(REMOTE_ROOT)}\b", cmd) for cmd in config[key]), key


@pytest.mark.parametrize("name", CONFIGS)
def test_search_spaces_are_mounted_under_package_dir(name: str) -> None:
    mounts = _raw(name)["file_mounts"]
    local = mounts[REMOTE_ROOT]
    assert (REPO / local).resolve() == REPO
    assert (REPO / local / "search_spaces").is_dir()
    assert "search_spaces" not in (REPO / ".gitignore").read_text()


@pytest.mark.parametrize("name", CONFIGS)
def test_dashboard_and_mlflow_listen_on_loopback_only(name: str) -> None:
    commands = _raw(name)["head_start_ray_commands"]
    start = next(c for c in commands if "ray start --head" in c)
    mlflow = next(c for c in commands if "mlflow server" in c)
    assert "--dashboard-host=127.0.0.1" in start
    assert "--host 127.0.0.1" in mlflow
    assert "0.0.0.0" not in (REPO / name).read_text()


@pytest.mark.parametrize("name", CONFIGS)
def test_no_secrets_in_config(name: str) -> None:
    text = (REPO / name).read_text()
    for pattern in SECRET_PATTERNS:
        assert not re.search(pattern, text), pattern
