import numpy as np
import pytest

from napari_step.simulate import (
    ALPHA_RANGES,
    MODELS,
    anomalous_changepoints,
    ctrw,
    fbm,
    levy_walk,
    simulate_model,
)


def ensemble_exponent(pos, t_lo=10, t_hi=100):
    """Slope of log ensemble MSD (from the origin) against log t over frames [t_lo, t_hi)."""
    t = np.arange(t_lo, t_hi)
    msd = (pos[:, t] ** 2).sum(-1).mean(0)
    return np.polyfit(np.log(t), np.log(msd), 1)[0]


@pytest.mark.parametrize("alpha", [0.5, 1.5])
def test_fbm_msd_exponent_and_exact_covariance(alpha):
    pos = fbm(2000, 200, alpha, 2, rng=np.random.default_rng(0))
    assert pos.shape == (2000, 200, 2) and np.all(pos[:, 0] == 0)
    assert abs(ensemble_exponent(pos) - alpha) < 0.1
    # per-axis MSD is t^alpha at every lag (unit scale), both axes alike
    t = np.array([1, 10, 100])
    msd = (pos[:, t] ** 2).mean(0)  # (3, 2)
    assert np.allclose(msd, (t**alpha)[:, None], rtol=0.1)
    # increments: unit variance, lag-1 correlation of fractional Gaussian noise
    inc = np.diff(pos, axis=1)
    assert abs(inc.var() - 1) < 0.03
    rho = (inc[:, 1:] * inc[:, :-1]).mean() / inc.var()
    assert abs(rho - (2 ** (alpha - 1) - 1)) < 0.02


def test_fbm_per_track_alpha_and_other_dims():
    alphas = np.array([0.3, 1.0, 1.8])
    pos = fbm(3, 64, alphas, 3, rng=np.random.default_rng(1))
    assert pos.shape == (3, 64, 3)
    p1 = fbm(500, 100, np.repeat([0.3, 1.8], 250), 1, rng=np.random.default_rng(2))
    assert p1.shape == (500, 100, 1)
    assert ensemble_exponent(p1[:250]) < 0.5 < 1.5 < ensemble_exponent(p1[250:])


def test_ctrw_is_subdiffusive_with_trapped_frames():
    pos = ctrw(3000, 200, 0.5, 2, rng=np.random.default_rng(3))
    a = ensemble_exponent(pos)
    assert 0.3 < a < 0.8  # t^0.5 with finite-time corrections
    steps = np.diff(pos, axis=1)
    moved = (steps != 0).any(-1)
    assert moved.mean() < 0.3  # waiting times make most frames still
    # the jumps themselves are unit Gaussian per axis
    jumps = steps[moved]
    assert abs(jumps.std() - 1) < 0.1
    # smaller alpha waits longer
    slow = ctrw(3000, 200, 0.2, 2, rng=np.random.default_rng(3))
    assert (np.diff(slow, axis=1) != 0).any(-1).mean() < moved.mean()


def test_levy_walk_is_superdiffusive_at_constant_speed():
    pos = levy_walk(2000, 200, 1.5, 2, rng=np.random.default_rng(4))
    a = ensemble_exponent(pos)
    assert 1.25 < a < 1.8
    speed = np.linalg.norm(np.diff(pos, axis=1), axis=-1)
    assert speed.max() <= np.sqrt(2) + 1e-9  # a frame's displacement never exceeds the speed
    assert np.median(speed) == pytest.approx(np.sqrt(2))  # most frames are inside one flight
    assert ensemble_exponent(levy_walk(2000, 200, 1.9, 2, rng=np.random.default_rng(5))) > a


@pytest.mark.parametrize("model,alpha", [("sbm", 0.5), ("sbm", 1.5), ("attm", 0.5)])
def test_sbm_and_attm_through_simulate_model(model, alpha):
    pos = simulate_model(model, 1000, 200, alpha, 2, rng=np.random.default_rng(6))
    assert pos.shape == (1000, 200, 2) and np.isfinite(pos).all()
    a = ensemble_exponent(pos)
    if model == "sbm":  # exact power law; normalised to mean per-axis step variance 1
        assert abs(a - alpha) < 0.05
        assert abs((np.diff(pos, axis=1) ** 2).mean() - 1) < 0.1
    else:  # ATTM is subdiffusive
        assert a < 0.9


