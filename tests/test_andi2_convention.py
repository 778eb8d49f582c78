"""The per-frame convention lines up with andi-datasets' labels (issue 13).

Convention: the value at frame t describes the motion from t to t+1 (the last frame repeats the
one before it) and a change point c is the first frame of the new segment. The fixture
``tests/data/andi2/two_state.npz`` holds two-state tracks made by andi-datasets
(``models_phenom.multi_state``, D ratio 50, one switch each) with its per-frame labels and change
points (see the README there). Checked here:

(a) andi-datasets' labels follow this convention (the fixture itself), and the project's
    simulators label the same construction the same way: same change-point rule, and the steps
    either side of a change point have the variance of the labels at the frames they start from;
(b) STEP's per-frame D (``predict_d``) and the change points of ``napari_step.segment`` put the
    switch of the andi-datasets tracks at the labelled frame: per track within one frame, and
    centred (median offset exactly 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_step.simulate.brownian import brownian_changepoints, brownian_from_d

FIXTURE = Path(__file__).parent / "data" / "andi2" / "two_state.npz"


@pytest.fixture(scope="module")
def andi():
    with np.load(FIXTURE) as z:
        return {k: z[k] for k in z.files}


def _first_new_frames(labels: np.ndarray) -> np.ndarray:
    """andi-datasets' rule (label_continuous_to_list): frames whose label differs from the last."""
    return np.flatnonzero(labels[1:] != labels[:-1]) + 1


def _loglik(xy: np.ndarray, d: np.ndarray, k: int) -> float:
    """Log-likelihood of the Brownian steps of ``xy`` (T, dim) when the label d[t] (T,) is the D
    of the step from frame t + k to t + k + 1 (k = 0: forward; k = -1: the step arriving at t)."""
    steps = np.diff(xy, axis=0)
    var = 2.0 * d[np.clip(np.arange(len(steps)) - k, 0, len(d) - 1)][:, None]
    return float(np.sum(-0.5 * steps**2 / var - 0.5 * np.log(2 * np.pi * var)))


def _forward_wins(xy: np.ndarray, d: np.ndarray, cp: int) -> bool:
    """Forward reading beats the one-frame shift that misreads a fast step as a slow one.

    A D drop at cp: reading k = -1 would give the fast step cp-1 -> cp the slow D; a rise: k = +1
    would give the fast step cp -> cp+1 the slow D. Usually decisive (tens of nats)."""
    k_alt = -1 if d[cp] < d[cp - 1] else 1
    return _loglik(xy, d, 0) > _loglik(xy, d, k_alt)


def _pooled_reading(tracks, labels) -> int:
    """The offset k (-2..2) with the largest log-likelihood pooled over tracks."""
    lik = {k: sum(_loglik(x, d, k) for x, d in zip(tracks, labels)) for k in range(-2, 3)}
    return max(lik, key=lik.get)


def test_andi_datasets_labels_are_forward(andi):
    """The fixture: change point = first frame with the new label; label t = step t -> t+1."""
    assert _pooled_reading(andi["xy"].astype(float), andi["d"].astype(float)) == 0
    for xy, d, cp in zip(andi["xy"], andi["d"], andi["changepoints"]):
        assert list(_first_new_frames(d)) == [cp]
        assert _forward_wins(xy.astype(float), d.astype(float), int(cp)), cp
        # the step c-1 -> c is old-state motion, the step c -> c+1 new-state motion
        steps = np.sum(np.diff(xy.astype(float), axis=0) ** 2, axis=1) / 4.0  # ~ D per step
        for t, label in ((cp - 1, d[cp - 1]), (cp, d[cp])):
            assert steps[t] < 30 * label, (t, steps[t], label)


def test_project_simulators_label_like_andi_datasets(andi):
    """Same construction, same labels: D switching by 50x at one change point."""
    sim = brownian_changepoints(
        200, n_frames=200, dim=2, n_changepoints=1, min_segment=40,
        d_range=(1e-3, 10.0), min_log_diff=1.7, rng=1,
    )  # fmt: skip
    for xy, d, cps in zip(sim.positions, sim.d, sim.changepoints):
        assert list(_first_new_frames(d)) == list(cps)
        assert d[-1] == d[-2]
    cps = [int(c[0]) for c in sim.changepoints]
    wins = [_forward_wins(x, d, c) for x, d, c in zip(sim.positions, sim.d, cps)]
    assert np.mean(wins) >= 0.85, np.mean(wins)  # one 2-D step decides: not always decisive
    assert _pooled_reading(sim.positions, sim.d) == 0
    # the andi-datasets labels themselves, integrated by the project: read the same way
    rng = np.random.default_rng(2)
    d = andi["d"].astype(float)
    xy = brownian_from_d(d, dim=2, rng=rng)
    wins = [_forward_wins(p, q, int(cp)) for p, q, cp in zip(xy, d, andi["changepoints"])]
    assert np.mean(wins) >= 0.9, wins
    assert _pooled_reading(xy, d) == 0
    # per-frame step variance either side of the change point, relative to the labels: the same
    # for andi-datasets' tracks and the project's (old D before c, new D from c on)
    for src in (andi["xy"].astype(float), xy):
        msd = np.sum(np.diff(src, axis=1) ** 2, axis=2) / 4.0
        rows = np.arange(len(d))
        cp = andi["changepoints"]
        for shift in (-2, -1, 0, 1):
            ratio = msd[rows, cp + shift] / d[rows, cp + shift]
            assert 0.2 < np.exp(np.mean(np.log(ratio))) < 2.0, (shift, ratio)


def _best_split(log_d: np.ndarray, margin: int = 5) -> int:
    """The frame c splitting a per-frame signal into two constant parts (least squares)."""
    best, arg = np.inf, margin
    for c in range(margin, len(log_d) - margin):
        a, b = log_d[:c], log_d[c:]
        cost = np.sum((a - a.mean()) ** 2) + np.sum((b - b.mean()) ** 2)
        if cost < best:
            best, arg = cost, c
    return arg


@pytest.fixture(scope="module")
def step_preds(andi):
    from napari_step import predict_d

    return predict_d(list(andi["xy_noisy"].astype(float)), device="cpu")


def test_predict_d_switch_at_labelled_change_point(andi, step_preds):
    offsets = [_best_split(np.log10(p)) - cp for p, cp in zip(step_preds, andi["changepoints"])]
    assert np.median(offsets) == 0, offsets
    assert np.mean(np.abs(offsets) <= 1) >= 0.8, offsets
    # per frame: well inside each segment STEP reads the labelled D (ratio 50 apart)
    for p, d, cp in zip(step_preds, andi["d"], andi["changepoints"]):
        for lo, hi in ((5, cp - 5), (cp + 5, len(d) - 5)):
            ratio = np.median(p[lo:hi]) / d[lo]
            assert 0.5 < ratio < 2.0, (lo, hi, ratio)


def test_segment_changepoints_at_labelled_change_point(andi, step_preds):
    from napari_step.segment import segment_track

    offsets = []
    for xy, p, cp in zip(andi["xy_noisy"].astype(float), step_preds, andi["changepoints"]):
        res = segment_track(xy, np.log10(p))
        assert len(res.changepoints) >= 1
        nearest = int(res.changepoints[np.argmin(np.abs(res.changepoints - cp))])
        offsets.append(nearest - int(cp))
        # segments are [start, stop) with the change point as the first frame of the next one
        assert [seg[0] for seg in res.segments[1:]] == list(res.changepoints)
    assert np.median(offsets) == 0, offsets
    assert np.mean(np.abs(offsets) <= 1) >= 0.8, offsets
