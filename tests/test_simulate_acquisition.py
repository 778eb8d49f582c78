import numpy as np
import pytest

from napari_step.simulate import (
    add_localisation_noise,
    blend_frames,
    blur_coefficient,
    blur_path,
    brownian_acquired,
    brownian_from_d,
    localisation_sigma,
)


def step_moments(pos, d):
    """Per-axis <dx^2> and <dx_n dx_n+1> in units of D (per-track D), with standard errors."""
    dx = np.diff(pos, axis=1) / np.sqrt(d[:, :1, None])
    sq = (dx**2).mean(axis=(1, 2))
    cov = (dx[:, 1:] * dx[:, :-1]).mean(axis=(1, 2))
    n = len(pos)
    return sq.mean(), sq.std() / np.sqrt(n), cov.mean(), cov.std() / np.sqrt(n)


def expected(f, snr):
    """Berglund's formulas per axis, dt = 1, in units of D, with sigma^2 = snr D."""
    r = f / 6
    return 2 * (1 - 2 * r) + 2 * snr, 2 * r - snr


@pytest.mark.parametrize("f,snr", [(0, 0), (1, 0), (0.5, 0.3), (1, 1), (0, 3), (0.3, 0)])
def test_blurred_noisy_brownian_follows_berglund(f, snr):
    rng = np.random.default_rng(10)
    d = np.repeat(10 ** rng.uniform(-2, 2, size=(3000, 1)), 60, axis=1)  # scale-free check
    sigma = np.sqrt(snr * d[:, 0])
    pos = brownian_acquired(d, 2, exposure=f, sigma=sigma, rng=rng)
    assert pos.shape == (3000, 60, 2)
    sq, sq_se, cov, cov_se = step_moments(pos, d)
    want_sq, want_cov = expected(f, snr)
    assert abs(sq - want_sq) < 4 * sq_se
    assert abs(cov - want_cov) < 4 * cov_se
    # D = (<dx^2> + 2 <dx dx'>) / 2 whatever the blur and noise
    assert abs((sq + 2 * cov) / 2 - 1) < 4 * (sq_se + 2 * cov_se) / 2


