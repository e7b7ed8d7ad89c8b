"""IsoBN's hyperparameters and the names of what it reports, without torch: read by the space
file's validation, the trial config and tracking as well as by the layer itself."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from isobn_tune.strict import StrictModel

EpsMode = Literal["absolute", "relative"]
EPS_MODES: tuple[str, ...] = get_args(EpsMode)


class IsoBNParams(StrictModel):
    """IsoBN's hyperparameters; defaults as in the paper (Zhou, Lin & Ren, AAAI 2021)."""

    beta: float = Field(
        default=0.5, ge=0, le=4,
        description="IsoBN exponent of the per-dimension scale, in [0, 4] (paper: 0.5).",
    )
    alpha: float = Field(
        default=0.95, gt=0, lt=1, description="IsoBN running-statistics momentum, in (0, 1) (paper: 0.95)."
    )
    eps: float = Field(
        default=0.1, gt=0, le=100,
        description="IsoBN eps, in (0, 100] (paper: 0.1; the released code: 1e-3).",
    )
    eps_mode: EpsMode = Field(
        default="absolute",
        description="IsoBN eps as given ('absolute', the paper) or times the running median of the "
        "[CLS] per-dimension std ('relative': the same eps for encoders of any scale).",
    )


# How much IsoBN acts, per epoch in IsoBN trials (isobn.IsoBN.activity): largest / smallest
# per-dimension scale, their coefficient of variation, eps / median(gamma * sigma), and 1 when every
# scale is within 1% of 1 (then the trial's run gets NEAR_IDENTITY_TAG).
ISOBN_SCALE_MAX_MIN = "isobn_scale_max_min"
ISOBN_SCALE_CV = "isobn_scale_cv"
ISOBN_EPS_RATIO = "isobn_eps_ratio"
ISOBN_NEAR_IDENTITY = "isobn_near_identity"
