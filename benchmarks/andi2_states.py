"""Where the AnDi-2 state F1 is lost: per-track evidence against experiment-level evidence.

Reads the sets and the ``step[default]+states`` submission that ``benchmarks/andi2.py`` wrote
(run that first, same ``--data`` and ``--seed``), then reports two things:

1. **The ceiling when the experiment's model is known.** The states are re-derived from the
   submission's own segments and K. Only the model name of each experiment (``models.json``) is
   taken from the truth, and no per-track label is used. A segment is *slow* when its K is below
   ``napari_step.experiment.SLOW`` times the FOV's 75th percentile of segment K. In a
   confinement experiment a slow segment is confined; with immobile traps it is immobile; in the
   other models every segment is free (directed when its alpha >= 1.9):
   ``napari_step.experiment.states_from_model`` given the true model. The result is scored
   with andi-datasets' own scorer, beside the submission and the all-"free" answer.
2. **The experiment classifier** (``napari_step.experiment``): the same states with the model
   taken from its FOV-level probabilities instead of the truth (submission ``+experiment``).
3. **Per-FOV evidence, by model.** These are aggregate features of each FOV:
   - the share of frames in slow segments;
   - change points per track;
   - the state model's mean probabilities over the slow frames (``predict_state``).

   They show what an experiment-level classifier could separate, and which models overlap.

Usage (after ``benchmarks/andi2.py --seed S --data DIR``)::

    .venv/bin/python benchmarks/andi2_states.py --data DIR --seed S [--csv OUT.csv]

Training the experiment classifier on the project's own simulators (no andi-datasets data; about
5 minutes on one core)::

    .venv/bin/python benchmarks/andi2_states.py \
        --train src/napari_step/weights/experiment_andi2.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from andi2 import andi_env, read_fov  # noqa: E402

SUBMISSION = "step_default_states"


def parse_line(line: str) -> tuple[int, list[list]]:
    """One single-trajectory line -> (index, [[start, stop, K, alpha, state], ...])."""
    v = line.strip().split(",")
    idx, rest = int(float(v[0])), [float(x) for x in v[1:]]
    segs, start = [], 0
    for j in range(0, len(rest) - 1, 4):
        k, a, s, cp = rest[j : j + 4]
        segs.append([start, int(cp), k, a, int(s)])
        start = int(cp)
    return idx, segs


def format_line(idx: int, segs: list, states) -> str:
    """A single-trajectory line with the given segment states (alpha 0 where immobile)."""
    vals = [str(idx)]
    for (_, b, k, al, _), st in zip(segs, states):
        vals += [f"{k:.6g}", f"{0.0 if st == 0 else al:.6g}", str(int(st)), str(b)]
    return ",".join(vals)


FOV_SIDE, BOX = 128, 230.4  # the challenge's FOV and simulation box (px)


def simulated_fovs(n_exp: int, seed: int):
    """Own-simulator FOVs as the challenge cuts them: per experiment and model, 3 FOVs of
    128 px, tracks split into pieces of >= 20 frames inside it; yields (model, tracks)."""
    from napari_step.simulate.andi2_world import ANDI2_MODELS, andi2_like

    rng = np.random.default_rng(seed)
    for _ in range(n_exp):
        for model in ANDI2_MODELS:
            pos = andi2_like(model, 50, 200, rng=rng).positions
            if model in ("single_state", "multi_state"):  # no field: place them in the box
                pos = pos - pos[:, :1] + rng.uniform(0, BOX, size=(len(pos), 1, 2))
            for _ in range(3):
                o = rng.integers(int(0.05 * BOX), int(0.95 * BOX) - FOV_SIDE, size=2)
                tracks = []
                for p in pos:
                    inside = np.all((p >= o) & (p <= o + FOV_SIDE), axis=1).astype(int)
                    edges = np.diff(np.r_[0, inside, 0])
                    for a, b in zip(np.where(edges == 1)[0], np.where(edges == -1)[0]):
                        if b - a >= 20:
                            tracks.append(p[a:b] - o)
                if len(tracks) >= 3:
                    yield model, tracks


def pipeline_features(tracks, state_model) -> np.ndarray:
    """FOV features of tracks through the +states submission's own pipeline."""
    import warnings

    from andi2 import step_predictions, step_segments

    from napari_step.experiment import fov_features

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        preds = step_predictions(tracks, state_model)
        segs = step_segments(tracks, "default", preds)
    bounds = [[(a, b) for a, b, *_ in t] for t in segs]
    return fov_features(bounds, [[s[2] for s in t] for t in segs], preds[2])


