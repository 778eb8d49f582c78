"""The ``napari-step`` command: demo, analyze, train, benchmark-style reproductions."""

from __future__ import annotations

import argparse
import sys


def _frame_step_arg(value: str):
    """--frame-step: "auto" or a whole number of frames >= 1."""
    if value == "auto":
        return value
    try:
        k = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'auto' or a whole number of frames, got {value!r}")
    if k < 1:
        raise argparse.ArgumentTypeError(f"a frame step must be >= 1, got {k}")
    return k


def _cmd_train(args):
    from .model import DEFAULT_D_CONFIG, PAPER_D_CONFIG
    from .train import TrainConfig, train

    base = PAPER_D_CONFIG if args.config == "paper" else DEFAULT_D_CONFIG
    model_config = type(base)(**{**base.__dict__, "dim": args.dim})
    if getattr(args, "target", "d") == "alpha":  # scale-free inputs, alpha in [0, 2]
        model_config = type(base)(
            **{**model_config.__dict__, "target": "alpha", "y_range": [0.0, 2.0], "normalise": True}
        )
    tc = TrainConfig(
        batch_size=args.batch_size,
        lr=args.lr,
        total_steps=args.steps,
        seed=args.seed,
        p_drift=args.p_drift,
        drift_decades=args.drift_decades,
    )
    record = train(
        args.out,
        model_config,
        tc,
        resume=not args.restart,
        max_minutes=args.minutes,
        device=args.device,
        fit_schedule=args.fit_schedule,
        workers=args.workers,
        init_weights=args.init_from,
    )
    last = record["validation"][-1]
    if "val_mae_alpha" in last:
        print(
            f"step {record['step']}, {record['samples_seen']} tracks seen, "
            f"val MAE(alpha) {last['val_mae_alpha']:.4f} -> {args.out}"
        )
        return
    print(
        f"step {record['step']}, {record['samples_seen']} tracks seen, "
        f"val rel err {last['val_rel_err']:.4f}, L1(log10 D) {last['val_l1_log10']:.4f} "
        f"-> {args.out}"
    )


def _cmd_demo(args):
    from pathlib import Path

    from .sample import (
        SAMPLE_D_FAST,
        SAMPLE_D_SLOW,
        SAMPLE_FRAME_INTERVAL_S,
        SAMPLE_PIXEL_SIZE_UM,
        make_sample,
    )

    if not args.headless:
        import napari

        from ._napari.demo import open_demo

        viewer = napari.Viewer(title="napari-step demo")
        open_demo(viewer)
        napari.run()
        return 0

    import numpy as np

    from .io import write_tracks
    from .pipeline import run_movie
    from .plotting import save_tracks_png

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    movie, truth = make_sample(seed=args.seed)
    print(
        f"sample movie {movie.shape}, {truth.track_id.nunique()} particles; "
        f"pixel {SAMPLE_PIXEL_SIZE_UM} um, frame {SAMPLE_FRAME_INTERVAL_S} s"
    )
    bars = {}

    def progress(stage, done, total):
        from tqdm.auto import tqdm

        bar = bars.setdefault(stage, tqdm(total=total, desc=stage, unit="item"))
        bar.update(done - bar.n)

    results, summary, det = run_movie(
        movie, SAMPLE_PIXEL_SIZE_UM, SAMPLE_FRAME_INTERVAL_S, device=args.device, progress=progress
    )
    for bar in bars.values():
        bar.close()
    table_path = out / "sample_results.csv"
    write_tracks(results, table_path)
    png = save_tracks_png(
        results,
        out / "sample_tracks.png",
        title="sample movie: tracks coloured by STEP log10 D (um^2/s)",
    )
    factor = SAMPLE_PIXEL_SIZE_UM**2 / SAMPLE_FRAME_INTERVAL_S
    print(
        f"{len(det)} detections, {results.track_id.nunique()} tracks, "
        f"{summary.n_points} points analysed; " + "; ".join(summary.messages)
    )
    d = results.step_d.to_numpy()
    print(
        f"STEP D: median {np.nanmedian(d):.3g} um^2/s (sample truth: slow "
        f"{SAMPLE_D_SLOW * factor:.3g}, fast {SAMPLE_D_FAST * factor:.3g} um^2/s)"
    )
    print(f"wrote {table_path} and {png}")
    return 0