def test_invalid_model_and_alpha_raise():
    with pytest.raises(ValueError, match="valid range of fbm"):
        fbm(2, 10, 2.0)
    with pytest.raises(ValueError, match="valid range of lw"):
        levy_walk(2, 10, 0.8)
    with pytest.raises(ValueError, match="valid range of ctrw"):
        ctrw(2, 10, 1.2)
    with pytest.raises(ValueError, match="unknown model"):
        simulate_model("brownian", 2, 10)
    with pytest.raises(ValueError, match="dim"):
        fbm(2, 10, 0.5, dim=4)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_changepoints_shapes_segments_and_alpha_ranges(dim):
    n, t = 60, 150
    sim = anomalous_changepoints(n, t, dim, (1, 4), min_segment=12, rng=np.random.default_rng(7))
    assert sim.positions.shape == (n, t, dim)
    assert sim.alpha.shape == (n, t) and sim.model.shape == (n, t)
    assert np.isfinite(sim.positions).all() and np.all(sim.positions[:, 0] == 0)
    counts = np.bincount([len(c) for c in sim.changepoints], minlength=5)
    assert list(counts[1:]) == [15, 15, 15, 15]  # the change-point range split evenly
    for i, cps in enumerate(sim.changepoints):
        bounds = np.concatenate([[0], cps, [t]])
        assert (np.diff(bounds) >= 12).all()
        for a, b in zip(bounds[:-1], bounds[1:]):  # alpha and model constant per segment
            assert np.all(sim.alpha[i, a:b] == sim.alpha[i, a])
            assert np.all(sim.model[i, a:b] == sim.model[i, a])
        for c in cps:  # every change point starts a new draw
            assert sim.alpha[i, c] != sim.alpha[i, c - 1]
    for code, name in enumerate(MODELS):  # alpha inside each model's range
        sel = sim.model == code
        assert sel.any(), name
        lo, hi = ALPHA_RANGES[name]
        assert lo <= sim.alpha[sel].min() and sim.alpha[sel].max() <= hi
    # tracks are normalised: mean squared per-axis step 1 (unless the track never moves)
    ms = (np.diff(sim.positions, axis=1) ** 2).mean(axis=(1, 2))
    assert np.allclose(ms[ms > 0], 1.0)


def test_changepoints_are_continuous():
    """A segment starts where the previous one ended: the step across a change point is a step of
    the new segment's process, not a jump between unrelated positions."""
    rng = np.random.default_rng(8)
    sim = anomalous_changepoints(
        2000, 100, 2, 3, min_segment=10, models=("fbm",), normalise=False, rng=rng
    )
    steps = (np.diff(sim.positions, axis=1) ** 2).sum(-1)  # steps[:, t] is the motion t -> t+1
    at_cp = np.concatenate([steps[i, c] for i, c in enumerate(sim.changepoints)])
    assert abs(at_cp.mean() / 2 - 1) < 0.1  # unit per-axis variance, like every FBM step
    assert abs(steps.mean() / 2 - 1) < 0.02
    # positions are the cumulative sum of those steps: no frame is skipped or duplicated
    assert np.allclose(np.cumsum(np.diff(sim.positions, axis=1), axis=1), sim.positions[:, 1:])


def test_changepoints_options_and_reproducibility():
    a = anomalous_changepoints(
        50,
        80,
        2,
        (0, 2),
        10,
        models=("ctrw", "lw"),
        min_alpha_diff=0.3,
        rng=np.random.default_rng(9),
    )
    b = anomalous_changepoints(
        50,
        80,
        2,
        (0, 2),
        10,
        models=("ctrw", "lw"),
        min_alpha_diff=0.3,
        rng=np.random.default_rng(9),
    )
    assert np.array_equal(a.positions, b.positions) and np.array_equal(a.alpha, b.alpha)
    assert set(np.unique(a.model)) <= {MODELS.index("ctrw"), MODELS.index("lw")}
    assert {len(c) for c in a.changepoints} == {0, 1, 2}
    for i, cps in enumerate(a.changepoints):
        for c in cps:
            assert abs(a.alpha[i, c] - a.alpha[i, c - 1]) >= 0.3
    # a custom alpha range and a per-segment D range (steps then change size at change points)
    c = anomalous_changepoints(
        200,
        60,
        2,
        1,
        20,
        models="fbm",
        alpha_ranges={"fbm": (1.0, 1.0 + 1e-9)},
        d_range=(0.01, 100),
        normalise=False,
        rng=np.random.default_rng(10),
    )
    assert np.allclose(c.alpha, 1.0)
    steps = (np.diff(c.positions, axis=1) ** 2).sum(-1)
    ratio = np.log10(
        [steps[i, cp[0] :].mean() / steps[i, : cp[0]].mean() for i, cp in enumerate(c.changepoints)]
    )
    assert ratio.std() > 1  # D of consecutive segments differs by decades


def test_changepoints_invalid_arguments():
    with pytest.raises(ValueError, match="unknown model"):
        anomalous_changepoints(2, 50, models=("fbm", "brownian"))
    with pytest.raises(ValueError, match="do not fit"):
        anomalous_changepoints(2, 30, n_changepoints=4, min_segment=10)
    with pytest.raises(ValueError, match="min_alpha_diff"):
        anomalous_changepoints(2, 50, models=("lw",), min_alpha_diff=0.6)
    with pytest.raises(ValueError, match="valid range of ctrw"):
        anomalous_changepoints(2, 50, models=("ctrw",), alpha_ranges={"ctrw": (0.5, 1.5)})
