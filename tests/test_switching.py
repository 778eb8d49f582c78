"""The recurring-states (HMM) segmentation: states, per-state D, and when ``segment_track``'s
default detector uses it (issue 13: segments on fast-switching tracks)."""

import numpy as np
import pytest

from napari_step.segment import segment_tracks
from napari_step.simulate import brownian_changepoints, multi_state
from napari_step.switching import fit_switching, prefer_switching, state_d


def _two_state(n, seed, sigma=0.0, ratio=10.0, n_frames=200):
    rng = np.random.default_rng(seed)
    d = np.tile([1.0, 1.0 / ratio], (n, 1))
    return multi_state(n, n_frames, d=d, alpha=1.0, transition=0.03, sigma=sigma, rng=rng)


def _err(pred, d):
    return float(np.mean(np.abs(np.asarray(pred)[:, :-1] / np.asarray(d)[:, :-1] - 1)))


def test_two_states_are_found_with_their_d_and_switch_frames():
    sim = _two_state(20, 1, n_frames=400)
    acc, ratios, hits = [], [], []
    for x, d, cps in zip(sim.positions, sim.d, sim.changepoints):
        if len(cps) < 2:
            continue
        fit = fit_switching(x)
        assert fit.n_states == 2
        assert fit.states.shape == (len(x),) and fit.states[-1] == fit.states[-2]
        slow = d[:-1] < 0.5
        acc.append(np.mean((fit.states[:-1] == 0) == slow))
        ds, _ = state_d(x, fit.states, "mle")
        ratios.append(ds[1] / ds[0])
        # a change point c is the first frame of the new state (as the simulator's labels)
        hits += [np.min(np.abs(fit.changepoints - c), initial=99) <= 2 for c in cps]
    assert np.median(acc) > 0.9
    assert np.mean(hits) > 0.7, np.mean(hits)
    assert 7 < np.median(ratios) < 14  # the true ratio is 10


def test_constant_track_is_one_state():
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = np.cumsum(rng.normal(0, 1.0, (300, 2)), axis=0)
        assert fit_switching(x).n_states == 1


def test_state_d_removes_the_localisation_noise_bias():
    sim = _two_state(30, 4, sigma=0.15, ratio=20.0)
    est = {"mle": [], "mle_denoised": []}
    for x, d in zip(sim.positions, sim.d):
        fit = fit_switching(x)
        if fit.n_states != 2:
            continue
        for e in est:
            est[e].append(state_d(x, fit.states, e)[0][0])  # the slow state, true D 0.05
    mle, den = np.median(est["mle"]), np.median(est["mle_denoised"])
    assert mle > 0.05 * 1.3  # sigma^2 = 0.0225 per axis inflates a D of 0.05 by ~45 %
    assert abs(den / 0.05 - 1) < 0.2


def test_distinct_segments_are_not_forced_into_states():
    """Three segments of very different D: one D per segment wins, not two tied states."""
    rng = np.random.default_rng(5)
    d = np.repeat([1.0, 100.0, 0.01, 3.0], 50)
    x = np.vstack([[0, 0], np.cumsum(rng.normal(0, np.sqrt(2 * d[:-1, None]), (199, 2)), 0)])
    fit = fit_switching(x)
    assert not prefer_switching(x, fit, [50, 100, 150])


def test_default_segmentation_is_better_on_switching_and_no_worse_on_change_points():
    sim = _two_state(60, 7, sigma=0.05)
    auto = segment_tracks(sim.positions)
    exact = segment_tracks(sim.positions, detector="exact")
    e_auto = _err([s.segmented_d for s in auto], sim.d)
    e_exact = _err([s.segmented_d for s in exact], sim.d)
    assert e_auto < 0.85 * e_exact, (e_auto, e_exact)
    rng = np.random.default_rng(8)
    cp = brownian_changepoints(60, 200, n_changepoints=(1, 4), rng=rng)
    auto = segment_tracks(cp.positions)
    exact = segment_tracks(cp.positions, detector="exact")
    e_auto = _err([s.segmented_d for s in auto], cp.d)
    e_exact = _err([s.segmented_d for s in exact], cp.d)
    assert e_auto < e_exact * 1.05 + 0.005, (e_auto, e_exact)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="at least 3"):
        fit_switching(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="max_states"):
        fit_switching(np.zeros((50, 2)), max_states=4)
