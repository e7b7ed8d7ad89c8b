import numpy as np

from isobn_tune.train.isotropy import isotropy_stats, load_stats, plot_isotropy, save_stats


def correlated_sample(n: int = 500, d: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * rng.uniform(0.1, 5, size=d) + 3.0


def test_stats_match_numpy_corrcoef_and_population_std():
    x = correlated_sample()
    stats = isotropy_stats(x)
    np.testing.assert_allclose(stats.corr, np.corrcoef(x, rowvar=False), atol=1e-12)
    np.testing.assert_allclose(stats.per_dim_std, x.std(axis=0), rtol=1e-12)


def test_summary_values_follow_their_definitions():
    x = correlated_sample()
    stats = isotropy_stats(x)
    corr = np.corrcoef(x, rowvar=False)
    d = corr.shape[0]
    expected_corr = np.abs(corr[~np.eye(d, dtype=bool)]).mean()
    std = x.std(axis=0)
    assert stats.summary() == {
        "iso_mean_abs_corr": stats.mean_abs_corr,
        "iso_std_cv": stats.std_cv,
    }
    np.testing.assert_allclose(stats.mean_abs_corr, expected_corr, rtol=1e-10)
    np.testing.assert_allclose(stats.std_cv, std.std() / std.mean(), rtol=1e-10)


def test_identity_covariance_sample_is_nearly_isotropic():
    x = np.random.default_rng(1).normal(size=(20_000, 8))
    stats = isotropy_stats(x)
    assert stats.mean_abs_corr < 0.02
    assert stats.std_cv < 0.02


def test_constant_dimensions_give_zero_correlation_not_nan():
    x = correlated_sample(d=4)
    x[:, 2] = 7.0
    stats = isotropy_stats(x)
    assert np.isfinite(stats.corr).all()
    assert (stats.corr[2] == 0).all() and (stats.corr[:, 2] == 0).all()
    assert stats.per_dim_std[2] == 0
    assert np.isfinite(stats.mean_abs_corr) and np.isfinite(stats.std_cv)


def test_all_constant_embeddings_give_zero_summaries():
    stats = isotropy_stats(np.ones((10, 3)))
    assert stats.summary() == {"iso_mean_abs_corr": 0.0, "iso_std_cv": 0.0}


def test_save_and_load_round_trip(tmp_path):
    before, after = isotropy_stats(correlated_sample(seed=2)), isotropy_stats(correlated_sample(seed=3))
    save_stats(tmp_path / "iso.npz", before, after)
    loaded_before, loaded_after = load_stats(tmp_path / "iso.npz")
    np.testing.assert_array_equal(loaded_before.corr, before.corr)
    np.testing.assert_array_equal(loaded_after.per_dim_std, after.per_dim_std)


def test_plot_writes_a_png(tmp_path):
    before, after = isotropy_stats(correlated_sample(seed=4)), isotropy_stats(correlated_sample(seed=5))
    path = plot_isotropy(before, after, tmp_path / "iso.png", title="rte isobn")
    assert path == tmp_path / "iso.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1000
