"""CI cannot pass on tests it skipped: under ``ISOBN_TUNE_REQUIRE_ALL=1`` (set by ``.ci/run``) a
fixture whose dependency is missing fails, without it it skips with its reason, which ``-rs`` in
README's test command lists. Checked on a real pytest run of the real ``conftest.py``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT, REQUIRE_ALL

PROBE = "def test_needs_the_glue_data(glue_dir):\n    pass\n"


def run_probe(tmp_path: Path, require_all: bool) -> subprocess.CompletedProcess:
    """pytest on a test that needs ``glue_dir``, with ``GLUE_DIR`` pointed at a missing folder."""
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != REQUIRE_ALL}
    env |= {"GLUE_DIR": str(tmp_path / "no-glue"),
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "tests"), env.get("PYTHONPATH", "")])}
    if require_all:
        env[REQUIRE_ALL] = "1"
    # The repository's conftest.py as a plugin: the probe outside tests/ gets its fixtures.
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "conftest", "-p", "no:cacheprovider",
               "test_probe.py"]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_missing_dependency_skips_with_its_reason_listed(tmp_path: Path) -> None:
    run = run_probe(tmp_path, require_all=False)

    assert run.returncode == 0, run.stdout + run.stderr
    (listed,) = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED [1]")]
    assert listed.endswith(f"GLUE data not found at {tmp_path / 'no-glue'}; set GLUE_DIR")


def test_a_missing_dependency_fails_when_all_are_required(tmp_path: Path) -> None:
    run = run_probe(tmp_path, require_all=True)

    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 error" in run.stdout and "skipped" not in run.stdout
    assert f"GLUE data not found at {tmp_path / 'no-glue'}; set GLUE_DIR ({REQUIRE_ALL}=1" in run.stdout


def test_ci_requires_every_dependency_and_runs_readme_s_test_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    command = re.search(r"## Run the tests\n\n```bash\n(.+)\n```", readme)
    ci = (REPO_ROOT / ".ci" / "run").read_text().splitlines()

    assert command and " -rs " in command[1]
    assert ci[-1] == command[1]
    assert f"export {REQUIRE_ALL}=1" in ci
