import numpy as np
import pytest

from napari_step.simulate import (
    add_localisation_noise,
    attm,
    brownian_changepoints,
    brownian_from_d,
    render_movie,
    scaled_brownian,
    smooth_log_d_drift,
)
from napari_step.tamsd import tamsd


def test_brownian_constant_d_recovered_within_statistical_error():
    rng = np.random.default_rng(0)
    sim = brownian_changepoints(400, 200, 2, n_changepoints=0, d_range=(2.0, 2.0 + 1e-9), rng=rng)
    steps = np.diff(sim.positions, axis=1)
    d_hat = (steps**2).sum(-1).mean() / 4
    n = steps.shape[0] * steps.shape[1] * 2
    assert abs(d_hat - 2.0) < 4 * 2.0 * np.sqrt(2 / n)
    # MSD slope of whole tracks recovers D as well
    m = tamsd(sim.positions, [1, 2, 3]).mean(0)
    assert np.allclose(np.diff(m) / 4, 2.0, rtol=0.05)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_changepoints_segments_and_d(dim):
    rng = np.random.default_rng(1)
    sim = brownian_changepoints(40, 120, dim, (1, 4), min_segment=10, rng=rng)
    assert sim.positions.shape == (40, 120, dim) and sim.d.shape == (40, 120)
    assert (sim.d >= 1e-3).all() and (sim.d <= 1e3).all()
    for i, cps in enumerate(sim.changepoints):
        assert 1 <= len(cps) <= 4
        bounds = np.concatenate([[0], cps, [120]])
        assert (np.diff(bounds) >= 10).all()
        # D is constant inside segments and changes at each change point
        for a, b in zip(bounds[:-1], bounds[1:]):
            assert np.all(sim.d[i, a:b] == sim.d[i, a])
        for c in cps:
            assert sim.d[i, c] != sim.d[i, c - 1]
    # each value of the change-point range is used equally
    counts = np.bincount([len(c) for c in sim.changepoints])
    assert list(counts[1:]) == [10, 10, 10, 10]


def test_changepoints_are_seedable_and_log_uniform():
    a = brownian_changepoints(2000, 50, 2, 1, rng=np.random.default_rng(5))
    b = brownian_changepoints(2000, 50, 2, 1, rng=np.random.default_rng(5))
    assert np.array_equal(a.positions, b.positions)
    logd = np.log10(a.d[:, 0])
    hist, _ = np.histogram(logd, bins=6, range=(-3, 3))
    assert hist.min() > 0.75 * hist.mean()


def test_changepoints_that_do_not_fit_raise():
    with pytest.raises(ValueError, match="do not fit"):
        brownian_changepoints(2, 30, 2, 4, min_segment=10)


@pytest.mark.parametrize("alpha", [0.3, 1.0, 1.5])
def test_sbm_recovers_alpha(alpha):
    pos, d = scaled_brownian(2000, 200, alpha, 2, rng=np.random.default_rng(2))
    # ensemble MSD from the origin grows as t^alpha
    t = np.arange(10, 200)
    msd = (pos[:, t] ** 2).sum(-1).mean(0)
    slope = np.polyfit(np.log(t), np.log(msd), 1)[0]
    assert abs(slope - alpha) < 0.05
    # per-frame D follows K ((t+1)^a - t^a) (forward: the step t -> t+1), last frame repeated
    assert np.allclose(d[0, :-1], np.arange(1, 200) ** alpha - np.arange(0, 199) ** alpha)
    assert d[0, -1] == d[0, -2]


