"""IsoBN against an independent NumPy reference, plus its edge cases and the other normalizers."""

from __future__ import annotations

import typing

import numpy as np
import pytest
import torch
from torch import nn

from isobn_tune.train.cls_norm import CLS_NORMS, PARAM_FIELDS, build_cls_norm, params_of
from isobn_tune.train.isobn import IsoBN

D = 8
N = 16


class ReferenceIsoBN:
    """The documented computation in float64 NumPy, written independently of the module."""

    def __init__(
        self, alpha: float = 0.95, eps: float = 0.1, beta: float = 0.5, relative: bool = False
    ) -> None:
        self.alpha, self.eps, self.beta, self.relative = alpha, eps, beta, relative
        self.std: np.ndarray | None = None
        self.cov: np.ndarray | None = None

    def update(self, x: np.ndarray) -> None:
        y = x - x.mean(axis=0, keepdims=True)
        std = np.sqrt((y**2).mean(axis=0))
        cov = y.T @ y / x.shape[0]
        if self.std is None:
            self.std, self.cov = std, cov
        else:
            self.std = self.alpha * self.std + (1 - self.alpha) * std
            self.cov = self.alpha * self.cov + (1 - self.alpha) * cov

    def correlation(self) -> np.ndarray:
        outer = np.outer(self.std, self.std)
        # Zero-variance dimensions are documented to get rho = 0.
        rho = np.divide(self.cov, outer, out=np.zeros_like(self.cov), where=outer > 0)
        return np.clip(rho, -1, 1)

    def scale(self) -> np.ndarray:
        gamma = (self.correlation() ** 2).mean(axis=1)
        eps = self.eps * np.median(self.std) if self.relative else self.eps
        s = 1 / (gamma * self.std + eps) ** self.beta
        var = np.diag(self.cov)
        m = np.sqrt(var.sum() / ((var * s**2).sum() + eps))
        return s * m

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x * self.scale()


def batches(count: int, seed: int = 0, n: int = N) -> list[torch.Tensor]:
    """Correlated, anisotropic, off-centre batches shaped like [CLS] vectors."""
    gen = torch.Generator().manual_seed(seed)
    mixing = torch.randn(D, D, generator=gen) * torch.linspace(0.2, 3.0, D)
    shift = torch.randn(D, generator=gen)
    return [torch.randn(n, D, generator=gen) @ mixing + shift for _ in range(count)]


def trained(module: IsoBN, count: int = 3) -> IsoBN:
    module.train()
    for x in batches(count):
        module(x)
    return module


def test_matches_reference_in_training_then_eval():
    module, ref = IsoBN(D).train(), ReferenceIsoBN()
    for x in batches(5):
        out = module(x)
        ref.update(x.double().numpy())
        np.testing.assert_allclose(module.running_std.numpy(), ref.std, rtol=1e-4)
        np.testing.assert_allclose(module.running_cov.numpy(), ref.cov, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out.numpy(), ref(x.double().numpy()), rtol=1e-4, atol=1e-6)
    module.eval()
    x = batches(1, seed=1)[0]
    np.testing.assert_allclose(module(x).numpy(), ref(x.double().numpy()), rtol=1e-4, atol=1e-6)


def test_matches_reference_with_other_hyperparameters():
    module, ref = IsoBN(D, alpha=0.5, eps=0.01, beta=1.0).train(), ReferenceIsoBN(0.5, 0.01, 1.0)
    for x in batches(3):
        out = module(x)
        ref.update(x.double().numpy())
    np.testing.assert_allclose(out.numpy(), ref(x.double().numpy()), rtol=1e-4, atol=1e-6)


def test_relative_eps_matches_reference():
    """eps_mode relative: eps times the running median of sigma (torch's median of an even count
    is the lower middle value, numpy's the mean of both: an odd width keeps them equal)."""
    width = D + 1
    module = IsoBN(width, eps=0.5, eps_mode="relative").train()
    ref = ReferenceIsoBN(eps=0.5, relative=True)
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        x = torch.randn(N, width, generator=gen) * torch.linspace(0.01, 0.1, width)
        out = module(x)
        ref.update(x.double().numpy())
    np.testing.assert_allclose(out.numpy(), ref(x.double().numpy()), rtol=1e-4, atol=1e-7)


def test_relative_eps_acts_alike_at_any_scale_of_the_embedding():
    """The same embedding scaled by 1000: the relative scale is the same, the absolute is not."""
    x = batches(1)[0]
    for mode, same in (("relative", True), ("absolute", False)):
        small, large = IsoBN(D, eps=0.1, eps_mode=mode).train(), IsoBN(D, eps=0.1, eps_mode=mode).train()
        small(x * 1e-3)
        large(x)
        assert np.allclose(small._scale(torch.float64).numpy(), large._scale(torch.float64).numpy(),
                           rtol=1e-3) is same


