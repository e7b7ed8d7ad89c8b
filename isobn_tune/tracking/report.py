"""``isobn-tune report``: what a sweep found, read back from MLflow (no Ray, no torch): the task x
method table with its comparison rows (in points), as Markdown, CSV or JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from isobn_tune.errors import UserError
from isobn_tune.results.aggregate import summarise_groups
from isobn_tune.results.tables import sweep_results
from isobn_tune.tracking.readback import records_from_mlflow, sweep_run

FORMATS = ("md", "csv", "json")


def print_report(target: str, *, tracking_uri: str | None = None, groups: bool = False, fmt: str = "md",
                 compare: Sequence[str] | None = None) -> None:
    """The report of a sweep directory (its manifest names the run) or a parent run id.

    ``compare``: two configuration labels (as ``--groups`` lists them) to compare seed by seed
    on every task where both ran, beside the comparisons with the baseline."""
    if fmt not in FORMATS:
        raise UserError(f"report format {fmt!r}: use one of {', '.join(FORMATS)}")
    tracking_uri, run_id = sweep_run(target, tracking_uri)
    records = records_from_mlflow(tracking_uri, run_id)
    if not records:
        raise UserError(f"run {run_id} has no trial runs yet")
    summaries = summarise_groups(r for r in records if not r.confirmation)  # the selection sweep
    if compare is not None:
        labels = {s.label for s in summaries}
        unknown = [label for label in compare if label not in labels]
        if unknown:
            raise UserError(f"--compare: no configuration {unknown[0]!r} in this sweep; its configurations: "
                            f"{', '.join(sorted(labels))}")
    results = sweep_results(records, compare)
    if fmt == "csv":
        print(results.csv(), end="")
    elif fmt == "json":
        print(json.dumps(_finite(results.as_json()), indent=2))
    else:
        print(results.description(), end="")
    if groups:  # the selection seeds' groups, then those `isobn-tune confirm` ran at fresh seeds
        print()
        confirmed = summarise_groups(r for r in records if r.confirmation)
        for s, role in [(s, "") for s in summaries] + [(s, " (confirmation)") for s in confirmed]:
            print(f"{s.task:6s} {s.label:55s} median {s.median:.4f} std {s.std:.4f} "
                  f"seeds {list(s.seeds)}{role}")


def _finite(value: Any) -> Any:
    """JSON has no NaN: undefined statistics (too few seeds) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
