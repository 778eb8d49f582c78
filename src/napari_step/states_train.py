"""Training of the per-frame diffusive-state model (:mod:`napari_step.states`).

The training world is the project's own simulators of the AnDi-2 phenomenological models
(:mod:`napari_step.simulate.phenomenological`, :mod:`napari_step.simulate.phenom_spatial`) with
localisation noise and motion blur; see ``WORLD`` and ``WORLD_MIX``. Training a model takes a
few minutes on two CPU cores::

    python -c "from napari_step.states_train import train_state_model as t; t('state_2d.pt')"
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .states import N_FEATURES, STATE_NAMES, StateNet, predict_state, state_features

__all__ = ["WORLD", "WORLD_MIX", "simulate_state_world", "train_state_model"]

# --------------------------------------------------------------------------------------------

WORLD = {
    "models": "the AnDi-2 challenge's five models with its parameter draws (andi2_like: single "
    "state, two-state, immobile traps, dimerisation, confinement), plus single state (free with "
    "alpha 0.2-1.85, sub-diffusive free fBm with alpha 0.15-0.8 (labelled free, as AnDi-2 "
    "does), directed by alpha >= 1.9 or drift 0.5-2 px/frame), Markov 2-state "
    "(free/immobile, free/directed), traps and compartments over wider ranges",
    "d_fast": 1.0,
    "d_ratio_slow": [0.01, 0.3],
    "confinement": "compartment radius 2-8 px (D_fast = 1), inside D 0.3-1, transmittance 0-0.1",
    "sigma_over_sqrt_d_fast": [0.0, 0.4],
    "exposure": "0 for half the tracks, else uniform in [0, 1]",
    "switch_probability": [0.005, 0.05],
    "crop_lengths": [20, 200],
}


def _acq(n: int, rng) -> dict:
    """Per-track acquisition: localisation noise (px, D_fast = 1) and exposure fraction."""
    lo, hi = WORLD["sigma_over_sqrt_d_fast"]
    exposure = np.where(rng.uniform(size=n) < 0.5, 0.0, rng.uniform(size=n))
    return {"sigma": rng.uniform(lo, hi, size=n), "exposure": exposure}


def _two_state(n: int, t: int, rng, kind: str):
    from .simulate import phenomenological as ph

    slow = 10 ** rng.uniform(*np.log10(WORLD["d_ratio_slow"]), size=n)
    a1 = rng.uniform(0.7, 1.3, size=n)
    d = np.stack([np.ones(n), slow], 1)
    alpha = np.stack([a1, np.clip(a1 - rng.uniform(0, 0.6, size=n), 0.1, 1.9)], 1)
    speed = np.zeros((n, 2))
    if kind == "immobile":
        d[:, 1] = 0.0
    elif kind == "directed":
        d[:, 1] = rng.uniform(0.1, 1.0, size=n)
        speed[:, 1] = rng.uniform(0.5, 2.0, size=n)
    p = 10 ** rng.uniform(*np.log10(WORLD["switch_probability"]), size=n)
    m = np.stack([np.stack([1 - p, p], 1), np.stack([p, 1 - p], 1)], 1)
    return ph.multi_state(n, t, d, alpha, speed, m, rng=rng, **_acq(n, rng))


def _world_part(kind: str, n: int, t: int, rng):
    """One family of training tracks (PhenomTracks)."""
    from .simulate import phenom_spatial as sp
    from .simulate import phenomenological as ph

    if kind == "free":
        return ph.single_state(n, t, 1.0, rng.uniform(0.2, 1.85, size=n), rng=rng, **_acq(n, rng))
    if kind == "free_sub":  # subdiffusive free fBm (AnDi-2 labels it free): no plateau
        return ph.single_state(n, t, 1.0, rng.uniform(0.15, 0.8, size=n), rng=rng, **_acq(n, rng))
    if kind == "directed":
        ballistic = rng.uniform(size=n) < 0.3
        alpha = np.where(ballistic, rng.uniform(1.9, 1.99, size=n), rng.uniform(0.5, 1.5, size=n))
        speed = np.where(ballistic, 0.0, rng.uniform(0.5, 2.0, size=n))
        return ph.single_state(n, t, 1.0, alpha, speed, rng=rng, **_acq(n, rng))
    if kind.startswith("two_state"):
        return _two_state(n, t, rng, kind.split(":")[1])
    if kind.startswith("andi2:"):
        from .simulate.andi2_world import andi2_like

        return andi2_like(kind.split(":")[1], n, t, rng=rng, **_acq(n, rng))
    slow = (1.0, float(10 ** rng.uniform(-2, -1)))
    a1 = float(rng.uniform(0.7, 1.3))
    alphas = (a1, float(max(a1 - rng.uniform(0.0, 0.6), 0.1)))
    if kind == "traps":
        return sp.immobile_traps(
            n,
            t,
            1.0,
            a1,
            n_traps=int(rng.integers(300, 1500)),
            p_unbind=float(rng.uniform(0.005, 0.05)),
            rng=rng,
            **_acq(n, rng),
        )
    if kind == "confinement":  # compartments of 2-8 px, inside D up to 3x slower: a plateau
        d_in, radius = (1.0, float(10 ** rng.uniform(-0.5, 0))), float(rng.uniform(2.0, 8.0))
        return sp.confinement(
            n, t, d_in, alphas, radius=radius, n_compartments=int(30 * (5.0 / radius) ** 2),
            transmittance=float(rng.uniform(0.0, 0.1)), start_inside=bool(rng.uniform() < 0.8),
            rng=rng, **_acq(n, rng),
        )  # fmt: skip
    return sp.dimerisation(n, t, slow, alphas, rng=rng, **_acq(n, rng))


WORLD_MIX = {
    "andi2:single_state": 0.1,
    "andi2:multi_state": 0.1,
    "andi2:immobile_traps": 0.1,
    "andi2:dimerization": 0.1,
    "andi2:confinement": 0.1,
    "free": 0.06,
    "free_sub": 0.08,
    "directed": 0.08,
    "two_state:immobile": 0.06,
    "two_state:directed": 0.04,
    "traps": 0.06,
    "confinement": 0.12,
}


def simulate_state_world(
    n_tracks: int, n_frames: int = 200, rng=None, chunk: int = 100, mix: dict | None = None
):
    """Training tracks (N, T, 2) in px and their per-frame AnDi-2 classes (N, T).

    Parameters
    ----------
    n_tracks, n_frames : int
        Number of tracks and frames; the families of ``WORLD_MIX`` in proportion.
    rng : numpy.random.Generator, int or None
        Random generator or seed.
    chunk : int
        Tracks per simulator call (each call draws its own parameters).
    mix : dict, optional
        Family -> fraction of the tracks; default ``WORLD_MIX``.

    Returns
    -------
    (ndarray, ndarray)
        Positions (float32) and classes (int64: 0 immobile, 1 confined, 2 free, 3 directed).
    """
    rng = np.random.default_rng(rng)
    pos, lab = [], []
    for kind, frac in (WORLD_MIX if mix is None else mix).items():
        left = int(round(frac * n_tracks))
        while left > 0:
            res = _world_part(kind, min(chunk, left), n_frames, rng)
            pos.append(res.positions.astype(np.float32))
            lab.append(res.state.astype(np.int64))
            left -= len(res.positions)
    perm = rng.permutation(sum(len(p) for p in pos))
    return np.concatenate(pos)[perm], np.concatenate(lab)[perm]


def _crops(pos, lab, batch: int, length: int, rng):
    i = rng.integers(len(pos), size=batch)
    s = rng.integers(0, pos.shape[1] - length + 1, size=batch)
    frames = s[:, None] + np.arange(length)
    return pos[i[:, None], frames], lab[i[:, None], frames]


def _evaluate(net: StateNet, pos, lab, length: int) -> dict:
    """Per-frame accuracy and per-class F1 on the first ``length`` frames."""
    prob = predict_state(pos[:, :length].astype(float), model=net)
    pred = np.stack(prob).argmax(-1).ravel()
    true = lab[:, :length].ravel()
    f1 = {}
    for c, name in enumerate(STATE_NAMES):
        tp = np.sum((pred == c) & (true == c))
        den = np.sum(pred == c) + np.sum(true == c)
        f1[name] = float(2 * tp / den) if den else float("nan")
    return {"accuracy": float(np.mean(pred == true)), "f1": f1}


def _optimise(net, pos, lab, steps: int, batch: int, lr: float, rng, log, t0: float) -> list:
    """One-cycle AdamW on random crops of the training tracks; returns the loss per step."""
    import time

    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    curve = []
    for step in range(steps):
        length = int(rng.integers(WORLD["crop_lengths"][0], WORLD["crop_lengths"][1] + 1))
        x, y = _crops(pos, lab, batch, length, rng)
        logits = net(torch.from_numpy(state_features(x)))
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        curve.append(loss.item())
        if (step + 1) % 250 == 0:
            log(f"step {step + 1}: loss {np.mean(curve[-250:]):.4f} ({time.time() - t0:.0f} s)")
    return curve


def _card(
    freq: np.ndarray, settings: dict, curve: list, seconds: int, val: dict, mix: dict
) -> dict:
    """The model card saved with the weights: classes, convention, world, training, validation."""
    steps = settings["steps"]
    losses = [round(float(np.mean(curve[i : i + 250])), 4) for i in range(0, steps, 250)]
    return {
        "classes": list(STATE_NAMES),
        "frame_convention": "forward",
        "world": WORLD,
        "world_mix": mix,
        "class_frequency": freq.tolist(),
        "training": {**settings, "seconds": seconds, "loss_every_250": losses},
        "validation": val,
    }


def train_state_model(
    out: str | Path,
    n_tracks: int = 6000,
    steps: int = 3000,
    batch: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    threads: int = 2,
    log=print,
    mix: dict | None = None,
    init: str | Path | None = None,
) -> dict:
    """Train :class:`StateNet` on :func:`simulate_state_world` and save it with its card.

    Parameters
    ----------
    out : str or Path
        Weights file to write (``torch.save`` of config, state_dict and card).
    n_tracks, steps, batch, lr, seed, threads
        Training tracks (200 frames, cropped to 20-200), optimiser steps, batch size, peak
        learning rate (one-cycle AdamW), seed and CPU threads.
    log : callable
        Progress messages.
    mix : dict, optional
        Family -> fraction of the training tracks; default ``WORLD_MIX``.
    init : str or Path, optional
        Weights file to start from (a fine-tune; recorded in the card), default random weights.

    Returns
    -------
    dict
        The card written with the weights (world, settings, loss curve, validation).
    """
    import time

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    mix = dict(WORLD_MIX if mix is None else mix)
    pos, lab = simulate_state_world(n_tracks, 200, rng, mix=mix)
    val_pos, val_lab = simulate_state_world(max(n_tracks // 6, 200), 200, seed + 1000, mix=mix)
    log(f"simulated {len(pos)} + {len(val_pos)} tracks in {time.time() - t0:.0f} s")
    freq = np.bincount(lab.ravel(), minlength=4) / lab.size
    net = StateNet()
    if init is not None:
        from .states import load_state_model

        net, init_card = load_state_model(init)
        net.train()
    curve = _optimise(net, pos, lab, steps, batch, lr, rng, log, t0)
    net.eval()
    val = {f"T={n}": _evaluate(net, val_pos, val_lab, n) for n in (50, 200)}
    log(f"validation {val}")
    settings = {"n_tracks": n_tracks, "steps": steps, "batch": batch, "lr": lr, "seed": seed}
    if init is not None:
        settings["init"] = {"file": Path(init).name, "training": init_card.get("training", {})}
        settings["init"]["world_mix"] = init_card.get("world_mix", {})
    card = _card(freq, settings, curve, round(time.time() - t0), val, mix)
    config = {
        "n_features": N_FEATURES,
        "hidden": 48,
        "dilations": [1, 2, 4, 8, 16, 1],
        "kernel": 5,
        "n_classes": 4,
    }
    torch.save({"config": config, "state_dict": net.state_dict(), "card": card}, out)
    return card
