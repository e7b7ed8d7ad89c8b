"""Raw GLUE examples from a local ``glue_data`` folder or the Hugging Face hub.

Every split comes back as a ``datasets.Dataset`` with columns ``text_a``, ``text_b`` (pair tasks
only) and ``label`` (the hub's class ids, or the float score for STS-B).
"""

from __future__ import annotations

import csv
import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from isobn_tune.data import sample_glue
from isobn_tune.data.tasks import TaskSpec
from isobn_tune.errors import UserError

logger = logging.getLogger(__name__)

GLUE_DIR_ENV = "GLUE_DIR"
HUB_DATASET = "nyu-mll/glue"
TEXT_COLUMNS = ("text_a", "text_b")


@dataclass(frozen=True)
class DataSource:
    """Where GLUE comes from: a local classic GLUE folder, or the hub when ``glue_dir`` is None."""

    glue_dir: Path | None = None


def resolve_glue_dir(setting: str | Path | None) -> Path | None:
    """The GLUE folder: the explicit setting, else ``$GLUE_DIR``, else None (use the hub);
    ``bundled:sample`` is the package's own few rows."""
    value = setting or os.environ.get(GLUE_DIR_ENV)
    if value == sample_glue.SETTING:
        return sample_glue.DIRECTORY
    return Path(value).expanduser() if value else None


@dataclass(frozen=True)
class _TsvLayout:
    """How one task's TSV files are laid out.

    Columns are header names, or positions when the file has no header (then
    ``headerless_fields`` gives the field count). ``label_values`` lists the label strings in
    class-id order; None means a float score. ``test_text_columns``: the text columns' names in
    the test file when they differ (CoLA's test file has a header, its train and dev files none).
    """

    text_columns: tuple[str | int, ...]
    label_column: str | int
    label_values: tuple[str, ...] | None
    headerless_fields: int | None = None
    skip_malformed: bool = False
    test_text_columns: tuple[str, ...] | None = None


_BINARY = ("0", "1")
_NLI2 = ("entailment", "not_entailment")

_LAYOUTS: dict[str, _TsvLayout] = {
    "cola": _TsvLayout((3,), 1, _BINARY, headerless_fields=4, test_text_columns=("sentence",)),
    "sst2": _TsvLayout(("sentence",), "label", _BINARY),
    "mrpc": _TsvLayout(("#1 String", "#2 String"), "Quality", _BINARY),
    # The original QQP train file has a few rows with missing fields; GLUE's scripts skip them.
    "qqp": _TsvLayout(("question1", "question2"), "is_duplicate", _BINARY, skip_malformed=True),
    "stsb": _TsvLayout(("sentence1", "sentence2"), "score", None),
    "mnli": _TsvLayout(("sentence1", "sentence2"), "gold_label", ("entailment", "neutral", "contradiction")),
    "qnli": _TsvLayout(("question", "sentence"), "label", _NLI2),
    "rte": _TsvLayout(("sentence1", "sentence2"), "label", _NLI2),
}

INDEX_COLUMNS = ("index", "id")  # the example ids of GLUE's test files (QQP's: id)

_HUB_SPLITS = {
    "train": "train",
    "dev": "validation",
    "dev_matched": "validation_matched",
    "dev_mismatched": "validation_mismatched",
}


def text_columns(task: TaskSpec) -> tuple[str, ...]:
    """Our text column names for a task: ``text_a``, plus ``text_b`` for pair tasks."""
    return TEXT_COLUMNS[: len(task.text_columns)]


def label_names(task: TaskSpec) -> tuple[str, ...] | None:
    """The task's labels as GLUE's files (and its submissions) spell them, in class-id order;
    None for a score (STS-B)."""
    return _LAYOUTS[task.name].label_values


@dataclass(frozen=True)
class Examples:
    """Examples to predict: their ids and their texts, column by column (``text_a[, text_b]``)."""

    ids: list[str]
    texts: list[list[str]]


def read_examples(task: TaskSpec, path: Path) -> Examples:
    """The examples of a TSV file of ``task`` in any GLUE layout: a test file (no label column)
    or a train or dev file. Ids come from the file's index column, else are the row numbers
    from 0."""
    layout = _LAYOUTS[task.name]
    if not path.is_file():
        raise UserError(f"input file {path} does not exist")
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        first = next(reader, None)
        if first is None:
            raise UserError(f"{path} is empty; expected a {task.name} file in GLUE's layout")
        names = layout.test_text_columns or layout.text_columns
        if set(names) <= set(first):  # a header row
            width, positions = len(first), [first.index(str(c)) for c in names]
            id_pos = next((first.index(c) for c in INDEX_COLUMNS if c in first), None)
            rows: Iterator[list[str]] = reader
        elif layout.headerless_fields is not None:
            width, positions, id_pos = layout.headerless_fields, [int(c) for c in layout.text_columns], None
            rows = itertools.chain([first], reader)
        else:
            missing = [c for c in names if c not in first]
            raise UserError(f"{path} line 1: header {first} lacks column(s) {missing}")
        examples = Examples([], [[] for _ in positions])
        skipped = 0
        for row in rows:
            if len(row) != width:
                if layout.skip_malformed:
                    skipped += 1
                    continue
                raise UserError(f"{path} line {reader.line_num}: expected {width} tab-separated fields, "
                                f"found {len(row)}")
            examples.ids.append(row[id_pos] if id_pos is not None else str(len(examples.ids) + skipped))
            for column, pos in zip(examples.texts, positions, strict=True):
                column.append(row[pos])
    if skipped:
        logger.warning("skipped %d malformed row(s) of %s", skipped, path)
    return examples


