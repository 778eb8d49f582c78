"""napari-step's AnDi-2 phenomenological simulators against andi-datasets' own, statistically.

For each model (single state, two-state switching, immobile traps, dimerisation, confinement) the
same parameters (the challenge's geometry: 230.4 px box, 50 particles per field, trap radius 0.4,
300 traps, compartments of radius 5, 30 per field, transmittance 0.1; Pu 0.01, Pb 1; per-track
D and alpha drawn from the challenge's truncated Gaussians around fixed means) are simulated by
andi-datasets' ``models_phenom`` (single and two-state without a box, as napari-step's; the
spatial models in its reflecting box) (in the throwaway environment, as a subprocess: this same file
run by ``/work/andi_env/bin/python`` with ``generate``; andi-datasets pins numpy <= 1.26.4 and is
never imported by napari-step) and by :mod:`napari_step.simulate`. Compared on noise-free
positions, 200 frames:

* fraction of frames per label (immobile, slow state, confined);
* per-state step variance over 2 D (1 for free motion; below 1 inside compartments);
* the label convention: share of immobile-labelled steps that are exactly zero when frame t's
  label is read as the step t -> t+1 (forward) or t-1 -> t (backward);
* ensemble time-averaged MSD at lags 1..50 (the curve's shape);
* mean dwell (complete segments) per state and change points per track.

Usage::

    .venv/bin/python benchmarks/simulators_vs_andi.py [--tracks 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ANDI_PYTHON = "/work/andi_env/bin/python"
BOX, PER_FIELD = 1.8 * 128, 50
LAGS = (1, 2, 5, 10, 20, 50)
# means of (fast, slow) D in px^2/frame and alpha; per-track jitter as the challenge:
# D ~ N(mean, 0.01 mean), alpha ~ N(mean, 0.01) (variances), truncated
SETUPS = {
    "single_state": {"d": (1.0,), "alpha": (0.8,)},
    "multi_state": {"d": (1.0, 0.05), "alpha": (1.0, 0.6), "p_switch": 0.05},
    "immobile_traps": {"d": (1.0,), "alpha": (1.0,), "n_traps": 300, "r": 0.4},
    "dimerization": {"d": (1.0, 0.1), "alpha": (1.0, 0.7), "r": 0.6, "box": 40.0},
    "confinement": {"d": (1.0, 0.05), "alpha": (1.0, 0.7), "r": 5.0, "n_comp": 30},
}


# ---------------------------------------------------------------------------------------------
# andi-datasets side (runs in the throwaway environment only)
# ---------------------------------------------------------------------------------------------


def _andi_generate(out: str, n_tracks: int, seed: int) -> None:
    from andi_datasets.models_phenom import models_phenom

    np.random.seed(seed)  # noqa: NPY002 (andi-datasets draws from the global RNG only)
    mp = models_phenom()
    data = {}
    for name, s in SETUPS.items():
        ds = [[d, 0.01 * d] for d in s["d"]]
        al = [[a, 0.01] for a in s["alpha"]]
        pos, lab = [], []
        for _ in range(max(1, n_tracks // PER_FIELD)):
            common = {"N": PER_FIELD, "T": 200}
            if name == "single_state":
                p, lb = mp.single_state(**common, Ds=ds[0], alphas=al[0], L=None)
            elif name == "multi_state":
                q = s["p_switch"]
                p, lb = mp.multi_state(
                    **common, M=[[1 - q, q], [q, 1 - q]], Ds=ds, alphas=al, L=None
                )
            elif name == "immobile_traps":
                p, lb = mp.immobile_traps(
                    **common,
                    L=BOX,
                    r=s["r"],
                    Pu=0.01,
                    Pb=1,
                    Ds=ds[0],
                    alphas=al[0],
                    Nt=s["n_traps"],
                )
            elif name == "dimerization":
                p, lb = mp.dimerization(
                    **common, L=s["box"], r=s["r"], Pu=0.01, Pb=1, Ds=ds, alphas=al
                )
            else:
                p, lb = mp.confinement(
                    **common, L=BOX, Ds=ds, alphas=al, r=s["r"], Nc=s["n_comp"], trans=0.1
                )
            pos.append(np.transpose(p, (1, 0, 2)))
            lab.append(np.transpose(lb[..., :3], (1, 0, 2)))
        data[f"{name}_pos"] = np.concatenate(pos)
        data[f"{name}_lab"] = np.concatenate(lab)  # (N, T, 3): alpha, D, state
    np.savez_compressed(out, **data)


# ---------------------------------------------------------------------------------------------
# napari-step side
# ---------------------------------------------------------------------------------------------


def _ours(n_tracks: int, seed: int) -> dict:
    from napari_step import simulate as sim
    from napari_step.simulate.andi2_world import truncated_normal

    rng = np.random.default_rng(seed)
    out = {}
    for name, s in SETUPS.items():
        d_mean = np.tile(s["d"], (n_tracks, 1))
        d = truncated_normal(d_mean, np.sqrt(0.01 * d_mean), 1e-12, 1e6, rng)
        a = truncated_normal(np.tile(s["alpha"], (n_tracks, 1)), 0.1, 0.0, 1.999, rng)
        if name == "single_state":
            res = sim.single_state(n_tracks, 200, d[:, 0], a[:, 0], rng=rng)
        elif name == "multi_state":
            res = sim.multi_state(n_tracks, 200, d, a, transition=s["p_switch"], rng=rng)
        elif name == "immobile_traps":
            res = sim.immobile_traps(
                n_tracks,
                200,
                d[:, 0],
                a[:, 0],
                n_traps=s["n_traps"],
                trap_radius=s["r"],
                box=BOX,
                per_field=PER_FIELD,
                rng=rng,
            )
        elif name == "dimerization":
            res = sim.dimerisation(
                n_tracks, 200, d, a, radius=s["r"], box=s["box"], per_field=PER_FIELD, rng=rng
            )
        else:
            res = sim.confinement(
                n_tracks,
                200,
                d,
                a,
                n_compartments=s["n_comp"],
                radius=s["r"],
                box=BOX,
                per_field=PER_FIELD,
                rng=rng,
            )
        out[f"{name}_pos"] = res.true_positions
        out[f"{name}_lab"] = np.stack([res.alpha, res.d, res.state], -1)
    return out


# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------


def _level(name: str, lab: np.ndarray) -> np.ndarray:
    """Per-frame state level: 0 immobile, 1 slow / confined, 2 fast / free."""
    d, state = lab[..., 1], lab[..., 2]
    if name == "immobile_traps":
        return np.where(d == 0, 0, 2)
    if name == "confinement":
        return np.where(state == 1, 1, 2)
    if name == "single_state":
        return np.full(d.shape, 2)
    threshold = np.sqrt(SETUPS[name]["d"][0] * SETUPS[name]["d"][1])
    return np.where(d < threshold, 1, 2)


def _dwell(level: np.ndarray) -> dict:
    """Mean length of complete segments per level, change points per track."""
    lengths: dict = {0: [], 1: [], 2: []}
    n_cp = 0
    for row in level:
        cps = np.flatnonzero(row[1:] != row[:-1]) + 1
        n_cp += cps.size
        for a, b in zip(cps[:-1], cps[1:]):
            lengths[int(row[a])].append(b - a)
    stats = {f"dwell_{k}": float(np.mean(v)) if v else float("nan") for k, v in lengths.items()}
    stats["changepoints_per_track"] = n_cp / len(level)
    return stats


def statistics(name: str, pos: np.ndarray, lab: np.ndarray) -> dict:
    """The compared figures of one model's tracks (N, T, 2) and labels (N, T, 3)."""
    level = _level(name, lab)
    steps = np.diff(pos, axis=1)
    d = lab[:, :-1, 1]
    out = {f"frac_{k}": float((level == k).mean()) for k in (0, 1, 2)}
    for k in (1, 2):
        sel = (level[:, :-1] == k) & (d > 0)
        if sel.any():
            out[f"step_var_over_2d_{k}"] = float(((steps[sel] ** 2).mean(-1) / (2 * d[sel])).mean())
    if (level == 0).any():
        zero = (steps == 0).all(-1)
        out["immobile_zero_forward"] = float(zero[level[:, :-1] == 0].mean())
        out["immobile_zero_backward"] = float(zero[level[:, 1:] == 0].mean())
    for lag in LAGS:
        out[f"msd_{lag}"] = float(((pos[:, lag:] - pos[:, :-lag]) ** 2).sum(-1).mean())
    out.update(_dwell(level))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=1000, help="tracks per model (multiple of 50)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "andi.npz"
        subprocess.run(
            [ANDI_PYTHON, __file__, "generate", str(path), str(args.tracks), str(args.seed)],
            check=True,
            capture_output=True,
        )
        theirs = dict(np.load(path))
    ours = _ours(args.tracks, args.seed)
    table = {}
    for name in SETUPS:
        a = statistics(name, theirs[f"{name}_pos"], theirs[f"{name}_lab"])
        b = statistics(name, ours[f"{name}_pos"], ours[f"{name}_lab"])
        table[name] = {"andi": a, "napari_step": b}
        print(f"\n## {name} ({len(ours[f'{name}_pos'])} tracks x 200 frames)")
        print(f"{'figure':26s} {'andi-datasets':>14s} {'napari-step':>12s}")
        for key in a:
            print(f"{key:26s} {a[key]:14.4g} {b.get(key, float('nan')):12.4g}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "generate":
        _andi_generate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