def _cmd_analyze(args):
    from .batch import analyze
    from .pipeline import DetectionParams, LinkingParams

    detection = DetectionParams(args.diameter, args.minmass, args.separation, args.invert)
    linking = LinkingParams(args.search_range, args.memory, args.link_min_length)

    summary = analyze(
        args.paths,
        args.out,
        pixel_size=args.pixel_size,
        frame_interval=args.frame_interval,
        model=args.model,
        device=args.device,
        window=args.window,
        min_length=args.min_length,
        output_format=args.format,
        scheduler=args.scheduler,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=True,
        segments=args.segments,
        detection=detection,
        linking=linking,
        alpha=args.alpha,
        states=args.states,
        frame_step=args.frame_step,
        subtract_drift=args.subtract_drift,
        andi2_dir=args.andi2,
        immobile_d=args.immobile_d,
    )
    failed = summary[summary.status == "failed"]
    n = summary.status.value_counts()
    print(
        f"{n.get('done', 0)} done, {n.get('skipped', 0)} skipped, {len(failed)} failed"
        + (f", {n['ignored']} ignored" if n.get("ignored") else "")
        + f" -> {args.out}"
        + (f" (AnDi-2 submission: {args.andi2})" if args.andi2 else "")
    )
    for _, row in summary[summary.status.isin(["failed", "ignored"])].iterrows():
        print(f"  {row.status}: {row.input}: {row.error}", file=sys.stderr)
    return 1 if len(failed) else 0