def _check_split(task: TaskSpec, split: str) -> None:
    allowed = ("train", *task.dev_splits)
    if split not in allowed:
        raise UserError(f"unknown split {split!r} for task {task.name}; allowed: {list(allowed)}")


def hub_split_name(task: TaskSpec, split: str) -> str:
    """The hub's name for one of our splits (``dev`` is the hub's ``validation``)."""
    _check_split(task, split)
    return _HUB_SPLITS[split]


def split_file(task: TaskSpec, split: str, glue_dir: Path) -> Path:
    """The TSV file of a split under ``glue_dir``; UserError naming what is missing."""
    _check_split(task, split)
    hint = f"set --glue-dir or ${GLUE_DIR_ENV} to the folder holding the GLUE task folders"
    if not glue_dir.is_dir():
        raise UserError(f"GLUE data folder {glue_dir} does not exist; {hint}")
    task_dir = glue_dir / task.glue_dir_name
    if not task_dir.is_dir():
        raise UserError(f"GLUE task folder {task_dir} does not exist; {hint}")
    path = task_dir / f"{split}.tsv"
    if not path.is_file():
        raise UserError(f"GLUE file {path} does not exist; {hint}")
    return path


def source_fingerprint(task: TaskSpec, split: str, source: DataSource) -> str:
    """A string that changes when the raw data of a split may have changed."""
    if source.glue_dir is None:
        return f"hub:{HUB_DATASET}:{task.hub_config}:{hub_split_name(task, split)}"
    stat = split_file(task, split, source.glue_dir).stat()
    return f"file:size={stat.st_size}:mtime_ns={stat.st_mtime_ns}"


def load_split(task: TaskSpec, split: str, source: DataSource) -> datasets.Dataset:
    """All examples of ``split`` ("train" or one of ``task.dev_splits``)."""
    if source.glue_dir is None:
        return _load_hub(task, split)
    return _read_tsv(task, split_file(task, split, source.glue_dir))


def _features(task: TaskSpec) -> datasets.Features:
    label = datasets.Value("float32" if task.is_regression else "int64")
    text = {c: datasets.Value("string") for c in text_columns(task)}
    return datasets.Features({**text, "label": label})


def _read_tsv(task: TaskSpec, path: Path) -> datasets.Dataset:
    layout = _LAYOUTS[task.name]
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        width, positions = _column_positions(layout, reader, path)
        columns: dict[str, list] = {c: [] for c in _features(task)}
        skipped = 0
        for row in reader:
            problem = _row_problem(row, width, positions[-1], layout.label_values)
            if problem is None:
                for name, pos in zip(text_columns(task), positions[:-1], strict=True):
                    columns[name].append(row[pos])
                columns["label"].append(_parse_label(row[positions[-1]], layout.label_values))
            elif layout.skip_malformed:
                skipped += 1
            else:
                raise UserError(f"{path} line {reader.line_num}: {problem}")
    if skipped:
        logger.warning("skipped %d malformed row(s) of %s", skipped, path)
    return datasets.Dataset.from_dict(columns, features=_features(task))


def _column_positions(layout: _TsvLayout, reader: Iterator[list[str]], path: Path) -> tuple[int, list[int]]:
    """The field count of a row and the positions of the text columns then the label.

    Reads the header row from ``reader`` when the layout has one.
    """
    wanted = [*layout.text_columns, layout.label_column]
    if layout.headerless_fields is not None:
        return layout.headerless_fields, [int(c) for c in wanted]
    header = next(reader, None)
    if header is None:
        raise UserError(f"{path} is empty; expected a header row naming columns {wanted}")
    missing = [c for c in wanted if c not in header]
    if missing:
        raise UserError(f"{path} line 1: header {header} lacks column(s) {missing}")
    return len(header), [header.index(str(c)) for c in wanted]


def _row_problem(
    row: list[str], width: int, label_pos: int, label_values: tuple[str, ...] | None
) -> str | None:
    """Why a row cannot be read, or None when it is fine."""
    if len(row) != width:
        return f"expected {width} tab-separated fields, found {len(row)}"
    label = row[label_pos]
    if label_values is None:
        try:
            float(label)
        except ValueError:
            return f"label {label!r} is not a number"
    elif label not in label_values:
        return f"label {label!r} is not one of {list(label_values)}"
    return None


def _parse_label(value: str, label_values: tuple[str, ...] | None) -> int | float:
    return float(value) if label_values is None else label_values.index(value)


def _load_hub(task: TaskSpec, split: str) -> datasets.Dataset:
    hub_split = hub_split_name(task, split)
    try:
        ds = datasets.load_dataset(HUB_DATASET, task.hub_config, split=hub_split)
    except Exception as e:  # any hub/network failure: the fix is the same for the user
        reason = (str(e).strip().splitlines() or [""])[0]
        raise UserError(
            f"could not load {HUB_DATASET} {task.hub_config}/{hub_split} from the hub "
            f"({type(e).__name__}: {reason}); set --glue-dir or ${GLUE_DIR_ENV} to a local "
            "GLUE folder"
        ) from e
    renames = dict(zip(task.text_columns, text_columns(task), strict=True))
    ds = ds.select_columns([*task.text_columns, "label"]).rename_columns(renames)
    return ds.cast(_features(task))


def subsample(ds: datasets.Dataset, max_examples: int | None, seed: int = 0) -> datasets.Dataset:
    """A deterministic random subset of at most ``max_examples`` rows, in their original order."""
    if max_examples is None or max_examples >= len(ds):
        return ds
    if max_examples < 1:
        raise UserError(f"max examples={max_examples} must be >= 1 or unset")
    rng = np.random.default_rng(seed)
    return ds.select(np.sort(rng.choice(len(ds), size=max_examples, replace=False)))
