"""The newcomer's quickstart, measured: console lines, seconds to the first progress line, total.

Each round copies the checkout's files (what a clone has) into an empty temporary directory and runs
``isobn-tune run search_spaces/quickstart.yaml`` there as the README says, with ``GLUE_DIR`` unset and
the hub offline, its output read through a pipe. Prints each round and the median with its range.

Run: python benchmarks/quickstart_console.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def copy_checkout(dest: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest / name)


def one_round() -> tuple[int, float, float]:
    """(lines printed, seconds to the first progress line, total seconds)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GLUE_DIR", "MLFLOW_TRACKING_URI")}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "isobn-tune"
        copy_checkout(clone)
        start, first_progress, lines = time.monotonic(), float("nan"), 0
        proc = subprocess.Popen(["isobn-tune", "run", "search_spaces/quickstart.yaml"], cwd=clone, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            lines += 1
            if line.startswith("[stsb ") and first_progress != first_progress:
                first_progress = time.monotonic() - start
        if proc.wait() != 0:
            sys.exit(f"the quickstart exited with {proc.returncode}")
        return lines, first_progress, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = [one_round() for _ in range(parser.parse_args().rounds)]
    for i, (lines, first, total) in enumerate(rounds, 1):
        print(f"round {i}: {lines} lines, first progress line at {first:.1f} s, total {total:.1f} s")
    for name, values in zip(("lines", "first progress line s", "total s"), zip(*rounds, strict=True),
                            strict=True):
        print(f"{name}: median {statistics.median(values):g} (range {min(values):g}-{max(values):g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
