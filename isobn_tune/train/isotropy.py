"""Isotropy of the [CLS] embedding: per-dimension std and correlation (the paper's analysis)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Metric names, per epoch on the dev set; at step 0 the pretrained encoder's.
ISO_MEAN_ABS_CORR = "iso_mean_abs_corr"
ISO_STD_CV = "iso_std_cv"


@dataclass(frozen=True)
class IsotropyStats:
    """Statistics of an (n x d) embedding matrix.

    ``mean_abs_corr`` is the mean |rho_ij| over i != j (0 for isotropic embeddings);
    ``std_cv`` is the coefficient of variation of the per-dimension std (0 when every
    dimension has the same scale).
    """

    per_dim_std: np.ndarray
    corr: np.ndarray

    @property
    def mean_abs_corr(self) -> float:
        d = self.corr.shape[0]
        if d < 2:
            return 0.0
        off_diag = np.abs(self.corr).sum() - np.abs(np.diag(self.corr)).sum()
        return float(off_diag / (d * (d - 1)))

    @property
    def std_cv(self) -> float:
        mean = float(self.per_dim_std.mean())
        return float(self.per_dim_std.std() / mean) if mean > 0 else 0.0

    def summary(self) -> dict[str, float]:
        """The two numbers a trial reports per epoch, named as MLflow logs them."""
        return {ISO_MEAN_ABS_CORR: self.mean_abs_corr, ISO_STD_CV: self.std_cv}


def isotropy_stats(embeddings: np.ndarray) -> IsotropyStats:
    """Per-dimension std and correlation matrix, in float64; constant dimensions get rho = 0."""
    x = np.asarray(embeddings, dtype=np.float64)
    y = x - x.mean(axis=0, keepdims=True)
    cov = y.T @ y / max(len(x), 1)
    std = np.sqrt(np.diag(cov))
    denom = np.outer(std, std)
    corr = np.divide(cov, denom, out=np.zeros_like(cov), where=denom > 0)
    return IsotropyStats(per_dim_std=std, corr=np.clip(corr, -1.0, 1.0))


def save_stats(path: Path, before: IsotropyStats, after: IsotropyStats) -> None:
    np.savez_compressed(
        path,
        std_before=before.per_dim_std, corr_before=before.corr,
        std_after=after.per_dim_std, corr_after=after.corr,
    )


def load_stats(path: Path) -> tuple[IsotropyStats, IsotropyStats]:
    with np.load(path) as f:
        return (
            IsotropyStats(f["std_before"], f["corr_before"]),
            IsotropyStats(f["std_after"], f["corr_after"]),
        )


def plot_isotropy(before: IsotropyStats, after: IsotropyStats, path: Path, title: str = "") -> Path:
    """Per-dimension std (sorted) and |correlation| heat maps before and after fine-tuning, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for stats, label in ((before, "before"), (after, "after")):
        axes[0].plot(np.sort(stats.per_dim_std)[::-1], label=f"{label} (cv={stats.std_cv:.2f})")
    axes[0].set(title="per-dimension std (sorted)", xlabel="dimension", ylabel="std")
    axes[0].legend()
    for ax, stats, label in ((axes[1], before, "before"), (axes[2], after, "after")):
        im = ax.imshow(np.abs(stats.corr), vmin=0, vmax=1, cmap="viridis")
        ax.set(title=f"|correlation| {label} (mean {stats.mean_abs_corr:.3f})")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