def test_activity_measures_how_far_from_the_identity_it_acts():
    ref = ReferenceIsoBN(eps=1e-3)
    acting = IsoBN(D, eps=1e-3).train()
    for x in batches(3):
        acting(x)
        ref.update(x.double().numpy())
    scale = ref.scale()
    gamma_sigma = (ref.correlation() ** 2).mean(axis=1) * ref.std
    lower_median = np.sort(gamma_sigma)[(D - 1) // 2]  # torch's median of an even count
    assert acting.activity() == pytest.approx({
        "isobn_scale_max_min": scale.max() / scale.min(),
        "isobn_scale_cv": scale.std() / scale.mean(),
        "isobn_eps_ratio": 1e-3 / lower_median,
        "isobn_near_identity": 0.0,
    }, rel=1e-3)


def test_activity_flags_the_identity_on_a_minilm_like_embedding():
    """384 uncorrelated dimensions of std 0.04 (MiniLM-L6's pooled [CLS]) under the paper's eps
    0.1: gamma * sigma is about 1e-4, every dimension gets the same scale and the variance
    renormalisation brings it back to 1 (0.992)."""
    width, std = 384, 0.04
    idle = IsoBN(width, eps=0.1)
    idle.running_std.fill_(std)
    idle.running_cov.copy_(torch.eye(width) * std**2)
    idle.num_batches_tracked.fill_(1)
    activity = idle.activity()
    assert activity["isobn_near_identity"] == 1.0
    assert activity["isobn_eps_ratio"] == pytest.approx(0.1 / (std / width), rel=1e-4)
    assert IsoBN(D).activity()["isobn_near_identity"] == 1.0  # before any batch: the identity
    idle.eps_mode = "relative"  # eps = 0.1 x 0.04: now the layer acts on a correlated embedding
    idle.running_cov.copy_(torch.full((width, width), 0.5 * std**2) + torch.eye(width) * 0.5 * std**2)
    idle.running_std.copy_(torch.linspace(0.5, 1.5, width) * std)
    assert idle.activity()["isobn_near_identity"] == 0.0


def test_eval_does_not_update_statistics():
    module = trained(IsoBN(D)).eval()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    module(batches(1, seed=1)[0])
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("training", [True, False])
def test_identity_before_any_training_batch(training):
    module = IsoBN(D).train(training)
    x = batches(1)[0][:1]  # one row: never updates the statistics
    assert torch.equal(module(x), x)
    assert int(module.num_batches_tracked) == 0


def test_eval_before_training_is_identity_not_nan():
    x = batches(1)[0]
    assert torch.equal(IsoBN(D).eval()(x), x)


def test_single_row_batch_after_training_is_scaled_without_update():
    module = trained(IsoBN(D))
    before = module.running_cov.clone()
    row = batches(1, seed=1)[0][:1]
    out = module(row)
    assert torch.equal(module.running_cov, before)
    assert int(module.num_batches_tracked) == 3
    assert torch.allclose(out, module.eval()(row))


def test_first_batch_sets_batch_correlation_not_inflated():
    x = batches(1)[0]
    module = IsoBN(D).train()
    module(x)
    corr = module.running_cov / torch.outer(module.running_std, module.running_std)
    expected = np.corrcoef(x.double().numpy(), rowvar=False)
    np.testing.assert_allclose(corr.numpy(), expected, rtol=1e-4, atol=1e-5)
    off_diagonal = corr[~torch.eye(D, dtype=torch.bool)]
    assert off_diagonal.abs().max() < 0.99


def test_zero_variance_dimension_gets_zero_correlation_not_nan():
    x = batches(1)[0]
    x[:, 2] = 5.0
    module, ref = IsoBN(D).train(), ReferenceIsoBN()
    out = module(x)
    ref.update(x.double().numpy())
    assert module.running_std[2] == 0
    assert torch.isfinite(out).all()
    np.testing.assert_allclose(out.numpy(), ref(x.double().numpy()), rtol=1e-4, atol=1e-6)


def test_state_dict_round_trip_gives_identical_outputs():
    module = trained(IsoBN(D)).eval()
    fresh = IsoBN(D).eval()
    fresh.load_state_dict(module.state_dict())
    x = batches(1, seed=1)[0]
    assert torch.equal(fresh(x), module(x))


def test_buffers_are_registered_and_follow_to():
    module = trained(IsoBN(D)).to(torch.float64)
    assert {name for name, _ in module.named_buffers()} == {
        "running_cov",
        "running_std",
        "num_batches_tracked",
    }
    assert module.running_cov.dtype == module.running_std.dtype == torch.float64
    assert module.num_batches_tracked.dtype == torch.long
    x = batches(1, seed=1)[0].double()
    assert module.eval()(x).dtype == torch.float64


def test_no_gradient_through_statistics():
    module = trained(IsoBN(D))
    x = batches(1, seed=1)[0].requires_grad_()
    module(x).sum().backward()
    scale = module.eval()(torch.ones(1, D))
    assert torch.allclose(x.grad, scale.expand(N, D))


def test_beta_zero_is_identity_up_to_variance_rescale():
    module = trained(IsoBN(D, beta=0.0)).eval()
    total = torch.trace(module.running_cov)
    m = torch.sqrt(total / (total + module.eps))
    x = batches(1, seed=1)[0]
    assert torch.allclose(module(x), x * m)


def test_bf16_autocast_on_cpu_keeps_float32_statistics():
    inputs = [x.bfloat16() for x in batches(3)]
    reference = IsoBN(D).train()
    for x in inputs:
        reference(x.float())
    module = IsoBN(D).train()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        for x in inputs:
            out = module(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert module.running_cov.dtype == module.running_std.dtype == torch.float32
    # Statistics of the bf16 values are computed in float32, not in autocast's bf16 matmul.
    assert torch.allclose(module.running_std, reference.running_std, rtol=1e-5)
    assert torch.allclose(module.running_cov, reference.running_cov, rtol=1e-5, atol=1e-5)


def test_float32_input_under_bf16_autocast_stays_float32():
    module = trained(IsoBN(D))
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = module(batches(1, seed=1)[0])
    assert out.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
def test_cuda_bf16_autocast_matches_cpu():
    inputs = [x.bfloat16() for x in batches(3)]
    reference = IsoBN(D).train()
    for x in inputs:
        reference(x.float())
    module = IsoBN(D).cuda().train()
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        for x in inputs:
            out = module(x.cuda())
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert module.running_cov.dtype == torch.float32 and module.running_cov.is_cuda
    assert torch.allclose(module.running_std.cpu(), reference.running_std, rtol=1e-4)
    assert torch.allclose(module.running_cov.cpu(), reference.running_cov, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_size": 0}, "hidden_size must be >= 1, got 0"),
        ({"alpha": 1.0}, "alpha must be in (0, 1), got 1.0"),
        ({"alpha": 0.0}, "alpha must be in (0, 1), got 0.0"),
        ({"eps": 0.0}, "eps must be > 0, got 0.0"),
        ({"beta": -0.1}, "beta must be >= 0, got -0.1"),
        ({"eps_mode": "scaled"}, "eps_mode must be one of ('absolute', 'relative'), got 'scaled'"),
    ],
)
def test_constructor_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        IsoBN(**{"hidden_size": D, **kwargs})


def test_extra_repr_names_hyperparameters():
    assert repr(IsoBN(D, alpha=0.9, eps=0.2, beta=1.0)) == (
        "IsoBN(8, alpha=0.9, eps=0.2, beta=1.0, eps_mode=absolute)"
    )


def test_wrong_input_shape_is_rejected():
    with pytest.raises(ValueError, match=r"shape \(n, 8\)"):
        IsoBN(D)(torch.zeros(4, D + 1))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("isobn", IsoBN),
        ("batchnorm", nn.BatchNorm1d),
        ("layernorm", nn.LayerNorm),
        ("none", nn.Identity),
    ],
)
def test_build_cls_norm_gives_shape_preserving_module(name, expected):
    module = build_cls_norm(name, D, alpha=0.9, eps=0.2, beta=1.0)
    assert type(module) is expected
    x = batches(1)[0]
    assert module(x).shape == x.shape


