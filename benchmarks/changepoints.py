"""Change-point detection and segment-D benchmark (prints figures; not a test).

1. The STEP paper's change-point protocol: 2-D Brownian tracks of 200 frames with exactly one
   change point (segments >= 10 frames), D log-uniform in 1e-3..1e3 px^2/frame. Jaccard index
   JI = TP / (TP + FP + FN), a detection within 5 frames of a true change point being a TP (each
   true change point matched at most once, closest first), and the mean squared position error
   (frames^2) of the TPs. The paper reports JI 0.833 (KCPD on STEP) vs 0.796 (KCPD on step sizes).
2. Pointwise relative error mean |D_seg / D_true - 1| over every frame of the per-frame segmented D
   on 2-D 200-frame tracks with 1-4 change points (equal numbers). The floor is the same estimator
   on the TRUE segments.

Both without noise, with localisation noise of sigma = 0.5 sqrt(D_min) per track, and with a fixed
sigma (px), with the MLE, CVE, pooled-noise CVE and STEP-mean segment estimators.

Methods: (a) KCPD (linear kernel) on STEP log10 D; (b) KCPD on log10 |dx|^2; (c) the hybrid of
napari_step.segment (STEP KCPD proposals, raw-step likelihood-ratio pruning, ML refinement), the
former default; (d) KCPD on the two stacked (STEP, w * log step size); (e) the exact penalised
maximum-likelihood segmentation of the raw steps (optimal partitioning, Brownian likelihood,
penalty per change point 2.0 log T; napari_step.segment.exact_changepoints); (f) the package
default: (e)'s change points confirmed by napari_step.segment.confirm_changepoints.

The segmented-D section also splits the excess error of the default over the true-segment floor by
track: tracks where the detector found fewer change points than there are (changes too small to
see at this length), as many, or more.

3. ``--switching``: the segmented D of ``segment_tracks`` (package defaults) against STEP's
   per-frame output, pointwise mean |D/D_true - 1|, on two-state Markov switching tracks (D ratio
   4-50x log-uniform, fast D 1 px^2/frame, switching probability 0.03 per frame, 200 frames,
   localisation noise 0.12 px: the AnDi-2 two-state setting) and on the 1-4 change-point sets
   above; with the previous default (hybrid detector, MLE, no STEP fallback) and the true-segment
   floors.
4. ``--pelt``: the exact segmentation by ``ruptures.Pelt`` with a custom Brownian cost against the
   package's own dynamic programme (agreement, time per track).

Penalties are per log(T). ``--tune`` prints the grids on the tuning seed that chose the package
defaults (and this script's step-size penalty and weight); figures are always reported on a
different test seed. Quick run: ``python benchmarks/changepoints.py --n 200``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_step import segment as sg
from napari_step.predict import predict_log10_d
from napari_step.simulate import add_localisation_noise, brownian_changepoints, multi_state

STEP_MODEL = "default"  # --model

TUNE_SEED, TEST_SEED = 101, 202
N_FRAMES = 200
STEPSIZE_PENALTY = 1.1  # KCPD on log10 step sizes, per log T (tuned with --tune)
STACK_WEIGHT = 0.35  # weight of the log step sizes stacked with STEP (tuned with --tune)
STACK_PENALTY = 0.3  # per log T for the stacked signal (tuned with --tune)
ABS_SIGMA = 0.05  # px, the fixed-noise condition


# ------------------------------------------------------------------------------------- data


def make_set(kind: str, n: int, seed: int, noise: str, n_frames: int = N_FRAMES):
    """Simulated tracks with STEP predictions. kind 'one' (1 change point) or 'multi' (1-4)."""
    rng = np.random.default_rng([seed, {"one": 1, "multi": 2, "none": 3}[kind], n_frames])
    k = {"one": 1, "multi": (1, 4), "none": 0}[kind]
    if kind == "none":
        d = 10 ** rng.uniform(-3, 3, size=n)
        steps = rng.standard_normal((n, n_frames, 2)) * np.sqrt(2 * d)[:, None, None]
        steps[:, 0] = 0
        pos, dd = np.cumsum(steps, 1), np.repeat(d[:, None], n_frames, 1)
        cps = [np.empty(0, int)] * n
    else:
        sim = brownian_changepoints(n, n_frames, 2, k, 10, (1e-3, 1e3), rng=rng)
        pos, dd, cps = sim.positions, sim.d, sim.changepoints
    sigma = np.zeros(n)
    if noise == "rel":
        sigma = 0.5 * np.sqrt(dd.min(axis=1))
    elif noise == "abs":
        sigma = np.full(n, ABS_SIGMA)
    if noise != "none":
        pos = add_localisation_noise(pos, sigma, rng)
    pred = np.stack(predict_log10_d(pos, model=STEP_MODEL))
    return dict(pos=pos, d=dd, cps=[np.asarray(c, int) for c in cps], pred=pred, sigma=sigma)


# ---------------------------------------------------------------------------------- metrics


def match(det, true, tol: int = 5):
    """(TP, FP, FN, signed errors of the TPs): closest pairs first, each truth matched once."""
    pairs = sorted(
        (abs(int(a) - int(b)), i, j)
        for i, a in enumerate(det)
        for j, b in enumerate(true)
        if abs(int(a) - int(b)) <= tol
    )
    used_d, used_t, errs = set(), set(), []
    for _, i, j in pairs:
        if i in used_d or j in used_t:
            continue
        used_d.add(i)
        used_t.add(j)
        errs.append(int(det[i]) - int(true[j]))
    return len(errs), len(det) - len(errs), len(true) - len(errs), errs


def jaccard(dets, trues):
    tp = fp = fn = 0
    errs: list = []
    for d, t in zip(dets, trues):
        a, b, c, e = match(d, t)
        tp, fp, fn, errs = tp + a, fp + b, fn + c, errs + e
    ji = tp / max(tp + fp + fn, 1)
    return ji, float(np.mean(np.square(errs))) if errs else np.nan, tp, fp, fn


def pointwise_error(seg_d: np.ndarray, d_true: np.ndarray) -> float:
    return float(np.nanmean(np.abs(seg_d / d_true - 1)))


# ---------------------------------------------------------------------------------- methods


def det_step(data, penalty=None, min_size=None):
    kw = {} if min_size is None else {"min_size": min_size}
    return [sg.find_changepoints(p, penalty=penalty, **kw) for p in data["pred"]]


def det_stepsize(data, penalty=STEPSIZE_PENALTY, min_size=None):
    kw = {} if min_size is None else {"min_size": min_size}
    return [sg.find_changepoints(sg.log_step_sizes(x), penalty=penalty, **kw) for x in data["pos"]]


def det_stack(data, weight=STACK_WEIGHT, penalty=STACK_PENALTY):
    return [
        sg.find_changepoints(np.stack([p, weight * sg.log_step_sizes(x)], 1), penalty=penalty)
        for p, x in zip(data["pred"], data["pos"])
    ]


def det_hybrid(data, **kw):
    return [sg.find_changepoints(p, x, **kw) for p, x in zip(data["pred"], data["pos"])]


def det_exact(data, penalty=sg.EXACT_PENALTY):
    return [sg.exact_changepoints(x, penalty) for x in data["pos"]]


def det_confirmed(data):
    return [sg.confirm_changepoints(x, sg.exact_changepoints(x)) for x in data["pos"]]


METHODS = {
    "(a) KCPD on STEP": det_step,
    "(b) KCPD on log step sizes": det_stepsize,
    "(c) hybrid (STEP proposals)": det_hybrid,
    "(d) KCPD on STEP + log step sizes": det_stack,
    "(e) exact ML segmentation, no STEP": det_exact,
    "(f) (e) confirmed (package default)": det_confirmed,
}


def segmented(data, cps_list, estimator, R=0.0, spread=None):
    return np.stack(
        [
            sg.segments_from_changepoints(x, c, estimator, p, R, spread).segmented_d
            for x, p, c in zip(data["pos"], data["pred"], cps_list)
        ]
    )


def switching_set(n: int, seed: int, sigma: float = 0.12, p_switch: float = 0.03):
    """Two-state Markov switching (AnDi-2 multi_state-like), with STEP predictions."""
    rng = np.random.default_rng([seed, 4, N_FRAMES])
    ratio = 10 ** rng.uniform(np.log10(4), np.log10(50), n)
    d = np.stack([np.ones(n), 1 / ratio], 1)
    sim = multi_state(n, N_FRAMES, d=d, alpha=1.0, transition=p_switch, sigma=sigma, rng=rng)
    pred = np.stack(predict_log10_d(sim.positions, model=STEP_MODEL))
    cps = [np.asarray(c, int) for c in sim.changepoints]
    return dict(pos=sim.positions, d=sim.d, cps=cps, pred=pred)


def switching_report(n: int, seed: int):
    """Section 3: the segmented D against STEP per frame, old and new defaults, floors."""
    print(f"== segmented D vs STEP per frame (test seed {seed}, {n} tracks per set) ==")
    sets = {"two-state switching, sigma 0.12 px": switching_set(n, seed)}
    for noise in ("none", "rel", "abs"):
        sets[f"1-4 change points, noise {noise}"] = make_set("multi", n, seed, noise)
    for name, data in sets.items():
        n_true = np.mean([len(c) for c in data["cps"]])
        t0 = time.time()
        new = sg.segment_tracks(data["pos"], log10_d_preds=list(data["pred"]))
        t_new = (time.time() - t0) / n * 1e3
        old = sg.segment_tracks(
            data["pos"],
            log10_d_preds=list(data["pred"]),
            estimator="mle",
            detector="hybrid",
            spread=None,
        )
        hmm = sg.segment_tracks(data["pos"], log10_d_preds=list(data["pred"]), detector="hmm")
        exact = sg.segment_tracks(data["pos"], log10_d_preds=list(data["pred"]), detector="exact")
        rows = {
            "STEP per frame (no segmentation)": 10 ** data["pred"],
            "exact detector (the previous default)": np.stack([r.segmented_d for r in exact]),
            "hmm detector (recurring states), mle_denoised": np.stack([r.segmented_d for r in hmm]),
            "previous default (hybrid, mle)": np.stack([r.segmented_d for r in old]),
            "default (auto: exact or hmm by BIC; mle_denoised)": np.stack(
                [r.segmented_d for r in new]
            ),
            "  same without the STEP fallback": segmented(
                data, [r.changepoints for r in new], "mle_denoised"
            ),
            "  exact + mle + fallback": segmented(
                data, [r.changepoints for r in new], "mle", spread=sg.STEP_SPREAD
            ),
            "TRUE segments, mle (floor)": segmented(data, data["cps"], "mle"),
            "TRUE segments, mle_denoised (floor)": segmented(data, data["cps"], "mle_denoised"),
        }
        print(
            f"--- {name}: {n_true:.2f} true change points per track; default reports "
            f"{np.mean([len(r.changepoints) for r in new]):.2f} confirmed of "
            f"{np.mean([len(sg.exact_changepoints(x)) for x in data['pos']]):.2f} exact "
            f"({t_new:.1f} ms/track), "
            f"previous {np.mean([len(r.changepoints) for r in old]):.2f}; "
            f"STEP fallback on {1 - np.mean(np.concatenate([r.constant for r in new])):.0%} "
            f"of segments"
        )
        for label, est in rows.items():
            print(f"  {label:42s} {pointwise_error(est, data['d']):.3f}")
        print()


def pelt_report(n: int, seed: int):
    """Section 4: ruptures.Pelt with a custom Brownian cost against exact_changepoints."""
    import ruptures as rpt
    from ruptures.base import BaseCost

    class BrownianCost(BaseCost):
        model, min_size = "brownian", 1

        def fit(self, signal):
            self.signal = signal
            self.cs = np.concatenate([[0.0], np.cumsum(signal[:, 0])])
            pos_r = signal[signal[:, 0] > 0, 0]
            self.floor = (pos_r.mean() if pos_r.size else 1.0) * 1e-12
            return self

        def error(self, start, end):
            m = (self.cs[end] - self.cs[start]) / (end - start)
            return self.dim * (end - start) * np.log(max(m, self.floor))

    def pelt(x):
        cost = BrownianCost()
        cost.dim = x.shape[1]
        algo = rpt.Pelt(custom_cost=cost, min_size=sg.DEFAULT_MIN_SIZE, jump=1)
        r = (np.diff(x, axis=0) ** 2).sum(-1)[:, None]
        bkps = algo.fit(r).predict(pen=sg.EXACT_PENALTY * np.log(len(x)))
        return np.asarray(bkps[:-1], int)

    print(f"== exact segmentation: own dynamic programme vs ruptures.Pelt ({n} tracks per set) ==")
    for name, data in (
        ("switching", switching_set(n, seed)),
        ("1-4 change points", make_set("multi", n, seed, "none")),
    ):
        t0 = time.time()
        own = [sg.exact_changepoints(x) for x in data["pos"]]
        t_own = (time.time() - t0) / n * 1e3
        t0 = time.time()
        ref = [pelt(x) for x in data["pos"]]
        t_pelt = (time.time() - t0) / n * 1e3
        same = np.mean([np.array_equal(a, b) for a, b in zip(own, ref)])
        e_own = pointwise_error(segmented(data, own, "mle_denoised"), data["d"])
        e_ref = pointwise_error(segmented(data, ref, "mle_denoised"), data["d"])
        print(
            f"  {name:18s} identical {same:.3f}; own {t_own:.1f} ms/track, Pelt {t_pelt:.1f} "
            f"ms/track; segmented D error own {e_own:.4f}, Pelt {e_ref:.4f}"
        )


# ------------------------------------------------------------------------------------- runs


def report(n_one: int, n_multi: int, n_none: int, seed: int):
    print(
        f"== test seed {seed}: {n_one} one-change-point tracks, {n_multi} 1-4 change-point "
        f"tracks, {n_none} constant-D tracks; {N_FRAMES} frames, 2-D =="
    )
    print(f"noise: none | rel = 0.5 sqrt(D_min) per track | abs = {ABS_SIGMA} px\n")
    for noise in ("none", "rel", "abs"):
        t0 = time.time()
        one = make_set("one", n_one, seed, noise)
        multi = make_set("multi", n_multi, seed, noise)
        none = make_set("none", n_none, seed, noise) if n_none else None
        print(f"--- noise: {noise} (simulation + STEP {time.time() - t0:.0f} s) ---")
        print(
            f"{'method':36s} {'JI(1cp)':>8s} {'MSE':>6s} {'TP':>5s} {'FP':>5s} {'FN':>5s}"
            f" | {'JI(1-4)':>8s} {'MSE':>6s} | {'FP/track const':>14s}"
        )
        dets_multi = {}
        for name, fn in METHODS.items():
            ji1, mse1, tp, fp, fnn = jaccard(fn(one), one["cps"])
            dm = fn(multi)
            dets_multi[name] = dm
            jim, msem, *_ = jaccard(dm, multi["cps"])
            fpc = np.mean([len(c) for c in fn(none)]) if none is not None else np.nan
            print(
                f"{name:36s} {ji1:8.3f} {mse1:6.2f} {tp:5d} {fp:5d} {fnn:5d} | {jim:8.3f} "
                f"{msem:6.2f} | {fpc:14.3f}"
            )
        print("\npointwise relative error mean |D_seg/D_true - 1|, 1-4 change points:")
        raw = pointwise_error(10 ** multi["pred"], multi["d"])
        print(f"  STEP per frame (no segmentation):          {raw:.3f}")
        ests = ("mle", "cve", "cve_pooled", "step")
        print(f"  {'segmentation':40s}" + "".join(f"{e:>11s}" for e in ests))
        rows = [("TRUE segments (floor)", multi["cps"])] + list(dets_multi.items())
        for name, dm in rows:
            errs = [pointwise_error(segmented(multi, dm, e), multi["d"]) for e in ests]
            print(f"  {name:40s}" + "".join(f"{v:11.3f}" for v in errs))
        default = dets_multi["(f) (e) confirmed (package default)"]
        e_true = np.abs(segmented(multi, multi["cps"], "mle") / multi["d"] - 1)
        e_det = np.abs(segmented(multi, default, "mle") / multi["d"] - 1)
        n_det = np.array([len(c) for c in default])
        n_true = np.array([len(c) for c in multi["cps"]])
        total = e_det.mean() - e_true.mean()
        print(f"  excess of (f) over the floor (MLE) {total:.4f}, by track:", end="")
        for label, sel in (
            ("fewer", n_det < n_true),
            ("as many", n_det == n_true),
            ("more", n_det > n_true),
        ):
            part = (e_det[sel].sum() - e_true[sel].sum()) / e_det.size
            print(f"  {label} change points {sel.mean():.0%} of tracks -> {part:.4f}", end="")
        print("\n")


def tune(n: int, seed: int):
    """Grids on the tuning seed (clean and relative-noise tracks; one and 1-4 change points)."""
    print(f"== tuning seed {seed}, {n} tracks per set ==")
    sets = {(k, nz): make_set(k, n, seed, nz) for k in ("one", "multi") for nz in ("none", "rel")}

    def score(fn, **kw):
        ji, pw = [], []
        for (kind, _), s in sets.items():
            dets = fn(s, **kw)
            ji.append(jaccard(dets, s["cps"])[0])
            if kind == "multi":
                pw.append(pointwise_error(segmented(s, dets, "mle"), s["d"]))
        return ji, pw

    def show(label, vals):
        ji, pw = vals
        print(
            f"{label:40s} "
            + " ".join(f"{v:.3f}" for v in ji)
            + f" | mean {np.mean(ji):.3f} | "
            + " ".join(f"{v:.4f}" for v in pw)
        )

    print(
        "JI on (one,clean) (one,rel) (multi,clean) (multi,rel) | mean | pointwise rel. error "
        "(MLE) on (multi,clean) (multi,rel)"
    )
    for ms in (3, 5, 8):
        for pen in (0.2, 0.3, 0.38, 0.5):
            show(f"(a) STEP pen {pen} min_size {ms}", score(det_step, penalty=pen, min_size=ms))
    for pen in (0.8, 1.1, 1.4):
        show(f"(b) step sizes pen {pen}", score(det_stepsize, penalty=pen))
    for w in (0.35, 0.5, 0.7):
        for pen in (0.3, 0.45, 0.6):
            show(f"(d) stacked w {w} pen {pen}", score(det_stack, weight=w, penalty=pen))
    for ms in (5, 8):
        for pen in (0.03, 0.06):
            for thr in (2.2, 2.5, 2.8):
                show(
                    f"(c) hybrid pen {pen} thr {thr} ms {ms}",
                    score(det_hybrid, penalty=pen, threshold=thr, min_size=ms),
                )
    for ref in (0, 3, 5):
        show(f"(c) hybrid refine {ref}", score(det_hybrid, refine=ref))


def length_check(n: int, seed: int):
    """Are the per-log(T) defaults right at other track lengths? (one change point, clean)."""
    print(f"== length check (tuning seed {seed}, {n} tracks each, one change point, clean) ==")
    for n_frames in (50, 100, 400):
        one = make_set("one", n, seed, "none", n_frames)
        none = make_set("none", n, seed, "none", n_frames)
        for label, fn, grid, key in (
            ("(a) STEP", det_step, (0.15, 0.2, 0.3, 0.4, 0.5), "penalty"),
            ("(c) hybrid", det_hybrid, (2.0, 2.25, 2.5, 2.8, 3.2), "threshold"),
        ):
            row = []
            for v in grid:
                ji = jaccard(fn(one, **{key: v}), one["cps"])[0]
                fpc = np.mean([len(c) for c in fn(none, **{key: v})])
                row.append(f"{v}: {ji:.3f}/{fpc:.2f}")
            print(f"T={n_frames:4d} {label:11s} {key} -> JI/FP-per-const-track  " + "  ".join(row))


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=None, help="tracks per set (overrides the 3 below)")
    ap.add_argument("--n-one", type=int, default=2000, help="one-change-point tracks")
    ap.add_argument("--n-multi", type=int, default=2000, help="1-4 change-point tracks")
    ap.add_argument("--n-none", type=int, default=500, help="constant-D tracks (false alarms)")
    ap.add_argument("--seed", type=int, default=TEST_SEED)
    ap.add_argument("--tune", action="store_true", help="print the tuning grids instead")
    ap.add_argument("--lengths", action="store_true", help="check the penalty scaling with T")
    ap.add_argument("--switching", action="store_true", help="segmented D vs STEP (section 3)")
    ap.add_argument("--pelt", action="store_true", help="own exact DP vs ruptures.Pelt")
    ap.add_argument("--model", default="default", help="STEP D model: built-in name or path")
    args = ap.parse_args()
    global STEP_MODEL
    STEP_MODEL = args.model
    t0 = time.time()
    if args.tune:
        tune(args.n or 500, TUNE_SEED)
    elif args.lengths:
        length_check(args.n or 200, TUNE_SEED)
    elif args.switching:
        switching_report(args.n or 1000, args.seed)
    elif args.pelt:
        pelt_report(args.n or 200, args.seed)
    else:
        n = args.n
        report(n or args.n_one, n or args.n_multi, n if n is not None else args.n_none, args.seed)
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