def _reproduce_attm(args, out):
    from tqdm.auto import tqdm

    from .anomalous import attm_analysis, plot_attm

    n_tracks = args.n_tracks or 1000
    bar = tqdm(total=n_tracks, desc="STEP", unit="track")
    res = attm_analysis(
        n_tracks=n_tracks,
        device=args.device,
        seed=args.seed,
        progress=lambda d, total: bar.update(d - bar.n),
    )
    bar.close()
    res.summary.to_csv(out / "attm_summary.csv", index=False)
    res.per_track.to_csv(out / "attm_per_track.csv", index=False)
    plot_attm(res, out / "attm.png")
    print(res.summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {out / 'attm_summary.csv'}, {out / 'attm_per_track.csv'} and {out / 'attm.png'}")
    return 0


def _cmd_reproduce(args):
    from pathlib import Path

    from .anomalous import plot_sbm, sbm_analysis

    out = Path(args.out or f"napari-step-{args.analysis}")
    out.mkdir(parents=True, exist_ok=True)
    if args.analysis == "attm":
        return _reproduce_attm(args, out)
    args.n_tracks = args.n_tracks or 3000
    from tqdm.auto import tqdm

    bar = tqdm(total=args.n_tracks * 2, desc="STEP", unit="track")
    done = {"n": 0}

    def progress(d, total):
        bar.update(done["n"] + d - bar.n)
        if d == total:
            done["n"] += total

    res = sbm_analysis(
        alphas=(0.1, 0.5),
        n_tracks=args.n_tracks,
        device=args.device,
        seed=args.seed,
        progress=progress,
    )
    bar.close()
    res.slopes.to_csv(out / "sbm_slopes.csv", index=False)
    plot_sbm(res, out / "sbm_mean_d.png")
    print(res.slopes.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {out / 'sbm_slopes.csv'} and {out / 'sbm_mean_d.png'}")
    return 0


def _add_train(sub) -> None:
    t = sub.add_parser(
        "train", help="train or resume a STEP model (D or alpha) on simulated tracks"
    )
    t.add_argument("--out", required=True, help="checkpoint path (resumed if it exists)")
    t.add_argument("--config", choices=["default", "paper"], default="default")
    t.add_argument("--dim", type=int, default=2, choices=[1, 2, 3])
    t.add_argument("--minutes", type=float, default=60.0, help="wall-time budget")
    t.add_argument("--steps", type=int, default=20000, help="length of the lr schedule")
    t.add_argument("--fit-schedule", action="store_true", help="size the schedule to --minutes")
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None, help="cpu, cuda (default: cuda if available)")
    t.add_argument("--workers", type=int, default=None, help="data simulation processes")
    t.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    t.add_argument(
        "--target",
        choices=["d", "alpha"],
        default="d",
        help="d: log10 D on Brownian tracks; alpha: per-frame anomalous exponent on "
        "AnDi-model tracks (output range [0, 2], scale-free inputs)",
    )
    t.add_argument(
        "--p-drift",
        type=float,
        default=0.0,
        help="D models: share of tracks whose D also drifts smoothly (power law, "
        "ramp, gradual transition) besides jumping at change points",
    )
    t.add_argument(
        "--drift-decades",
        type=float,
        default=2.0,
        help="largest total change of log10 D of a drifting track",
    )
    t.add_argument(
        "--init-from",
        default=None,
        help="fine-tune: start a fresh run from this checkpoint's weights",
    )
    t.set_defaults(func=_cmd_train)


def _add_demo(sub) -> None:
    d = sub.add_parser("demo", help="run the whole pipeline on the bundled sample movie")
    d.add_argument(
        "--headless",
        action="store_true",
        help="no GUI: write the results table and a PNG of the coloured tracks",
    )
    d.add_argument("--out", default="napari-step-demo", help="output folder (headless)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default=None)
    d.set_defaults(func=_cmd_demo)


def _add_analyze(sub) -> None:
    a = sub.add_parser("analyze", help="analyse track files or movies in batch")
    a.add_argument(
        "paths",
        nargs="+",
        help="files or glob patterns (CSV/XML/Parquet tracks, TIFF/NPY/NPZ/video movies)",
    )
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--pixel-size", type=float, default=1.0, help="um per pixel")
    a.add_argument("--frame-interval", type=float, default=1.0, help="s per frame")
    a.add_argument(
        "--model",
        default="auto",
        help="STEP D model: 'auto' (default: 'acquired' where the tracks' steps show motion blur "
        "or localisation noise, else 'default'; decided per input), 'default' (trained on exact "
        "positions), 'acquired' (2-D, trained on blurred, noisy, switching tracks) or a "
        "checkpoint path",
    )
    a.add_argument("--device", default=None)
    a.add_argument("--window", type=int, default=20, help="TA-MSD window (frames)")
    a.add_argument("--min-length", type=int, default=1, help="shortest track analysed")
    a.add_argument("--format", choices=["csv", "parquet"], default="csv")
    a.add_argument(
        "--scheduler",
        default=None,
        help="default: a local Dask cluster sized to the machine when there are "
        "several files; 'sync' (this process), 'processes', or a Dask scheduler "
        "address such as tcp://host:8786",
    )
    a.add_argument("--workers", type=int, default=None)
    a.add_argument("--overwrite", action="store_true", help="redo finished outputs")
    a.add_argument(
        "--segments",
        action="store_true",
        help="also find change points and write <name>.segments.csv per input",
    )
    a.add_argument(
        "--alpha",
        action="store_true",
        help="also predict the per-frame anomalous exponent (column step_alpha)",
    )
    a.add_argument(
        "--states",
        action="store_true",
        help="also predict the per-frame diffusive state (column step_state: 0 immobile, "
        "1 confined, 2 free, 3 directed; time in each state in <name>.tracks.csv)",
    )
    a.add_argument(
        "--frame-step",
        type=_frame_step_arg,
        default="auto",
        help="frames per step D is read at (default auto: 1 unless the tracks' steps are "
        "correlated over several frames, as in compressed video; the finding is in the sidecar)",
    )
    a.add_argument(
        "--subtract-drift",
        action="store_true",
        help="subtract each input's common drift (mean step of all its tracks per frame, "
        "smoothed over 15 frames) before reading D; written positions stay the input's",
    )
    a.add_argument(
        "--immobile-d",
        type=float,
        default=0.01,
        help="per-track table (<name>.tracks.csv): frames with D below this (um^2/s, or "
        "px^2/frame uncalibrated) count as immobile when there are no states",
    )
    a.add_argument(
        "--andi2",
        metavar="OUT_DIR",
        default=None,
        help="also write an AnDi-2 challenge submission to OUT_DIR (track_2/exp_<e>/"
        "fov_<f>.txt per exp_<e>/trajs_fov_<f>.csv input, ensemble_labels.txt per "
        "experiment); implies --segments, --alpha and --states",
    )
    g = a.add_argument_group("movies", "trackpy detection and linking for movie inputs")
    g.add_argument("--diameter", type=int, default=7, help="spot diameter (odd, px)")
    g.add_argument("--minmass", type=float, default=400.0)
    g.add_argument("--separation", type=float, default=None)
    g.add_argument("--invert", action="store_true", help="dark particles on a light background")
    g.add_argument("--search-range", type=float, default=6.0, help="linking search range (px)")
    g.add_argument("--memory", type=int, default=2, help="frames a particle may vanish")
    g.add_argument("--link-min-length", type=int, default=20, help="shortest linked track kept")
    a.set_defaults(func=_cmd_analyze)


def _add_reproduce(sub) -> None:
    r = sub.add_parser("reproduce", help="reproduce an analysis of the STEP tutorials")
    r.add_argument(
        "analysis",
        choices=["sbm", "attm"],
        help="sbm: D(t) of scaled Brownian motion; attm: D(t), D distribution and "
        "waiting times of annealed transit time motion",
    )
    r.add_argument("--out", default=None, help="output folder (default: napari-step-<analysis>)")
    r.add_argument(
        "--n-tracks",
        type=int,
        default=None,
        help="tracks per alpha for sbm (default 3000), tracks for attm (default 1000)",
    )
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default=None)
    r.set_defaults(func=_cmd_reproduce)


def build_parser() -> argparse.ArgumentParser:
    """The ``napari-step`` argument parser (subcommands train, demo, analyze, reproduce)."""
    p = argparse.ArgumentParser(prog="napari-step", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_demo, _add_analyze, _add_reproduce):
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the ``napari-step`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 success, 1 some batch inputs failed, 2 bad input (message on stderr).
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"napari-step: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