def test_exposure_and_sigma_per_track():
    rng = np.random.default_rng(11)
    n = 4000
    f = np.repeat([0.0, 1.0], n // 2)
    sigma = np.repeat([0.0, 1.0], n // 2)
    d = np.ones((n, 80))
    pos = brownian_acquired(d, 1, exposure=f, sigma=sigma, rng=rng)
    for half, (ff, s) in enumerate([(0.0, 0.0), (1.0, 1.0)]):
        sl = slice(half * n // 2, (half + 1) * n // 2)
        sq, sq_se, cov, cov_se = step_moments(pos[sl], d[sl])
        want_sq, want_cov = expected(ff, s**2)
        assert abs(sq - want_sq) < 4 * sq_se and abs(cov - want_cov) < 4 * cov_se
    with pytest.raises(ValueError, match="exposure"):
        brownian_acquired(d[:3], 2, exposure=1.5)
    with pytest.raises(ValueError, match="one value per track"):
        brownian_acquired(d[:3], 2, exposure=[0.1, 0.2])
    assert blur_coefficient(1.0) == pytest.approx(1 / 6)


@pytest.mark.parametrize("f", [0.0, 0.5, 1.0])
def test_blur_path_of_a_fine_brownian_path(f):
    rng = np.random.default_rng(12)
    n_sub, n_frames = 20, 40
    d_fine = np.full((3000, n_frames * n_sub + 1), 1.0 / n_sub)
    fine = brownian_from_d(d_fine, 2, rng)
    pos = blur_path(fine, n_sub, f)
    assert pos.shape == (3000, n_frames, 2)
    if f == 0:
        assert np.array_equal(pos, fine[:, ::n_sub][:, :n_frames])
    sq, sq_se, cov, cov_se = step_moments(pos, np.ones((3000, 1)))
    want_sq, want_cov = expected(f, 0)
    assert abs(sq - want_sq) < 4 * sq_se + 0.01  # + trapezoid discretisation O(1 / n_sub^2)
    assert abs(cov - want_cov) < 4 * cov_se + 0.01


def test_blur_path_is_the_exposure_average_of_a_known_path():
    t = np.linspace(0, 3, 3 * 4 + 1)  # n_sub = 4
    fine = np.stack([t, t**2], axis=-1)[None]
    pos = blur_path(fine, 4, [0.5])
    # frame k averages [k, k + 0.5]: x -> k + 0.25; y (trapezoid of t^2 on 3 points)
    np.testing.assert_allclose(pos[0, :, 0], [0.25, 1.25, 2.25])
    k = np.arange(3)
    trap = (0.5 * k**2 + (k + 0.25) ** 2 + 0.5 * (k + 0.5) ** 2) / 2
    np.testing.assert_allclose(pos[0, :, 1], trap)
    with pytest.raises(ValueError, match="n_sub"):
        blur_path(fine[:, :-1], 4, 0.5)


def test_forward_convention_of_the_blurred_path():
    """D[t] is the motion t -> t+1 and frame t is exposed during [t, t + f]."""
    c = 30
    d = np.zeros((50, 60))
    d[:, c:] = 1.0  # the particle starts moving at change point c
    snap = brownian_acquired(d, 2, exposure=0.0, rng=1)
    assert (snap[:, : c + 1] == 0).all() and (snap[:, c + 1] != 0).all()
    blurred = brownian_acquired(d, 2, exposure=1.0, rng=1)
    assert (blurred[:, :c] == 0).all() and (blurred[:, c] != 0).all()
    # directed motion: velocity v per frame moves the track by v, blurred by v f / 2
    v = np.zeros((2, 60, 2))
    v[:, :, 0] = 0.5
    moved = brownian_acquired(np.zeros((2, 60)), 2, exposure=1.0, velocity=v, rng=1)
    np.testing.assert_allclose(moved[0, :, 0], 0.5 * np.arange(60) + 0.25)


def test_localisation_sigma_absolute_relative_and_drifting():
    rng = np.random.default_rng(13)
    d = np.ones((4, 100)) * np.array([[0.01], [1.0], [100.0], [1.0]])
    d[3, 50:] = 9.0  # median of a two-segment track
    s = localisation_sigma(d, sigma=[0.1, 0.2, 0.3, 0.4])
    assert s.shape == (4, 100) and np.allclose(s[:, 0], [0.1, 0.2, 0.3, 0.4])
    rel = localisation_sigma(d, snr=2.0)
    np.testing.assert_allclose(rel[:, 0] ** 2, 2.0 * np.median(d, axis=1))
    drift = localisation_sigma(np.ones((500, 200)), snr=1.0, drift_decades=1.0, rng=rng)
    span = np.ptp(np.log10(drift**2), axis=1)
    assert span.max() <= 1.0 + 1e-9 and np.median(span) > 0.2
    jumps = np.abs(np.diff(np.log10(drift**2), axis=1)).max(1)
    assert jumps.mean() < 0.1 * span.mean()  # smooth: no jumps
    with pytest.raises(ValueError, match="exactly one"):
        localisation_sigma(d, sigma=0.1, snr=1.0)
    with pytest.raises(ValueError, match="snr"):
        localisation_sigma(d, snr=-1.0)
    # per-frame sigma reaches add_localisation_noise frame by frame
    noisy = add_localisation_noise(np.zeros((2000, 2, 2)), np.array([[0.1, 2.0]] * 2000), rng)
    assert noisy[:, 0].std() == pytest.approx(0.1, rel=0.05)
    assert noisy[:, 1].std() == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize("weights", [(0.3, 0.0), (0.4, 0.25)])
def test_frame_blending_correlates_steps_as_a_moving_average(weights):
    """Blended frames x'[t] = sum_j a_j x[t-j] (a_0 = 1 / (1 + sum w)): per axis the steps'
    autocovariance is 2 D sum_j a_j a_{j+k}, and the sum over all lags stays 2 D (what a
    long-lag covariance estimator reads), whatever the weights."""
    rng = np.random.default_rng(12)
    d = np.ones((4000, 80))
    w = np.tile(weights, (4000, 1))
    pos = blend_frames(brownian_from_d(d, 2, rng), w)
    a = np.r_[1.0, weights] / (1 + sum(weights))
    dx = np.diff(pos, axis=1)[:, 4:]  # past the first frames' edge
    gam = [(dx[:, k:] * dx[:, : dx.shape[1] - k]).mean(axis=(1, 2)) for k in range(4)]
    for k, g in enumerate(gam):
        want = 2 * sum(a[j] * a[j + k] for j in range(len(a) - k))
        assert abs(g.mean() - want) < 4 * g.std() / np.sqrt(len(g)) + 1e-3
    total = gam[0] + 2 * sum(gam[1:])
    assert abs(total.mean() - 2.0) < 4 * total.std() / np.sqrt(len(total))
    with pytest.raises(ValueError, match="non-negative"):
        blend_frames(pos, -w)
