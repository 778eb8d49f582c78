"""AnDi-2 benchmark: napari-step against a classical baseline, scored by andi-datasets itself.

Data and scoring come from andi-datasets (the AnDi-2 challenge's own generator and metrics), run
in a separate throwaway virtualenv because it pins numpy <= 1.26.4 (never a dependency of
napari-step); ``benchmarks/andi2_env.py`` is the part that runs there::

    python3 -m venv /work/andi_env
    /work/andi_env/bin/pip install numpy==1.26.4 andi-datasets ipython
    .venv/bin/python benchmarks/andi2.py --exps-per-model 2 --fovs 3   # ~2 min on 2 cores

1. **Challenge set**: ``challenge_phenom_dataset`` with the challenge's default parameters (all five
   phenomenological models: single state, two-state, immobile traps, dimerisation, confinement;
   tracks 20-200 frames inside a 128 px FOV; localisation noise 0.12 px), written as a
   challenge-shaped reference folder under ``--data`` (cached, not committed).
2. **Predictions** in the challenge's single-trajectory format (``fov_{f}.txt``: index, then K,
   alpha, state, change point per segment, ending with the track length), read and written with
   napari-step's own AnDi-2 reader/writer (``napari_step.io.andi2``), one submission folder per
   method:

   - ``step[<method>]``: change points and per-segment D of ``napari_step.segment.segment_tracks``
     given STEP's ``predict_log10_d`` output (``--methods``: "default" = the package's default
     detector and estimator, or DETECTOR:ESTIMATOR[:KEY=VALUE...]; R = 0, the data have no
     motion blur); per segment, as ``analyze --andi2`` writes it (``napari_step.io.andi2``):
     K = maximum likelihood of the segment's steps, pooled over the track's segments of the
     same state (``segment_mle_k``), alpha = mean of ``predict_alpha`` over the segment (for a
     segment of >= 20 frames predicted on the segment alone, ``piecewise_alpha``: a slow segment
     read inside a track with fast parts reads low) shrunk toward the state's prior by length
     (``andi2_alpha``), state 3 (directed) when that mean alpha >= 1.9, else 2 (free);
   - ``step[<first method>]+states``: the same, with the segment's state the most probable class
     of the per-frame state model (``napari_step.states.predict_state``, mean probability over
     the segment), when a model exists; alpha from the same mean probabilities
     (``andi2_alpha``: 0 when the immobile probability exceeds 1/2, as the AnDi-2 labels
     immobile segments, else the mobile states' estimates weighted by their probabilities);
   - ``baseline``: kernel change points (``ruptures.KernelCPD``, linear kernel, min 5 frames,
     penalty 1.1 log T: the step-size detector of ``benchmarks/changepoints.py``) on log10
     squared step sizes, maximum-likelihood D per segment, alpha 1, state 2 (free).

3. **Scores** with andi-datasets' ``error_SingleTraj_dataset`` (via its ``run_single_task``: one
   call per experiment, FOVs pooled), per model and overall (weighted by tracks as the challenge
   does): change-point RMSE and Jaccard (10-frame threshold), alpha MAE, K MSLE, state F1.
4. **Per-frame D on two-state switching** (``models_phenom.multi_state``: Brownian, D ratio
   log-uniform in 4-50x, switching probability 0.03 per frame, 200 frames), noise-free and with
   0.12 px localisation noise: mean |D_pred / D_true - 1| over frames 0..T-2 (the last frame has
   no step), for raw STEP, segmented STEP, the baseline, and maximum likelihood (MLE) and the
   covariance estimator (CVE, R = 0) on the true segments.

Convention: the value at frame t describes the motion t -> t+1; a change point c is the first
frame of the new segment (the AnDi-2 labels' convention for two-state switching).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ENV_SCRIPT = HERE / "andi2_env.py"
ANDI_PY = os.environ.get("ANDI_ENV_PYTHON", "/work/andi_env/bin/python")
METRIC_NAMES = {
    "rmse_cp": "CP RMSE",
    "jaccard_cp": "CP Jaccard",
    "mae_alpha": "alpha MAE",
    "msle_k": "K MSLE",
    "f1_state": "state F1",
}
BASELINE_PENALTY = 1.1  # per log T, on log10 squared step sizes (benchmarks/changepoints.py)
MIN_SIZE = 5
# segments of >= 20 frames get STEP's alpha predicted on the segment alone (piecewise_alpha);
# ANDI2_PIECEWISE_ALPHA=0 gives the whole-track prediction averaged per segment (before/after)
PIECEWISE_ALPHA = os.environ.get("ANDI2_PIECEWISE_ALPHA", "1") != "0"


def andi_env(*args) -> None:
    """Run ``benchmarks/andi2_env.py`` in the andi-datasets virtualenv."""
    if not Path(ANDI_PY).exists():
        sys.exit(f"no andi-datasets python at {ANDI_PY}: build the throwaway env (see docstring)")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    subprocess.run([ANDI_PY, str(ENV_SCRIPT), *map(str, args)], check=True, env=env)


# ---------------------------------------------------------------------------------------------
# reading and writing the challenge formats
# ---------------------------------------------------------------------------------------------


def read_fov(path: Path) -> tuple[list[int], list[np.ndarray]]:
    """Track indices and (T, 2) x, y positions (px) of one ``trajs_fov_{f}.csv``, read with
    napari-step's AnDi-2 reader (``napari_step.io.andi2.read_andi2_trajectories``)."""
    from napari_step.io.andi2 import read_andi2_trajectories

    table = read_andi2_trajectories(path)
    idx, tracks = [], []
    for i, part in table.groupby("track_id", sort=True):
        part = part.sort_values("frame")
        if np.any(np.diff(part["frame"].to_numpy()) != 1):
            raise ValueError(f"{path}: track {i} has gaps")
        idx.append(int(i))
        tracks.append(part[["x", "y"]].to_numpy(float))
    return idx, tracks


