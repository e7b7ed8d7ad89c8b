"""``isobn-tune train``: a tiny real run through the console script, and bad input rejected early."""

import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from isobn_tune import load_classifier
from isobn_tune.cli import main
from isobn_tune.data.glue import DataSource, load_split, subsample
from isobn_tune.data.tasks import get_task

SCRIPT = str(Path(sys.executable).with_name("isobn-tune"))
TINY_RUN = ["--max-train-examples", "32", "--max-dev-examples", "32", "--max-seq-length", "32",
            "--max-epochs", "1", "--threads", "1"]
# Bad input must fail before tokenising or loading a model: well below what a real run costs.
MAX_ERROR_CPU_S = 20.0


@pytest.fixture
def broken_rte(tmp_path: Path, glue_dir: Path) -> Path:
    """A GLUE folder with a tiny RTE copy whose dev file has a row missing its label field."""
    rte = tmp_path / "broken-glue" / "RTE"
    rte.mkdir(parents=True)
    train = (glue_dir / "RTE" / "train.tsv").read_text(encoding="utf-8").splitlines()[:9]
    dev = (glue_dir / "RTE" / "dev.tsv").read_text(encoding="utf-8").splitlines()[:5]
    dev[3] = dev[3].rsplit("\t", 1)[0]
    (rte / "train.tsv").write_text("\n".join(train) + "\n", encoding="utf-8")
    (rte / "dev.tsv").write_text("\n".join(dev) + "\n", encoding="utf-8")
    return rte.parent


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh tokenisation cache: it is never created when input is rejected before tokenising."""
    path = tmp_path / "cache"
    monkeypatch.setenv("ISOBN_TUNE_CACHE", str(path))
    return path


def train_args(glue_dir: Path, *extra: str) -> list[str]:
    return ["train", "--task", "rte", "--model", "minilm", "--glue-dir", str(glue_dir), *TINY_RUN, *extra]


def run_script(args: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """Run the console script; return its result and the CPU seconds it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=600, env=os.environ.copy())
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_tiny_real_run_prints_epoch_lines_and_final_metrics_and_saves_the_best_model(glue_dir, tmp_path):
    proc, _ = run_script(train_args(glue_dir, "--output-dir", str(tmp_path / "model")))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "rte: 32 train, 32 dev; isobn on minilm"
    assert re.fullmatch(r"epoch 1/1: train_loss=\d+\.\d{4} dev_accuracy=\d\.\d{4} \(\d+\.\d ex/s\)", lines[1])
    assert re.fullmatch(r"best epoch 1: dev_accuracy=\d\.\d{4}", lines[2])
    assert lines[1].split()[3] == lines[2].split()[3]
    assert lines[3] == f"saved the best epoch's model to {tmp_path / 'model'}"
    # The saved model scores the dev rows as training did.
    dev = subsample(load_split(get_task("rte"), "dev", DataSource(glue_dir)), 32)
    classifier = load_classifier(tmp_path / "model")
    accuracy = np.mean(classifier.predict(dev["text_a"], dev["text_b"]) == np.asarray(dev["label"]))
    assert f"dev_accuracy={accuracy:.4f}" == lines[2].split()[3]


# Each is also an in-process case below; one launch stays in the default run.
@pytest.mark.parametrize("case", [
    "unknown task", pytest.param("missing model path", marks=pytest.mark.slow),
    pytest.param("malformed row", marks=pytest.mark.slow)])
def test_console_script_rejects_bad_input_quickly(case, glue_dir, broken_rte, cache_dir, tmp_path):
    args = {
        "unknown task": train_args(glue_dir, "--task", "rte3"),
        "missing model path": train_args(glue_dir, "--model", str(tmp_path / "no-model")),
        "malformed row": train_args(broken_rte),
    }[case]
    proc, cpu_s = run_script(args)
    assert proc.returncode == 2
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("error: ")
    assert cpu_s < MAX_ERROR_CPU_S
    assert not cache_dir.exists()


# Name -> (extra CLI arguments, the one-line error expected); ``{tmp}`` is the test's tmp_path.
BAD_INPUTS = {
    "unknown task": (["--task", "sst3"],
                     "unknown task 'sst3'; allowed tasks: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte"),
    "missing data dir": (["--glue-dir", "{tmp}/nowhere"],
                         "GLUE data folder {tmp}/nowhere does not exist; set --glue-dir or $GLUE_DIR"),
    "missing task file": (["--glue-dir", "{tmp}/only-train"],
                          "GLUE file {tmp}/only-train/RTE/dev.tsv does not exist; set --glue-dir"),
    "missing model path": (["--model", "{tmp}/no-model"], "model directory '{tmp}/no-model' does not exist"),
    "negative beta": (["--beta=-0.5"], "--beta: Input should be greater than or equal to 0 (got -0.5)"),
    "alpha out of range": (["--alpha", "1"], "--alpha: Input should be less than 1 (got 1)"),
    "zero eps": (["--eps", "0"], "--eps: Input should be greater than 0 (got 0)"),
    "infinite lr": (["--lr", ".inf"], "--lr: Input should be a finite number (got inf)"),
    "unknown cls-norm": (["--cls-norm", "whitening"],
                         ("--cls-norm: Input should be 'isobn', 'batchnorm', 'layernorm' or 'none' "
                          "(got 'whitening')")),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_exit_2_and_a_one_line_error_naming_it(case, glue_dir, tmp_path, cache_dir, capsys):
    (tmp_path / "only-train" / "RTE").mkdir(parents=True)
    shutil.copy(glue_dir / "RTE" / "train.tsv", tmp_path / "only-train" / "RTE" / "train.tsv")
    extra, message = BAD_INPUTS[case]
    assert main(train_args(glue_dir, *(arg.format(tmp=tmp_path) for arg in extra))) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith("error: ") and message.format(tmp=tmp_path) in err
    assert not cache_dir.exists()


def test_malformed_tsv_row_is_named_by_file_and_line(broken_rte, cache_dir, capsys):
    assert main(train_args(broken_rte)) == 2
    dev_file = broken_rte / "RTE" / "dev.tsv"
    assert capsys.readouterr().err == f"error: {dev_file} line 4: expected 4 tab-separated fields, found 3\n"
    assert not cache_dir.exists()


def test_every_trial_setting_is_a_flag_read_as_in_a_space_file(glue_dir):
    from isobn_tune.cli import _checked_train_inputs, _parser
    from isobn_tune.train.recipe import TrialConfig

    args = _parser().parse_args(train_args(glue_dir, "--random-init", "--lr", "1e-4", "--patience", "null",
                                           "--batching", "length_grouped", "--cls-norm", "none"))
    _, cfg, data, _ = _checked_train_inputs(args)
    assert (cfg.random_init, cfg.lr, cfg.patience, cfg.batching, cfg.max_epochs) == (
        True, 1e-4, None, "length_grouped", 1)
    assert (data.max_train_examples, data.max_seq_length) == (32, 32)
    flags = {action.dest.partition(".")[2] for action in _train_parser()._actions if "." in action.dest}
    assert flags == set(TrialConfig.model_fields) - {"model_overrides"} | {
        "glue_dir", "max_train_examples", "max_dev_examples", "max_seq_length"}


def _train_parser():
    from isobn_tune.cli import _parser

    subparsers = next(a for a in _parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    return subparsers.choices["train"]
