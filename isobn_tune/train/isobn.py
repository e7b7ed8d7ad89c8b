"""IsoBN, the isotropic batch normalisation layer (the [CLS] normaliser this project is about)."""

from __future__ import annotations

import torch
from torch import nn

from isobn_tune.train.isobn_params import (
    EPS_MODES,
    ISOBN_EPS_RATIO,
    ISOBN_NEAR_IDENTITY,
    ISOBN_SCALE_CV,
    ISOBN_SCALE_MAX_MIN,
)

NEAR_IDENTITY = 0.01  # every per-dimension scale within 1% of 1: the layer does next to nothing


class IsoBN(nn.Module):
    """Isotropic batch normalization (Zhou, Lin & Ren, AAAI 2021, Algorithm 1).

    Follows the authors' released code (INK-USC/IsoBN ``model.py``). For an input batch
    ``x`` of shape ``(n, d)``:

    Training mode, on the detached batch ``X``, update the running estimates::

        Y     = X - mean(X, axis=0)
        s_B   = sqrt(mean(Y ** 2, axis=0))                # per-dimension std, (d,)
        C_B   = Y^T Y / n                                  # batch covariance, (d, d)
        sigma <- alpha * sigma + (1 - alpha) * s_B         # ``running_std``
        Sigma <- alpha * Sigma + (1 - alpha) * C_B         # ``running_cov``

    Both modes, from the running estimates::

        rho     = clamp(Sigma / (sigma sigma^T), -1, 1)    # correlation
        gamma_i = mean_j rho_ij ** 2
        s_i     = 1 / (gamma_i * sigma_i + eps) ** beta        # eps_mode "relative": eps * median(sigma)
        m       = sqrt(tr(Sigma) / (sum_i Sigma_ii * s_i ** 2 + eps))   # keeps total variance
        out     = x * (m * s)                              # scale detached; no centring, no affine

    Departures from the released code, which starts both buffers at zero (so after one EMA step
    ``Sigma / (sigma sigma^T)`` is inflated by ``1 / (1 - alpha)`` and every correlation clamps
    to +-1, and an eval before any training step computes 0/0 = NaN):

    * the first training batch initialises the estimates directly (``sigma = s_B``,
      ``Sigma = C_B``); later batches use the EMA;
    * before any training batch has been seen the module is the identity, in eval mode too;
    * ``sigma sigma^T`` is clamped to a tiny positive value, so zero-variance dimensions get
      ``rho = 0`` instead of NaN;
    * a training batch of fewer than 2 rows leaves the estimates unchanged (its covariance is
      undefined) and is scaled with the running estimates.

    Statistics are computed with autocast disabled in at least float32, whatever the input
    dtype; the output has the input's dtype.

    ``eps_mode="relative"`` (not in the paper) multiplies eps by the running median of sigma, so
    the same eps acts alike on encoders whose [CLS] scales differ by orders of magnitude (MiniLM's
    per-dimension std is about 0.04, where the paper's absolute eps of 0.1 swamps gamma * sigma and
    the layer is nearly the identity). :meth:`activity` measures how far from the identity it is.
    """

    running_cov: torch.Tensor
    running_std: torch.Tensor
    num_batches_tracked: torch.Tensor

    def __init__(
        self, hidden_size: int, *, alpha: float = 0.95, eps: float = 0.1, beta: float = 0.5,
        eps_mode: str = "absolute",
    ) -> None:
        super().__init__()
        if hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {hidden_size}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if eps_mode not in EPS_MODES:
            raise ValueError(f"eps_mode must be one of {EPS_MODES}, got {eps_mode!r}")
        self.hidden_size = hidden_size
        self.alpha = alpha
        self.eps = eps
        self.beta = beta
        self.eps_mode = eps_mode
        self.register_buffer("running_cov", torch.zeros(hidden_size, hidden_size))
        self.register_buffer("running_std", torch.zeros(hidden_size))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return (f"{self.hidden_size}, alpha={self.alpha}, eps={self.eps}, beta={self.beta}, "
                f"eps_mode={self.eps_mode}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.size(1) != self.hidden_size:
            raise ValueError(
                f"IsoBN expects input of shape (n, {self.hidden_size}), got {tuple(x.shape)}"
            )
        with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=False):
            stats_dtype = torch.promote_types(self.running_cov.dtype, torch.float32)
            if self.training and x.size(0) >= 2:
                self._update(x.detach().to(stats_dtype))
            scale = self._scale(stats_dtype)
        return x * scale.to(x.dtype)

    def _update(self, x: torch.Tensor) -> None:
        """Fold one batch into the running estimates (the first batch replaces them)."""
        y = x - x.mean(dim=0)
        batch_std = y.pow(2).mean(dim=0).sqrt()
        batch_cov = y.T @ y / x.size(0)
        # Weight of the old estimate: 0 for the first batch, so it initialises the estimates.
        keep = torch.where(self.num_batches_tracked > 0, self.alpha, 0.0).to(x.dtype)
        self.running_std.copy_(keep * self.running_std + (1 - keep) * batch_std)
        self.running_cov.copy_(keep * self.running_cov + (1 - keep) * batch_cov)
        self.num_batches_tracked.add_(1)

    def _scale(self, dtype: torch.dtype) -> torch.Tensor:
        """Per-dimension scale ``m * s`` from the running estimates; ones before any update."""
        return self._scale_parts(dtype)[0]

    def _scale_parts(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The per-dimension scale ``m * s``, ``gamma * sigma`` and the eps in use."""
        cov = self.running_cov.to(dtype)
        std = self.running_std.to(dtype)
        denom = torch.outer(std, std).clamp_min(torch.finfo(dtype).tiny)
        corr = (cov / denom).clamp(-1, 1)
        gamma = corr.pow(2).mean(dim=1)
        if self.eps_mode == "relative":
            eps = self.eps * std.median().clamp_min(torch.finfo(dtype).eps)
        else:
            eps = torch.tensor(self.eps, dtype=dtype, device=std.device)
        scale = (gamma * std + eps).pow(-self.beta)
        variance = torch.diagonal(cov)
        total = variance.sum()
        rescale = (total / ((variance * scale.pow(2)).sum() + eps)).sqrt()
        scale = torch.where(self.num_batches_tracked > 0, scale * rescale, torch.ones_like(scale))
        return scale, gamma * std, eps

    @torch.no_grad()
    def activity(self) -> dict[str, float]:
        """How much the layer acts, from its running estimates (cheap: no data pass):
        ``isobn_scale_max_min`` (largest over smallest per-dimension scale), ``isobn_scale_cv``
        (their coefficient of variation), ``isobn_eps_ratio`` (eps in use over the median of
        gamma * sigma: far above 1, eps dominates and every dimension gets the same scale) and
        ``isobn_near_identity`` (1 when every dimension's scale is within 1% of 1)."""
        dtype = torch.promote_types(self.running_cov.dtype, torch.float32)
        scale, gamma_sigma, eps = self._scale_parts(dtype)
        tiny = torch.finfo(dtype).tiny
        return {
            ISOBN_SCALE_MAX_MIN: (scale.max() / scale.min().clamp_min(tiny)).item(),
            ISOBN_SCALE_CV: (scale.std(correction=0) / scale.mean()).item(),
            ISOBN_EPS_RATIO: (eps / gamma_sigma.median().clamp_min(tiny)).item(),
            ISOBN_NEAR_IDENTITY: float((scale - 1).abs().max().item() <= NEAR_IDENTITY),
        }
