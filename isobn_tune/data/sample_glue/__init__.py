"""GLUE rows shipped inside the package, so the quickstart runs with no data folder and no network.

What they are, how they were chosen and their terms: README.md beside this file.
"""

from pathlib import Path

SETTING = "bundled:sample"  # the data.glue_dir (or --glue-dir, $GLUE_DIR) value that selects them
DIRECTORY = Path(__file__).parent  # a classic GLUE folder: <TASK>/train.tsv, dev.tsv
TASKS = ("stsb",)
