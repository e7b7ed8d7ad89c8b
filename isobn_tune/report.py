"""``isobn-tune report``: the paper-style table of a sweep, read back from MLflow (no Ray, no torch)."""

from __future__ import annotations

from isobn_tune.aggregate import method_table, summarise_groups, table_markdown
from isobn_tune.errors import UserError
from isobn_tune.mlflow_runs import records_from_mlflow


def print_report(target: str, *, tracking_uri: str | None = None, groups: bool = False) -> None:
    """The table for a sweep directory (its manifest names the run) or a parent run id."""
    if tracking_uri is None:
        from isobn_tune.sweep_dir import SweepDir, read_manifest

        manifest = read_manifest(SweepDir.parse(target))
        tracking_uri, run_id = manifest["tracking_uri"], manifest["parent_run_id"]
    else:
        run_id = target
    records = records_from_mlflow(tracking_uri, run_id)
    if not records:
        raise UserError(f"run {run_id} has no trial runs yet")
    summaries = summarise_groups(records)
    print(table_markdown(method_table(summaries)), end="")
    if groups:
        print()
        for s in summaries:
            print(f"{s.task:6s} {s.label:55s} median {s.median:.4f} std {s.std:.4f} "
                  f"seeds {list(s.seeds)}")
