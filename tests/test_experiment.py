"""The experiment-level AnDi-2 model classifier (napari_step.experiment), shipped weights."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_step.experiment import (
    DEFAULT_WEIGHTS,
    FEATURES,
    MODELS,
    fov_features,
    load_experiment_model,
    model_probabilities,
    slow_segments,
    slow_state,
    states_from_model,
)


def test_features_of_a_hand_made_fov():
    # two tracks: one fast segment; one fast then slow (K 100x lower), 50 + 50 frames
    bounds = [[(0, 100)], [(0, 50), (50, 100)]]
    ks = [[1.0], [1.0, 0.01]]
    probs = [
        np.tile([0, 0, 1, 0], (100, 1)),
        np.r_[np.tile([0, 0, 1, 0], (50, 1)), np.tile([0.2, 0.6, 0.2, 0], (50, 1))],
    ]
    f = dict(zip(FEATURES, fov_features(bounds, ks, probs)))
    assert f["slow_frac"] == pytest.approx(50 / 200)
    assert f["cp_per_track"] == pytest.approx(0.5)
    assert f["p_conf_slow"] == pytest.approx(0.6) and f["p_imm_slow"] == pytest.approx(0.2)
    assert f["has_slow"] == 1.0
    assert [s.tolist() for s in slow_segments(ks)] == [[False], [False, True]]


def test_states_follow_the_model():
    slow = [np.array([False, True]), np.array([False])]
    alpha = [[1.0, 0.5], [1.95]]
    traps = np.array([0, 0, 1, 0, 0.0])
    conf = np.array([0, 0, 0, 0, 1.0])
    two_state = np.array([0, 1, 0, 0, 0.0])
    assert [s.tolist() for s in states_from_model(slow, alpha, traps)] == [[2, 0], [3]]
    assert [s.tolist() for s in states_from_model(slow, alpha, conf)] == [[2, 1], [3]]
    assert [s.tolist() for s in states_from_model(slow, alpha, two_state)] == [[2, 2], [3]]


def test_shipped_weights_load_and_give_probabilities():
    blob = load_experiment_model()
    assert blob["card"]["n_fovs"] >= 100 and "andi2_like" in blob["card"]["training_data"]
    p = model_probabilities(np.zeros((3, len(FEATURES))))
    assert p.shape == (3, len(MODELS)) and np.allclose(p.sum(axis=1), 1)


def test_a_file_for_other_features_is_refused(tmp_path):
    blob = json.loads(DEFAULT_WEIGHTS.read_text())
    blob["features"] = blob["features"][:-1]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(blob))
    with pytest.raises(ValueError, match="not an experiment model"):
        load_experiment_model(bad)
    with pytest.raises(FileNotFoundError):
        load_experiment_model(tmp_path / "missing.json")


def test_simulated_fovs_get_their_models_slow_state():
    """Own-simulator FOVs (seed unseen in training) through the real pipeline (STEP, segments,
    state model): the slow segments take the state the FOV's model implies."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from andi2_states import pipeline_features, simulated_fovs

    from napari_step.states import DEFAULT_WEIGHTS as STATE_WEIGHTS

    want = {"immobile_traps": 0, "confinement": 1, "multi_state": 2}
    right = {m: 0 for m in want}
    for model, tracks in simulated_fovs(1, seed=4321):
        if model not in want:
            continue
        p = model_probabilities(pipeline_features(tracks, STATE_WEIGHTS))
        right[model] += slow_state(p) == want[model]
    assert all(n >= 2 for n in right.values()), right
