"""The per-frame diffusive-state model (napari_step.states): features, inference, shipped weights.

Quality checks run the shipped weights on tracks of the project's own simulators of each AnDi-2
class (free, immobile, directed, confined), with localisation noise.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_step.simulate import phenom_spatial as sp
from napari_step.simulate import phenomenological as ph
from napari_step.states import (
    DEFAULT_WEIGHTS,
    N_FEATURES,
    STATE_NAMES,
    load_state_model,
    predict_state,
    state_features,
)


def _rotation(theta: float) -> np.ndarray:
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


def test_features_scale_rotation_translation_invariant():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(5, 120, 2)), axis=1)
    f = state_features(x)
    assert f.shape == (5, N_FEATURES, 120)
    assert f.dtype == np.float32
    y = 37.5 * x @ _rotation(0.7).T + np.array([100.0, -3.0])
    np.testing.assert_allclose(state_features(y), f, atol=2e-3)
    assert np.isfinite(f).all()


def test_features_follow_the_forward_convention():
    """Frame t describes the step t -> t+1: a spot still up to frame c, moving from c on, has a
    still step-size feature at c-1 and a moving one at c."""
    rng = np.random.default_rng(1)
    c = 60
    x = np.zeros((1, 150, 2))
    x[0, c:] = np.cumsum(rng.normal(size=(150 - c, 2)), axis=0)
    x[0, c:] -= x[0, c]  # frame c is still at the origin; the first move is c -> c+1
    f = state_features(x)[0, 0]  # log squared step relative to the median
    assert f[c - 1] == pytest.approx(-8.0)  # clipped: no motion
    assert f[c] > -4.0
    assert f[-1] == f[-2]  # the last frame repeats the one before it


def test_predict_state_shapes_probabilities_and_errors():
    rng = np.random.default_rng(2)
    tracks = [np.cumsum(rng.normal(size=(n, 2)), axis=0) for n in (2, 3, 25, 200)]
    out = predict_state(tracks)
    assert [o.shape for o in out] == [(n, 4) for n in (2, 3, 25, 200)]
    assert np.isnan(out[0]).all()
    for o in out[1:]:
        np.testing.assert_allclose(o.sum(axis=1), 1.0, rtol=1e-5)
        assert (o >= 0).all()
    arr = np.stack([t[:25] for t in tracks[2:]])  # an (N, T, dim) array works too
    np.testing.assert_allclose(predict_state(arr)[0], out[2], rtol=1e-5, atol=1e-6)
    bad = tracks[3].copy()
    bad[5, 0] = np.nan
    with pytest.raises(ValueError, match="track 1"):
        predict_state([tracks[2], bad])
    with pytest.raises(ValueError, match="track 0"):
        predict_state([tracks[2][:, :1]])  # 1-D: the model is 2-D
    three = np.concatenate([tracks[3], np.cumsum(rng.normal(size=(200, 1)), axis=0)], axis=1)
    p3 = predict_state([three])[0]  # 3-D: mean over the planar projections
    assert p3.shape == (200, 4)
    np.testing.assert_allclose(p3.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(FileNotFoundError):
        predict_state(tracks[2:], model="/nonexistent/state.pt")


def test_shipped_weights_and_card():
    assert DEFAULT_WEIGHTS.is_file()
    assert DEFAULT_WEIGHTS.stat().st_size < 1_000_000
    net, card = load_state_model()
    assert card["classes"] == list(STATE_NAMES)
    assert card["frame_convention"] == "forward"
    assert card["training"]["steps"] > 0 and card["world"]["models"]
    assert card["validation"]["T=200"]["accuracy"] > 0.8
    assert sum(p.numel() for p in net.parameters()) < 200_000


def _accuracy(res: ph.PhenomTracks) -> float:
    prob = predict_state(res.positions)
    pred = np.stack(prob).argmax(-1)
    return float(np.mean(pred == res.state))


@pytest.mark.parametrize(
    ("name", "make", "target"),
    [
        ("free", lambda r: ph.single_state(40, 200, 1.0, 1.0, sigma=0.1, rng=r), 0.9),
        ("immobile", lambda r: ph.single_state(40, 200, 0.0, 1.0, sigma=0.1, rng=r), 0.9),
        ("directed", lambda r: ph.single_state(40, 200, 1.0, 1.0, 1.0, sigma=0.1, rng=r), 0.85),
        (
            "confined",
            lambda r: sp.confinement(40, 200, (1.0, 1.0), 1.0, radius=3.0, transmittance=0.0,
                                     start_inside=True, per_field=40, sigma=0.1, rng=r),
            0.8,
        ),
    ],
)  # fmt: skip
def test_state_model_reads_each_class(name, make, target):
    res = make(np.random.default_rng(5))
    assert np.all(res.state == STATE_NAMES.index(name))
    assert _accuracy(res) >= target


def test_state_model_finds_switches_between_classes():
    """Free <-> immobile switching: per-frame accuracy, and the probabilities follow the labels
    at the switches within a couple of frames."""
    res = ph.multi_state(60, 200, (1.0, 0.0), 1.0, transition=0.02, sigma=0.1, rng=6)
    assert set(np.unique(res.state)) == {0, 2}
    assert _accuracy(res) >= 0.9


def test_state_model_on_andi_datasets_immobile_traps():
    """andi-datasets' own immobile-trap tracks (committed fixture, noise 0.12 px): every labelled
    segment of >= 8 frames gets its labelled class (immobile or free) as the most probable one
    over its interior."""
    from pathlib import Path

    from napari_step.io.andi2 import read_andi2_labels, read_andi2_trajectories

    exp = Path(__file__).parent / "data" / "andi2" / "challenge" / "ref" / "track_2" / "exp_2"
    checked = 0
    for fov in (0, 1):
        table = read_andi2_trajectories(exp / f"trajs_fov_{fov}.csv")
        labels = read_andi2_labels(exp / f"traj_labs_fov_{fov}.txt")
        ids = sorted(table.track_id.unique())
        tracks = [
            table[table.track_id == i].sort_values("frame")[["x", "y"]].to_numpy() for i in ids
        ]
        probs = dict(zip(ids, predict_state(tracks)))
        for seg in labels.itertuples(index=False):
            if seg.stop - seg.start >= 8:
                mean = probs[seg.track_id][seg.start + 2 : seg.stop - 2].mean(axis=0)
                assert int(np.argmax(mean)) == seg.state, (fov, seg, np.round(mean, 2))
                checked += 1
    assert checked >= 8


def test_training_writes_a_loadable_model_with_its_card(tmp_path):
    """A few real optimiser steps on the simulated state world; the file loads and predicts."""
    from napari_step.states_train import train_state_model

    out = tmp_path / "states.pt"
    card = train_state_model(out, n_tracks=60, steps=20, batch=8, threads=1, log=lambda m: None)
    assert card["frame_convention"] == "forward"
    assert card["training"]["steps"] == 20 and len(card["training"]["loss_every_250"]) == 1
    assert set(card["validation"]) == {"T=50", "T=200"}
    track = np.cumsum(np.random.default_rng(0).normal(size=(50, 2)), axis=0)
    prob = predict_state([track], model=out)[0]
    assert prob.shape == (50, 4)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-5)