def test_attm_d_is_piecewise_constant_with_heavy_tailed_waiting_times():
    pos, d, jumps = attm(500, 300, sigma=0.5, gamma=1.0, rng=np.random.default_rng(3))
    assert pos.shape == (500, 300, 2)
    for i in range(20):
        change = np.flatnonzero(np.diff(d[i]) != 0) + 1
        assert set(change.tolist()) <= set(jumps[i].tolist())
    # waiting time tau = ceil(D^-gamma): slow episodes last longer
    durations, values = [], []
    for i in range(500):
        bounds = np.concatenate([[0], jumps[i], [299]])
        for a, b in zip(bounds[:-2], bounds[1:-1]):  # complete episodes only
            durations.append(b - a)
            values.append(d[i, a])
    durations, values = np.array(durations), np.array(values)
    assert np.array_equal(durations, np.minimum(np.ceil(values**-1.0), 299).astype(int))
    # step variance follows the per-frame D
    steps = np.diff(pos, axis=1)
    assert np.allclose(((steps**2).sum(-1) / 4).mean(), d[:, :-1].mean(), rtol=0.05)
    assert (d[:, -1] == d[:, -2]).all()


def test_localisation_noise_adds_known_variance():
    rng = np.random.default_rng(4)
    x = np.zeros((1000, 100, 2))
    noisy = add_localisation_noise(x, 0.3, rng)
    assert x.sum() == 0  # input untouched
    assert abs(noisy.std() - 0.3) < 0.01
    per_track = add_localisation_noise(x[:2], np.array([0.0, 1.0]), rng)
    assert per_track[0].std() == 0 and abs(per_track[1].std() - 1) < 0.1


def test_render_movie_spots_at_positions():
    pos = np.array([[[20.0, 30.0], [21.0, 31.0]], [[40.5, 10.0], [np.nan, np.nan]]])
    movie = render_movie(
        pos, (64, 64), psf_sigma=1.2, photons=5000, background=50, rng=np.random.default_rng(0)
    )
    assert movie.dtype == np.uint16 and movie.shape == (2, 64, 64)
    assert np.unravel_index(movie[0, :32].argmax(), (32, 64)) == (20, 30)
    assert movie[1, 40:42, 9:12].max() < 120  # the second particle is absent in frame 1
    # total photons above background are conserved (within shot noise)
    excess = movie[0].astype(float).sum() - 50 * 64 * 64
    assert abs(excess - 10000) < 6 * np.sqrt(50 * 64 * 64 + 10000)


def test_smooth_drift_is_bounded_zero_mean_and_varied():
    drift = smooth_log_d_drift(3000, 200, max_decades=2.0, rng=7)
    assert drift.shape == (3000, 200) and np.isfinite(drift).all()
    np.testing.assert_allclose(drift.mean(1), 0, atol=1e-9)
    span = np.ptp(drift, axis=1)
    assert span.max() <= 2.0 + 1e-9 and np.median(span) > 0.3
    # smooth: frame-to-frame changes are small next to the total change (no jumps)
    assert np.abs(np.diff(drift, axis=1)).max(1).mean() < 0.1 * span.mean()
    # both directions, and both ends of the track carry the fastest change in some tracks
    slope = drift[:, -1] - drift[:, 0]
    assert (slope > 0.3).mean() > 0.25 and (slope < -0.3).mean() > 0.25
    fastest = np.abs(np.diff(drift, axis=1)).argmax(1)
    assert (fastest < 20).mean() > 0.1 and (fastest > 179).mean() > 0.1
    with pytest.raises(ValueError):
        smooth_log_d_drift(2, 200, max_decades=-1)


def test_brownian_from_d_has_the_given_per_frame_variance():
    rng = np.random.default_rng(3)
    d = np.tile(np.geomspace(0.01, 10, 50), (20000, 1))
    pos = brownian_from_d(d, dim=2, rng=rng)
    assert pos.shape == (20000, 50, 2) and (pos[:, 0] == 0).all()
    var = (np.diff(pos, axis=1) ** 2).mean(axis=(0, 2)) / 2  # per axis, / 2 = D
    np.testing.assert_allclose(var, d[0, :-1], rtol=0.05)  # forward: d[t] is the step t -> t+1
