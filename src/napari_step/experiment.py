"""Which AnDi-2 phenomenological model a field of view follows, from all its tracks together.

The per-track state model (:mod:`napari_step.states`) cannot tell a confined segment of the
AnDi-2 confinement model from the slow state of its two-state and dimer models. andi-datasets
draws their D and alpha alike, and the compartment wall is rarely reached at those D. What
separates the models is in the field of view (FOV) as a whole. A small multinomial logistic
regression reads a few FOV-level features (:data:`FEATURES`):

- the share of frames in slow segments (K below ``SLOW`` x the FOV's 75th-percentile K);
- change points per track;
- the state model's mean probabilities over the slow frames.

Its output gives the probability of each of the five models. It is trained on the project's own
AnDi-2 simulators only: FOVs of ``andi2_like`` fields cut to 128 px and to pieces of 20 frames or
more, as the challenge does (``benchmarks/andi2_states.py --train``). The weights are
``weights/experiment_andi2.json``, plain numbers with a card.

:func:`states_from_model` turns that into AnDi-2 segment states:
- with traps, a slow segment is immobile;
- in the confinement model, a slow segment is confined;
- in the other models every segment is free, or directed when its alpha >= 1.9.

These are the challenge's labelling rules, so use it for AnDi-2-like data (``--andi2``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = [
    "FEATURES",
    "MODELS",
    "SLOW",
    "DEFAULT_WEIGHTS",
    "fov_features",
    "slow_segments",
    "fit_experiment_model",
    "load_experiment_model",
    "model_probabilities",
    "slow_state",
    "states_from_model",
]

MODELS = ("single_state", "multi_state", "immobile_traps", "dimerization", "confinement")
FEATURES = (
    "slow_frac",
    "cp_per_track",
    "p_imm_slow",
    "p_conf_slow",
    "p_free_slow",
    "p_dir_slow",
    "has_slow",
)
SLOW = 0.25  # a segment is slow below this fraction of the FOV's 75th-percentile segment K
DIRECTED_ALPHA = 1.9  # AnDi-2 labels motion with alpha >= 1.9 directed
DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "experiment_andi2.json"


def slow_segments(k_per_track: list) -> list[np.ndarray]:
    """Per track, which segments are slow: K below ``SLOW`` x the FOV's 75th-percentile K.

    Parameters
    ----------
    k_per_track : list of array_like
        Per track, the K (any unit, the same for the whole FOV) of each segment.
    """
    ks = np.concatenate([np.asarray(k, dtype=float) for k in k_per_track])
    ks = ks[np.isfinite(ks)]
    if not len(ks):
        return [np.zeros(len(k), dtype=bool) for k in k_per_track]
    ref = np.percentile(ks, 75)
    return [np.asarray(k, dtype=float) < SLOW * ref for k in k_per_track]


def fov_features(bounds: list, k_per_track: list, probs: list) -> np.ndarray:
    """The FOV-level features (:data:`FEATURES`) of one field of view.

    Parameters
    ----------
    bounds : list of list of (start, stop)
        Per track, its segments' frame ranges (from the track's first frame).
    k_per_track : list of array_like
        Per track, each segment's K.
    probs : list of ndarray, shape (T_i, 4)
        Per track, the state model's per-frame probabilities (:func:`predict_state`), or one-hot
        rows of the per-frame states.

    Returns
    -------
    ndarray, shape (len(FEATURES),)
    """
    if not bounds:
        raise ValueError("a field of view needs at least one track")
    slow = slow_segments(k_per_track)
    n_all = sum(b - a for segs in bounds for a, b in segs)
    parts = [
        np.asarray(p, dtype=float)[a:b]
        for segs, flags, p in zip(bounds, slow, probs)
        for (a, b), s in zip(segs, flags)
        if s
    ]
    slow_p = np.concatenate(parts) if parts else np.zeros((0, 4))
    slow_p = slow_p[np.isfinite(slow_p).all(axis=1)]
    mean_p = slow_p.mean(axis=0) if len(slow_p) else np.zeros(4)
    return np.array(
        [
            sum(len(p) for p in parts) / max(n_all, 1),
            sum(len(segs) - 1 for segs in bounds) / len(bounds),
            *mean_p,
            float(len(slow_p) > 0),
        ]
    )


def fit_experiment_model(x: np.ndarray, y: np.ndarray, l2: float = 1e-2) -> dict:
    """Multinomial logistic regression of model index ``y`` (into :data:`MODELS`) on features.

    Parameters
    ----------
    x : ndarray, shape (n_fovs, len(FEATURES))
    y : ndarray of int, shape (n_fovs,)
    l2 : float
        Ridge penalty on the standardised weights.

    Returns
    -------
    dict
        ``mean``, ``scale``, ``weight`` (features x models), ``bias`` and ``train_accuracy``.
    """
    import torch

    x = np.asarray(x, dtype=float)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    xx = torch.tensor((x - mean) / scale, dtype=torch.float64)
    yy = torch.as_tensor(np.asarray(y), dtype=torch.long)
    w = torch.zeros(x.shape[1], len(MODELS), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(MODELS), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xx @ w + b, yy) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        acc = float(((xx @ w + b).argmax(1) == yy).double().mean())
    return {
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "weight": w.detach().numpy().tolist(),
        "bias": b.detach().numpy().tolist(),
        "train_accuracy": acc,
    }


def load_experiment_model(path: str | Path | None = None) -> dict:
    """The experiment classifier (a JSON dict: ``features``, ``models``, coefficients, ``card``)."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"no experiment model at {path}")
    blob = json.loads(path.read_text())
    if tuple(blob.get("features", ())) != FEATURES or tuple(blob.get("models", ())) != MODELS:
        raise ValueError(f"{path} is not an experiment model for these features and models")
    return blob