def train(out: Path, n_exp: int, seeds: list[int]) -> None:
    """Fit the experiment classifier on own-simulated FOVs and write it with its card."""
    import time

    from napari_step.experiment import FEATURES, MODELS, fit_experiment_model
    from napari_step.states import DEFAULT_WEIGHTS

    t0, x, y = time.time(), [], []
    for seed in seeds:
        for model, tracks in simulated_fovs(n_exp, seed):
            x.append(pipeline_features(tracks, DEFAULT_WEIGHTS))
            y.append(MODELS.index(model))
        print(f"seed {seed}: {len(y)} FOVs ({time.time() - t0:.0f} s)", flush=True)
    fit = fit_experiment_model(np.array(x), np.array(y))
    card = {
        "task": "AnDi-2 phenomenological model of a field of view, from FOV-level features",
        "training_data": "napari_step.simulate.andi2_world.andi2_like fields (challenge "
        "parameters), 3 FOVs of 128 px per field, pieces >= 20 frames; features through "
        "STEP (default), segment_tracks (default) and the shipped state model",
        "n_fovs": len(y),
        "experiments_per_model_and_seed": n_exp,
        "seeds": seeds,
        "train_accuracy": fit.pop("train_accuracy"),
        "seconds": round(time.time() - t0),
        "state_model": DEFAULT_WEIGHTS.name,
    }
    blob = {"features": list(FEATURES), "models": list(MODELS), **fit, "card": card}
    out.write_text(json.dumps(blob, indent=1) + "\n")
    print(f"wrote {out}: train accuracy {card['train_accuracy']:.3f} on {len(y)} FOVs")


def main() -> None:
    from napari_step.experiment import (
        FEATURES,
        MODELS,
        fov_features,
        model_probabilities,
        slow_segments,
        states_from_model,
    )
    from napari_step.states import predict_state

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="the --data folder of benchmarks/andi2.py")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exps-per-model", type=int, default=2)
    ap.add_argument("--fovs", type=int, default=3)
    ap.add_argument("--csv", type=Path, help="also write the per-FOV features here")
    ap.add_argument("--train", type=Path, help="fit the experiment classifier, write it here")
    ap.add_argument("--train-exps", type=int, default=10)
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[11, 22])
    a = ap.parse_args()
    if a.train:
        return train(a.train, a.train_exps, a.train_seeds)
    if a.data is None:
        sys.exit("--data is needed (or --train)")
    root = a.data / f"andi2_e{a.exps_per_model}_f{a.fovs}_s{a.seed}"
    sub = root / "res" / SUBMISSION
    if not sub.is_dir():
        sys.exit(f"no {sub}: run benchmarks/andi2.py --seed {a.seed} --data {a.data} first")
    models = json.loads((root / "models.json").read_text())
    known, free = root / "res" / "known_model", root / "res" / "all_free"
    clf = root / "res" / "experiment"
    feats = []

    def write(folder: Path, exp: str, fov: str, lines: list[str]) -> None:
        dst = folder / "track_2" / exp / f"{fov}.txt"
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text("\n".join(lines) + "\n")

    for exp, model in models.items():
        for csv in sorted((root / "ref" / "track_2" / exp).glob("trajs_fov_*.csv")):
            fov = csv.stem.removeprefix("trajs_")
            idx, tracks = read_fov(csv)
            probs = dict(zip(idx, predict_state(tracks)))
            text = (sub / "track_2" / exp / f"{fov}.txt").read_text().splitlines()
            rows = [parse_line(line) for line in text if line.strip()]
            bounds = [[(s[0], s[1]) for s in segs] for _, segs in rows]
            ks = [[s[2] for s in segs] for _, segs in rows]
            alphas = [[s[3] for s in segs] for _, segs in rows]
            slow = slow_segments(ks)
            feat = fov_features(bounds, ks, [probs[i] for i, _ in rows])
            given = {
                known: np.eye(len(MODELS))[MODELS.index(model)],  # the true model
                clf: model_probabilities(feat),
            }
            for folder, p_model in given.items():
                states = states_from_model(slow, alphas, p_model)
                write(folder, exp, fov, [format_line(i, s, st) for (i, s), st in zip(rows, states)])
            write(free, exp, fov, [format_line(i, s, [2] * len(s)) for i, s in rows])
            feats.append({"model": model, "exp": exp, "fov": fov, **dict(zip(FEATURES, feat))})
    score_json = root / "scores_states.json"
    andi_env("score", root / "ref", sub, clf, known, free, "--json", score_json)
    scores = json.loads(score_json.read_text())
    names = {
        str(sub): "submission (+states)",
        str(clf): "+experiment",
        str(known): "known model",
        str(free): "all free",
    }
    print(f"\nState F1 (andi-datasets scorer), seed {a.seed}:")
    order = list(scores[str(sub)])
    print(f"{'':22s}" + "".join(f"{m[:14]:>15s}" for m in order))
    for path, name in names.items():
        print(f"{name:22s}" + "".join(f"{scores[path][m]['f1_state']:15.3f}" for m in order))
    df = pd.DataFrame(feats)
    print("\nPer-FOV evidence (mean [min, max] over FOVs):")
    cols = ["slow_frac", "cp_per_track", "p_imm_slow", "p_conf_slow", "p_free_slow"]
    df.loc[df["has_slow"] == 0, cols[2:]] = np.nan  # no slow frames: no probabilities
    for model, part in df.groupby("model", sort=False):
        cells = [
            f"{c} {part[c].mean():.2f} [{part[c].min():.2f}, {part[c].max():.2f}]" for c in cols
        ]
        print(f"  {model:15s} " + "; ".join(cells))
    if a.csv:
        df.to_csv(a.csv, index=False)


if __name__ == "__main__":
    main()