def write_fov(path: Path, idx: list[int], per_track: list[list[tuple]], lengths: list[int]):
    """Write (start, stop, K, alpha, state) segments with napari-step's AnDi-2 writer
    (``napari_step.io.andi2.write_andi2_labels``), unmodified input for the andi scorer."""
    from napari_step.io.andi2 import write_andi2_labels

    rows = [
        {"track_id": i, "start": a, "stop": b, "k": k, "alpha": al, "state": st, "length": n}
        for i, segs, n in zip(idx, per_track, lengths)
        for a, b, k, al, st in segs
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_andi2_labels(pd.DataFrame(rows), path)


# ---------------------------------------------------------------------------------------------
# methods: each maps a list of (T, 2) tracks to per-track segments (start, stop, K, alpha, state)
# ---------------------------------------------------------------------------------------------


def _sq_steps(xy: np.ndarray) -> np.ndarray:
    return np.sum(np.diff(xy, axis=0) ** 2, axis=1)  # r[t]: the step t -> t+1


def mle_segment_d(xy: np.ndarray, start: int, stop: int) -> float:
    """ML D (px^2/frame) of frames [start, stop): the steps t -> t+1 for t in the range."""
    r = _sq_steps(xy)[start : min(stop, len(xy) - 1)]
    return float(np.mean(r) / (2 * xy.shape[1])) if r.size else np.nan


def cve_segment_d(xy: np.ndarray, start: int, stop: int) -> float:
    """Covariance estimator (R = 0) of D over frames [start, stop), per axis averaged."""
    dx = np.diff(xy[start : min(stop, len(xy) - 1) + 1], axis=0)
    if len(dx) < 2:
        return mle_segment_d(xy, start, stop)
    return float(np.mean(np.mean(dx**2, 0) / 2 + np.mean(dx[1:] * dx[:-1], 0)))


def baseline_changepoints(xy: np.ndarray, penalty: float = BASELINE_PENALTY) -> list[int]:
    """KCPD (linear kernel) on log10 squared step sizes; change point = first frame of the new
    segment (signal index t is the step t -> t+1)."""
    import ruptures as rpt

    r = _sq_steps(xy)
    if len(r) < 2 * MIN_SIZE:
        return []
    floor = r[r > 0].min() * 1e-3 if np.any(r > 0) else 1.0
    sig = np.log10(np.maximum(r, floor)).reshape(-1, 1)
    algo = rpt.KernelCPD(kernel="linear", min_size=MIN_SIZE).fit(sig)
    try:
        return [int(b) for b in algo.predict(pen=penalty * np.log(len(xy)))[:-1]]
    except rpt.exceptions.BadSegmentationParameters:
        return []


def _bounds(cps, n_frames: int) -> list[tuple[int, int]]:
    b = [0, *[int(c) for c in cps], n_frames]
    return list(zip(b[:-1], b[1:]))


def baseline_segments(tracks: list[np.ndarray]) -> list[list[tuple]]:
    out = []
    for xy in tracks:
        bounds = _bounds(baseline_changepoints(xy), len(xy))
        out.append([(a, b, mle_segment_d(xy, a, b), 1.0, 2) for a, b in bounds])
    return out


def _segment_state(alpha: float, probs) -> int:
    """State of a segment: the state model's most probable class (mean probability) when given,
    else directed when alpha >= 1.9, free otherwise."""
    if probs is None or not np.isfinite(probs).all():
        return 3 if alpha >= 1.9 else 2
    return int(np.argmax(probs.mean(axis=0)))


def segment_kwargs(spec: str) -> dict:
    """``segment_tracks`` options of a method spec: "default" (the package's detector and
    estimator) or "DETECTOR:ESTIMATOR[:KEY=VALUE...]" (numeric options such as confirm=3 or
    penalty=2.5, "None" to switch one off); R = 0 (the AnDi-2 data have no motion blur)."""
    kw: dict = {"R": 0.0}
    if spec != "default":
        det, est, *opts = spec.split(":") + [""]
        kw |= {"detector": det} | ({"estimator": est} if est else {})
        for opt in filter(None, opts):
            key, _, value = opt.partition("=")
            kw[key] = None if value == "None" else float(value)
    return kw


def step_segments(tracks: list[np.ndarray], spec: str, preds) -> list[list[tuple]]:
    """napari-step: segments of ``napari_step.segment`` (method ``spec``), STEP alpha averaged
    per segment, the state model's most probable class per segment when ``preds`` has state
    probabilities."""
    from napari_step.io._andi2_estimates import PIECE_MIN_FRAMES
    from napari_step.io.andi2 import andi2_alpha, piecewise_alpha, segment_mle_k
    from napari_step.segment import segment_tracks

    logs, alphas, states = preds
    res = segment_tracks(tracks, log10_d_preds=logs, **segment_kwargs(spec))
    all_bounds = [_bounds(seg.changepoints, len(xy)) for xy, seg in zip(tracks, res)]
    longest = PIECE_MIN_FRAMES if PIECEWISE_ALPHA else max(map(len, tracks)) + 1
    seg_alpha = piecewise_alpha(tracks, all_bounds, alphas, min_frames=longest, device="cpu")
    out = []
    for i, (xy, seg, bounds) in enumerate(zip(tracks, res, all_bounds)):
        ks = segment_mle_k(xy, bounds)  # as napari_step.io.andi2.andi2_segments writes K
        rows = []
        for (a, b), k, al in zip(bounds, ks, seg_alpha[i]):
            if not np.isfinite(k):
                k = float(np.nanmean(seg.segmented_d[a:b]))
            al = float(al)
            probs = None if states is None else states[i][a:b]
            state = _segment_state(al, probs)
            mean_p = None if probs is None else [np.mean(probs, axis=0)]
            al = float(andi2_alpha([al], [b - a], [state], mean_p)[0])
            rows.append((a, b, float(k), al, state))
        out.append(rows)
    return out


def step_predictions(tracks: list[np.ndarray], state_model=None, d_model="default"):
    """STEP log10 D and alpha per frame, and the state model's probabilities (or None)."""
    from napari_step.predict import predict_alpha, predict_log10_d

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logs = predict_log10_d(tracks, model=d_model, device="cpu")
        alphas = predict_alpha(tracks, device="cpu")
    states = None
    if state_model is not None:
        from napari_step.states import predict_state

        states = predict_state(tracks, model=state_model)
    return logs, alphas, states


# ---------------------------------------------------------------------------------------------
# the challenge part
# ---------------------------------------------------------------------------------------------


def _folder(method: str) -> str:
    return method.replace(":", "_").replace("+", "_")


def run_challenge(
    ref: Path, res_root: Path, specs: list[str], state_model, d_model="default"
) -> dict:
    """Write one submission folder per method; return {method: folder}."""
    subs = {f"step[{e}]": res_root / _folder(f"step_{e}") for e in specs}
    if state_model is not None:
        subs[f"step[{specs[0]}]+states"] = res_root / _folder(f"step_{specs[0]}+states")
    subs["baseline"] = res_root / "baseline"
    for exp_dir in sorted((ref / "track_2").glob("exp_*")):
        for csv in sorted(exp_dir.glob("trajs_fov_*.csv")):
            fov = csv.stem.removeprefix("trajs_")
            idx, tracks = read_fov(csv)
            lengths = [len(t) for t in tracks]
            logs, alphas, states = step_predictions(tracks, state_model, d_model)
            for method, folder in subs.items():
                target = folder / "track_2" / exp_dir.name / f"{fov}.txt"
                if method == "baseline":
                    segs = baseline_segments(tracks)
                else:
                    spec, _, with_states = method.removeprefix("step[").partition("]")
                    preds = (logs, alphas, states if with_states else None)
                    segs = step_segments(tracks, spec, preds)
                write_fov(target, idx, segs, lengths)
    return subs


def print_scores(scores: dict, subs: dict[str, Path]) -> None:
    models = [m for m in next(iter(scores[str(p)] for p in subs.values()))]
    head = f"{'model':16s} {'method':22s} {'n':>5s} " + " ".join(
        f"{v:>10s}" for v in METRIC_NAMES.values()
    )
    print(head)
    for model in models:
        for method, path in subs.items():
            row = scores[str(path)][model]
            vals = " ".join(f"{row[k]:10.3f}" for k in METRIC_NAMES)
            print(f"{model:16s} {method:22s} {row['n_tracks']:5d} {vals}")
    for method, path in subs.items():
        missing = scores[str(path)]["overall"]["missing_trajectories"]
        print(f"{method}: {missing} trajectories without a prediction the scorer could parse")


def print_spread(scores: dict, subs: dict[str, Path]) -> None:
    """Per experiment, each method minus the baseline (CP Jaccard: higher is better; alpha MAE
    and K MSLE: lower is better): the experiment-to-experiment spread behind a model's mean."""
    per = scores.get("per_experiment", {})
    base = {r["exp"]: r for r in per.get(str(subs["baseline"]), [])}
    if not base:
        return
    print("\nPer experiment, method - baseline (J: CP Jaccard, a: alpha MAE, K: K MSLE x 1000):")
    for method, path in subs.items():
        if method == "baseline":
            continue
        for model in dict.fromkeys(r["model"] for r in base.values()):
            rows = [r for r in per[str(path)] if r["model"] == model]
            diff = [
                f"J{r['jaccard_cp'] - base[r['exp']]['jaccard_cp']:+.3f} "
                f"a{r['mae_alpha'] - base[r['exp']]['mae_alpha']:+.3f} "
                f"K{1000 * (r['msle_k'] - base[r['exp']]['msle_k']):+.2f}"
                for r in rows
            ]
            print(f"  {model:16s} {method:22s} " + " | ".join(diff))


# ---------------------------------------------------------------------------------------------
# per-frame D on two-state switching tracks
# ---------------------------------------------------------------------------------------------


def _true_bounds(d: np.ndarray) -> list[tuple[int, int]]:
    return _bounds(np.flatnonzero(d[1:] != d[:-1]) + 1, len(d))


def _per_frame(tracks, segs_fn) -> list[np.ndarray]:
    out = []
    for i, xy in enumerate(tracks):
        v = np.empty(len(xy))
        for a, b, k in segs_fn(i, xy):
            v[a:b] = k
        out.append(v)
    return out


def pointwise_error(pred: list[np.ndarray], true: np.ndarray) -> float:
    """mean |D_pred / D_true - 1| over frames 0..T-2 of all tracks (NaN/<=0 count as error 1)."""
    p = np.asarray(pred)[:, :-1]
    t = true[:, :-1]
    err = np.abs(p / t - 1.0)
    err[~np.isfinite(p) | (p <= 0)] = 1.0
    return float(np.mean(err))


def run_twostate(
    npz: Path, sigmas: list[float], seed: int, specs: list[str], d_model="default"
) -> dict:
    from napari_step.predict import predict_log10_d
    from napari_step.segment import segment_tracks

    with np.load(npz) as z:
        xy_clean, d = z["xy"].astype(float), z["d"].astype(float)
    rng = np.random.default_rng(seed)
    out = {}
    for sigma in sigmas:
        xy = xy_clean + rng.normal(0.0, sigma, xy_clean.shape) if sigma > 0 else xy_clean
        tracks = list(xy)
        logs = predict_log10_d(tracks, model=d_model, device="cpu")
        res = {"STEP per frame": pointwise_error([10.0**v for v in logs], d)}
        for spec in specs:
            seg = segment_tracks(tracks, log10_d_preds=logs, **segment_kwargs(spec))
            res[f"segmented [{spec}]"] = pointwise_error([s.segmented_d for s in seg], d)
        base = baseline_segments(tracks)
        res["baseline (KCPD steps + MLE)"] = pointwise_error(
            _per_frame(tracks, lambda i, _x: [s[:3] for s in base[i]]), d
        )
        for name, fn in (("MLE", mle_segment_d), ("CVE", cve_segment_d)):
            res[f"{name} on true segments"] = pointwise_error(
                _per_frame(tracks, lambda i, x, f=fn: [
                    (a, b, f(x, a, b)) for a, b in _true_bounds(d[i])
                ]),
                d,
            )  # fmt: skip
        out[f"sigma={sigma}"] = res
    return out


# ---------------------------------------------------------------------------------------------


def _state_model(arg: str):
    """The state model path for --state-model, or None."""
    if arg == "none":
        return None
    if arg != "default":
        return Path(arg)
    try:
        from napari_step.states import DEFAULT_WEIGHTS
    except ImportError:
        return None
    return DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.is_file() else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--exps-per-model", type=int, default=2, help="experiments per model (5 models)"
    )
    ap.add_argument("--fovs", type=int, default=3, help="FOVs per experiment (~20-30 tracks each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--twostate-tracks", type=int, default=200)
    ap.add_argument(
        "--methods",
        nargs="+",
        default=["default", "hybrid:mle"],
        help="napari_step.segment settings: 'default' or DETECTOR:ESTIMATOR (e.g. hybrid:mle, "
        "exact:mle_denoised); the first also gets a +states submission",
    )
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("ANDI_DATA", "/work/andi_data"))
    )
    ap.add_argument("--json", type=Path, help="also write all figures to this JSON file")
    ap.add_argument(
        "--state-model",
        default="default",
        help="state model weights for the +states submissions ('default': the shipped one if "
        "present; 'none': no state model)",
    )
    ap.add_argument(
        "--d-model",
        default="auto",
        help="STEP D model: 'auto' (the package default, chosen once per set), a built-in name "
        "or a path",
    )
    ap.add_argument("--skip-challenge", action="store_true")
    ap.add_argument("--skip-twostate", action="store_true")
    a = ap.parse_args()
    tag = f"e{a.exps_per_model}_f{a.fovs}_s{a.seed}"
    root = a.data / f"andi2_{tag}"
    results: dict = {"config": vars(a) | {"data": str(a.data), "json": str(a.json)}}
    t0 = time.time()
    if not a.skip_challenge:
        ref = root / "ref"
        if not (root / "models.json").exists():
            andi_env("generate", root, "--exps-per-model", a.exps_per_model, "--fovs", a.fovs,
                     "--seed", a.seed)  # fmt: skip
        subs = run_challenge(ref, root / "res", a.methods, _state_model(a.state_model), a.d_model)
        score_json = root / "scores.json"
        andi_env("score", ref, *subs.values(), "--json", score_json)
        scores = json.loads(score_json.read_text())
        print(f"\nAnDi-2 single-trajectory metrics (andi-datasets scorer), {tag}:")
        print_scores(scores, subs)
        print_spread(scores, subs)
        results["challenge"] = {m: scores[str(p)] for m, p in subs.items()}
        results["per_experiment"] = {
            m: scores.get("per_experiment", {}).get(str(p)) for m, p in subs.items()
        }
    if not a.skip_twostate:
        npz = a.data / f"andi2_twostate_n{a.twostate_tracks}_s{a.seed}.npz"
        if not npz.exists():
            npz.parent.mkdir(parents=True, exist_ok=True)
            andi_env("twostate", npz, "--tracks", a.twostate_tracks, "--seed", a.seed)
        ts = run_twostate(npz, [0.0, 0.12], a.seed, a.methods, a.d_model)
        print("\nPer-frame D error mean |D_pred/D_true - 1|, two-state switching (4-50x, p=0.03):")
        for sigma, res in ts.items():
            for name, v in res.items():
                print(f"  {sigma:11s} {name:32s} {v:.3f}")
        results["twostate"] = ts
    print(f"\ntotal {time.time() - t0:.0f} s")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
