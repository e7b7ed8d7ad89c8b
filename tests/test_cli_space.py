"""``isobn-tune validate`` and ``isobn-tune show``: exit codes, output, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SPACES, tiny_space, write_yaml

from isobn_tune.cli import format_space_summary, main
from isobn_tune.data.tasks import get_task
from isobn_tune.space import load_space, trial_configs
from isobn_tune.sweep.disk_estimate import DiskEstimate, estimate_disk
from isobn_tune.train.model import build_model
from isobn_tune.train.recipe import TrialConfig

QUICKSTART = SPACES / "quickstart.yaml"

GRID = "grid:\n  batch_size: [16]\n  cls_norm: [isobn]\n  seeds: [1]\n"
BAD_FILES = {  # the grid section after a valid header, and what the error must say
    "unknown key": (GRID + "  lr: [1e-5]\n  betas: [1]\n", "grid.betas: unknown key"),
    "wrong type": (GRID + "  lr: fast\n", "grid.lr"),
    "out of range": (GRID + "  lr: [1e-5]\n  alpha: [1.5]\n", "grid.alpha[0]: Input should be less than 1"),
    "bad yaml": ("grid: [1e-5\n", "invalid YAML"),
}
HEADER = "name: bad\nmodel: {name_or_path: bert-base-cased}\ntasks: [rte]\n"


def write_bad(tmp_path: Path, case: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(HEADER + BAD_FILES[case][0])
    return path


def test_validate_accepts_the_quickstart(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(QUICKSTART)]) == 0
    assert capsys.readouterr().out == f"{QUICKSTART}: OK (6 trials)\n"


@pytest.mark.parametrize("file", sorted(p.name for p in SPACES.glob("*.yaml")))
def test_validate_accepts_every_shipped_space(file: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SPACES / file)]) == 0
    assert capsys.readouterr().out.endswith(" trials)\n")


def test_show_prints_the_trial_count_and_the_grid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(QUICKSTART)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "total trials: 6" in lines and "trials per task: 6" in lines
    axes_at, trials_at = lines.index(next(ln for ln in lines if ln.startswith("axes"))), lines.index(
        next(ln for ln in lines if ln.startswith("first trials")))
    axes = {line.split()[0]: line.split(None, 1)[1] for line in lines[axes_at + 1 : trials_at]}
    assert axes["cls_norm"] == "none, isobn" and axes["seed"] == "1, 2, 3"
    assert axes["beta"] == "0.5  (isobn only)"
    # The trial order Tune will use: a configuration's seeds one after the other.
    assert lines[trials_at + 1 : trials_at + 7] == [
        f"  cls_norm {norm}, seed {seed}" for norm in ("none", "isobn") for seed in (1, 2, 3)
    ]


def test_show_counts_the_paper_grid_over_its_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(SPACES / "paper_bert_base_isobn.yaml")]) == 0
    out = capsys.readouterr().out
    assert "trials per task: 90" in out  # lr 3 x batch 2 x beta 3 x 5 seeds
    assert "total trials: 630" in out  # x 7 tasks


@pytest.mark.parametrize("command", ["validate", "show"])
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_is_one_error_line_with_exit_code_2(
    command: str, case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_bad(tmp_path, case)
    assert main([command, str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"error: {path}")
    assert BAD_FILES[case][1] in captured.err


def test_missing_file_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.yaml")
    assert main(["validate", missing]) == 2
    assert capsys.readouterr().err == f"error: search space file {missing!r} does not exist\n"


def test_bad_file_from_the_command_line_has_no_traceback(tmp_path: Path) -> None:
    path = write_bad(tmp_path, "out of range")
    proc = subprocess.run([sys.executable, "-m", "isobn_tune.cli", "validate", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: {path}: grid.alpha[0]: Input should be less than 1 (got 1.5)"]


def test_summary_lists_axes_counts_and_scheduler() -> None:
    text = format_space_summary(load_space(SPACES / "quickstart.yaml"))
    assert "tasks: stsb" in text
    assert "cls_norm    none, isobn" in text
    assert "beta        0.5  (isobn only)" in text
    assert "seed        1, 2, 3" in text
    assert "trials per task: 6" in text
    assert "total trials: 6" in text
    assert "scheduler: fifo" in text


def test_summary_of_an_optuna_sweep_shows_the_ranges() -> None:
    text = format_space_summary(load_space(SPACES / "optuna_refine_beta_alpha.yaml"))
    assert ("optuna: 20 points per task over isobn's beta (uniform in [0.1, 1.5]), "
            "alpha (uniform in [0.8, 0.99]); 2 at a time, sampler seed 0") in text
    assert "eps_mode    absolute" in text  # not searched: the grid's first point


def test_show_estimates_the_disk_from_the_models_parameter_count(glue_dir: Path, tmp_path: Path) -> None:
    """Live trials keep checkpoints of 16 bytes a parameter (weights, AdamW, best model), finished
    ones 4; the count (meta device) is the real model's state dict, the largest over tasks' heads
    and normalisers."""
    space = load_space(write_yaml(tmp_path / "tiny.yaml", tiny_space(
        glue_dir, tmp_path, tasks=["rte", "stsb"], resources={"max_concurrent_trials": 2},
        run={"storage_path": str(tmp_path), "checkpoints_to_keep": 3})))
    built = [build_model(TrialConfig.from_dict(config), get_task(task).num_labels)
             for task in space.tasks for config in trial_configs(space, task)]
    parameters = max(sum(t.numel() for t in model.state_dict().values()) for model in built)
    estimate = estimate_disk(space)
    assert estimate == DiskEstimate(parameters=parameters, live_trials=2, checkpoints_to_keep=3, trials=8)
    assert estimate.total == 2 * 3 * 16 * parameters + 8 * 4 * parameters
    line = next(line for line in format_space_summary(space).splitlines() if line.startswith("disk:"))
    assert f"2 live trial(s) x 3 checkpoints x {16 * parameters / 1e6:.3g} MB" in line


def test_show_without_the_models_config_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text(HEADER.replace("bert-base-cased", "no-such-org/no-such-model") + GRID + "  lr: [1e-5]\n")
    assert main(["show", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "disk: no estimate (it needs the config of model 'no-such-org/no-such-model'" in out
    assert "Traceback" not in out + err