def model_probabilities(features: np.ndarray, model: dict | None = None) -> np.ndarray:
    """Probability of each of :data:`MODELS` for FOV features (n, len(FEATURES)) or one row."""
    m = load_experiment_model() if model is None else model
    x = np.atleast_2d(np.asarray(features, dtype=float))
    z = ((x - np.asarray(m["mean"])) / np.asarray(m["scale"])) @ np.asarray(m["weight"])
    z = z + np.asarray(m["bias"])
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p = p / p.sum(axis=1, keepdims=True)
    return p[0] if np.ndim(features) == 1 else p


def slow_state(probabilities: np.ndarray) -> int:
    """AnDi-2 state of a slow segment given the FOV's model probabilities (:data:`MODELS`):
    the most probable of 0 immobile (traps), 1 confined (confinement) and 2 free (the other
    three models together)."""
    p = np.asarray(probabilities, dtype=float)
    return int(np.argmax([p[2], p[4], p[0] + p[1] + p[3]]))


def states_from_model(slow: list, alpha: list, probabilities: np.ndarray) -> list[np.ndarray]:
    """AnDi-2 state of every segment given the FOV's model probabilities.

    A slow segment takes the most probable of immobile (the traps model), confined (the
    confinement model) and free (the other three); a segment that is not slow is free. A free
    segment with alpha >= 1.9 is directed, as the challenge labels it.

    Parameters
    ----------
    slow : list of array_like of bool
        Per track, which segments are slow (:func:`slow_segments`).
    alpha : list of array_like
        Per track, each segment's alpha.
    probabilities : ndarray, shape (5,)
        :func:`model_probabilities` of the FOV.
    """
    state = slow_state(probabilities)
    out = []
    for flags, al in zip(slow, alpha):
        flags = np.asarray(flags, dtype=bool)
        st = np.where(flags, state, 2)
        st = np.where((st == 2) & (np.asarray(al, dtype=float) >= DIRECTED_ALPHA), 3, st)
        out.append(st.astype(int))
    return out
