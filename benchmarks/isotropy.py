"""Isotropy of the [CLS] embedding before and after fine-tuning, per task and method.

The paper's analysis (Zhou, Lin & Ren 2021, section 3): the per-dimension standard deviation of
the pooled [CLS] embedding on a task's dev set, and the mean absolute correlation between its
dimensions, for the pretrained encoder ("before") and after fine-tuning with each [CLS]
normalisation. Every trial of a sweep already stores these statistics in its checkpoint
(``isotropy.npz``: the pretrained encoder's pooled embedding on the first dev split, and the
same after its latest epoch); this script gathers them from a finished sweep directory, takes the
median over seeds, and draws one figure per task.

For IsoBN it also shows what the classifier sees: IsoBN only rescales dimensions
(``out = x * scale``), so the normalised embedding has per-dimension std ``std * scale`` and the
same correlations; ``scale`` comes from the IsoBN buffers in the same checkpoint.

Run: python benchmarks/isotropy.py results/reproduce-minilm-cpu-<stamp> [--figures DIR]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from isobn_tune.checkpoint_layout import CHECKPOINT_FILE, ISOTROPY_FILE
from isobn_tune.cls_norm import build_cls_norm
from isobn_tune.isotropy import IsotropyStats, load_stats
from isobn_tune.recipe import TrialConfig

# Rows of the table, in order: the pretrained encoder, then each method after fine-tuning.
BEFORE = "pretrained"


def latest_checkpoint(trial_dir: Path) -> Path | None:
    """The trial's checkpoint of its latest epoch (Tune names them checkpoint_000000, ...)."""
    found = sorted(trial_dir.glob("checkpoint_*"), key=lambda p: int(p.name.split("_")[-1]))
    return found[-1] if found else None


def classifier_input(stats: IsotropyStats, cfg: TrialConfig, checkpoint: Path) -> IsotropyStats:
    """IsoBN's output statistics: its input's, with every dimension rescaled by IsoBN's scale."""
    state = torch.load(checkpoint / CHECKPOINT_FILE, map_location="cpu", weights_only=False)["model"]
    norm = build_cls_norm("isobn", len(stats.per_dim_std), alpha=cfg.alpha, eps=cfg.eps, beta=cfg.beta)
    norm.load_state_dict({k.removeprefix("cls_norm."): v for k, v in state.items()
                          if k.startswith("cls_norm.")})
    with torch.no_grad():
        scale = norm.eval()(torch.ones(1, norm.hidden_size)).squeeze(0).double().numpy()
    return IsotropyStats(per_dim_std=stats.per_dim_std * np.abs(scale), corr=stats.corr)


def gather(sweep_dir: Path) -> dict[str, dict[str, list[IsotropyStats]]]:
    """task -> row label -> one IsotropyStats per trial (seed)."""
    rows: dict[str, dict[str, list[IsotropyStats]]] = defaultdict(lambda: defaultdict(list))
    for params in sorted(sweep_dir.glob("*/*/params.json")):
        checkpoint = latest_checkpoint(params.parent)
        if checkpoint is None:
            continue
        cfg = TrialConfig.from_dict(json.loads(params.read_text()))
        before, after = load_stats(checkpoint / ISOTROPY_FILE)
        by_row = rows[cfg.task]
        if not by_row[BEFORE]:  # the pretrained encoder is the same for every trial of a task
            by_row[BEFORE].append(before)
        by_row[f"{cfg.cls_norm} (encoder output)"].append(after)
        if cfg.cls_norm == "isobn":
            by_row["isobn (classifier input)"].append(classifier_input(after, cfg, checkpoint))
    return rows


def describe(stats: list[IsotropyStats]) -> dict[str, float]:
    """Medians over seeds of the mean per-dimension std, its coefficient of variation and the
    mean |correlation|."""
    return {
        "mean_std": float(np.median([s.per_dim_std.mean() for s in stats])),
        "std_cv": float(np.median([s.std_cv for s in stats])),
        "mean_abs_corr": float(np.median([s.mean_abs_corr for s in stats])),
        "seeds": len(stats),
    }


def plot_task(task: str, rows: dict[str, list[IsotropyStats]], path: Path) -> Path:
    """Sorted per-dimension std (median over seeds) and the distribution of |correlation|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_std, ax_corr) = plt.subplots(1, 2, figsize=(12, 4.2))
    for label, stats in rows.items():
        curve = np.median([np.sort(s.per_dim_std)[::-1] for s in stats], axis=0)
        ax_std.plot(curve / curve.mean(), label=f"{label} (cv {describe(stats)['std_cv']:.2f})")
        d = stats[0].corr.shape[0]
        off_diag = np.abs(stats[0].corr[~np.eye(d, dtype=bool)])
        ax_corr.hist(off_diag, bins=50, range=(0, 1), histtype="step", density=True,
                     label=f"{label} (mean {describe(stats)['mean_abs_corr']:.3f})")
    ax_std.set(title="per-dimension std, sorted, / its mean", xlabel="dimension", ylabel="relative std",
               yscale="log")
    ax_corr.set(title="|correlation| between dimensions (first seed)", xlabel="|rho|", ylabel="density")
    ax_std.legend(fontsize=8)
    ax_corr.legend(fontsize=8)
    fig.suptitle(f"[CLS] isotropy on {task.upper()} dev")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a sweep directory that `isobn-tune run` printed")
    parser.add_argument("--figures", type=Path, default=Path(__file__).parent / "results",
                        help="where to write isotropy_<task>.png (default: benchmarks/results)")
    args = parser.parse_args()

    rows = gather(args.sweep_dir)
    if not rows:
        raise SystemExit(f"{args.sweep_dir}: no trial checkpoints with {ISOTROPY_FILE} found")
    args.figures.mkdir(parents=True, exist_ok=True)
    print("| task | embedding | seeds | mean std | std CV | mean abs corr |")
    print("|---|---|---|---|---|---|")
    for task in sorted(rows):
        for label, stats in rows[task].items():
            d = describe(stats)
            print(f"| {task} | {label} | {d['seeds']} | {d['mean_std']:.4f} | {d['std_cv']:.3f} "
                  f"| {d['mean_abs_corr']:.3f} |")
    for task in sorted(rows):
        print(f"figure: {plot_task(task, rows[task], args.figures / f'isotropy_{task}.png')}")


if __name__ == "__main__":
    main()