@pytest.mark.parametrize("name", CLS_NORMS)
def test_every_registered_normaliser_is_a_grid_choice_with_its_hyperparameters(name):
    from isobn_tune.space.schema import GridSection
    from isobn_tune.train.recipe import TrialConfig

    assert name in typing.get_args(TrialConfig.model_fields["cls_norm"].annotation)
    for param in params_of(name):
        assert param in GridSection.model_fields and param in TrialConfig.model_fields
    # Built from one trial config: its own hyperparameters are used, the others' ignored.
    config = TrialConfig(task="rte", model="m", cls_norm=name)
    module = build_cls_norm(name, D, **{p: getattr(config, p) for p in PARAM_FIELDS})
    x = batches(1)[0]
    assert module(x).shape == x.shape


def test_a_normalisers_own_hyperparameters_are_validated_by_its_registry_entry():
    with pytest.raises(ValueError, match="beta"):
        build_cls_norm("isobn", D, beta=-1.0)
    assert type(build_cls_norm("none", D, beta=-1.0)) is nn.Identity  # not its hyperparameter
    with pytest.raises(TypeError, match="unknown hyperparameter"):
        build_cls_norm("isobn", D, gamma=1.0)


def test_build_cls_norm_passes_isobn_hyperparameters():
    module = build_cls_norm("isobn", D, alpha=0.9, eps=0.2, beta=1.0)
    assert (module.alpha, module.eps, module.beta) == (0.9, 0.2, 1.0)


def test_build_cls_norm_baselines_have_no_affine_part():
    assert list(build_cls_norm("batchnorm", D).parameters()) == []
    assert list(build_cls_norm("layernorm", D).parameters()) == []


def test_build_cls_norm_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown cls_norm 'whitening'; allowed: .*'isobn'"):
        build_cls_norm("whitening", D)


@pytest.mark.parametrize("name", ["batchnorm", "layernorm"])
def test_baselines_are_finite_under_bf16_autocast(name):
    module = build_cls_norm(name, D).train()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = module(batches(1)[0].bfloat16())
    assert torch.isfinite(out).all()
    assert all(buf.dtype != torch.bfloat16 for buf in module.buffers())
