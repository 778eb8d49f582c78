"""GUI at scale: a napari Tracks layer of N tracks (default 100 000, about 1.1 M points), analysed
from the STEP widget, coloured, plotted and tabulated in a real viewer.

Each step is timed; a QTimer ticking every 50 ms on the GUI thread records the longest gap
between its ticks during each step, i.e. how long the viewer could not react (the freeze). The
analysis runs in the widget's worker thread exactly as a click on Run does; the same tracks also
go through ``predict_d`` and the core ``analyse_tracks`` in this process, for the model-speed
comparison. Memory: the process's RSS after each step and its peak (``ru_maxrss``).

Targets (issue 16, 2-core machine): every GUI update (colouring, table fill, plot) < 2 s, the
viewer never frozen > 0.5 s, the analysis at CPU model speed. "GUI CPU" is the CPU time the GUI
thread spent in the step (its settling included): on a loaded machine the freeze (wall time)
can be twice that.

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/gui_scale.py [--n-tracks 10000]``
(``--profile`` adds the top functions, by cumulative time, of every step over the targets). The
canvas is not drawn offscreen, so OpenGL upload and drawing are not part of these figures.

``--reuse-results FILE``: the first run saves the analysis (results and summary) to FILE, later
runs with the same track settings load it instead of running the model, so timing the GUI does
not redo a minute of inference (everything after the model, merging and colouring in the
worker included, still runs). ``--layer-from-thread`` builds the Tracks layer object in a
worker thread and only adds it in the GUI thread, as a plugin can do for the layers it makes.
``--via-detect-widget``: the tracks arrive as the Detect & link widget's linking result (its
worker builds the layer, the GUI thread adds it), with the STEP widget already docked. The MSD
tab and the table of a large layer are computed in worker threads: their steps last until the
result is shown.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import time
import warnings

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

GUI_LIMIT_S, FREEZE_LIMIT_S = 2.0, 0.5


def make_tracks(n_tracks: int, mean_len: float, n_frames: int, seed: int = 0) -> pd.DataFrame:
    """Brownian tracks with geometric lengths (>= 10, the model's minimum; mean ``mean_len``) at
    random start frames, D from 0.01 to 1 px^2/frame, in a 2048 x 2048 px field: track_id,
    frame, y, x."""
    rng = np.random.default_rng(seed)
    lengths = 9 + rng.geometric(1.0 / (mean_len - 9), n_tracks)
    lengths = np.minimum(lengths, n_frames)
    starts = rng.integers(0, n_frames - lengths + 1)
    n = int(lengths.sum())
    tid = np.repeat(np.arange(n_tracks), lengths)
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    k = np.arange(n) - first  # index inside the track
    d = np.repeat(10 ** rng.uniform(-2, 0, n_tracks), lengths)
    steps = np.sqrt(2 * d)[:, None] * rng.standard_normal((n, 2))
    steps[k == 0] = rng.uniform(0, 2048, (n_tracks, 2))  # the first "step" is the start point
    pos = np.cumsum(steps, axis=0)
    pos -= np.repeat(pos[first[k == 0]] - steps[k == 0], lengths, axis=0)
    return pd.DataFrame(
        {"track_id": tid, "frame": np.repeat(starts, lengths) + k, "y": pos[:, 0], "x": pos[:, 1]}
    )


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class FreezeMeter:
    """Longest gap between the ticks of a 50 ms QTimer on the GUI thread, per labelled step."""

    def __init__(self, interval_ms: int = 50):
        from qtpy.QtCore import QTimer

        self.label = "idle"
        self.cpu0 = time.thread_time()
        self.worst: dict[str, float] = {}
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self):
        now = time.perf_counter()
        gap = now - self._last
        self._last = now
        self.worst[self.label] = max(self.worst.get(self.label, 0.0), gap)

    def start(self, label: str):
        self._tick()  # close the previous step's gap under its own label
        self.label = label
        self.cpu0 = time.thread_time()  # CPU time of the GUI thread from here

    def stop(self):
        self._tick()  # a step that blocked the loop shows up as one long gap here
        self.label = "idle"


class Bench:
    def __init__(self, app, profile: bool):
        self.app, self.profile = app, profile
        self.profile_all = False
        self.meter = FreezeMeter()
        self.rows: list[dict] = []
        self.profiles: dict[str, str] = {}
        self.worker_rows: list[tuple[str, float]] = []  # (what, s) timed in a worker thread

    def pump(self, seconds: float = 0.2):
        """Run the Qt event loop for a while (queued signals land, timers fire)."""
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            self.app.processEvents()
            time.sleep(0.005)

    def step(self, label: str, fn, *, gui: bool = True, settle: float = 0.3, until=None):
        """Time ``fn()`` on the GUI thread, then let the event loop run ``settle`` s (deferred
        redraws, e.g. the docks' single-shot timers, count to the step). ``until(out)``: the
        step lasts until it is true (a result computed in a worker thread, the event loop
        running meanwhile)."""
        prof = cProfile.Profile() if self.profile else None
        self.meter.start(label)
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        out = fn()
        while until is not None and not until(out):
            if time.perf_counter() - t0 > 600:
                raise TimeoutError(f"{label}: not done after 600 s")
            self.app.processEvents()
            time.sleep(0.002)
        call = time.perf_counter() - t0
        self.pump(settle)
        if prof:
            prof.disable()
        self.meter.stop()
        self._record(label, call, gui, prof)
        return out

    def wait_for(self, label: str, cond, timeout: float, gui: bool = False):
        """Pump events until ``cond()``; the step's time is until then."""
        prof = cProfile.Profile() if self.profile else None
        self.meter.start(label)
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        while not cond():
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"{label}: not done after {timeout:.0f} s")
            self.app.processEvents()
            time.sleep(0.002)
        call = time.perf_counter() - t0
        self.pump(0.3)
        if prof:
            prof.disable()
        self.meter.stop()
        self._record(label, call, gui, prof)

    def _record(self, label, call, gui, prof):
        freeze = self.meter.worst.get(label, 0.0)
        cpu = time.thread_time() - self.meter.cpu0
        self.rows.append(
            {
                "step": label,
                "time_s": call,
                "freeze_s": freeze,
                "gui_cpu_s": cpu,
                "rss_mb": rss_mb(),
                "gui": gui,
            }
        )
        over = (gui and call > GUI_LIMIT_S) or freeze > FREEZE_LIMIT_S
        print(
            f"  {label:<44s} {call:8.2f} s   freeze {freeze:6.2f} s   GUI CPU {cpu:5.2f} s   "
            f"RSS {rss_mb():6.0f} MB"
            f"{'   <-- over target' if over else ''}",
            flush=True,
        )
        if prof and (over or self.profile_all):
            s = io.StringIO()
            pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(18)
            self.profiles[label] = s.getvalue()


def core_reference(table: pd.DataFrame) -> dict:
    """predict_d and analyse_tracks on the same tracks, in this process (model speed)."""
    from napari_step import predict_d
    from napari_step.analysis import analyse_tracks

    tracks = [g[["y", "x"]].to_numpy() for _, g in table.groupby("track_id", sort=True)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predict_d(tracks[:64])  # load the model
        t0 = time.perf_counter()
        predict_d(tracks)
        t_predict = time.perf_counter() - t0
        t0 = time.perf_counter()
        analyse_tracks(table)
        t_analyse = time.perf_counter() - t0
    return {"predict_d": t_predict, "analyse_tracks": t_analyse}


def run(args) -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    t0 = time.perf_counter()
    table = make_tracks(args.n_tracks, args.mean_length, args.n_frames)
    lengths = table.groupby("track_id").size()
    print(
        f"{args.n_tracks} tracks, {len(table)} points (lengths {lengths.min()}..{lengths.max()}),"
        f" made in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    ref = None if args.skip_core else core_reference(table)
    if ref:
        print(
            f"  core: predict_d {ref['predict_d']:.1f} s, analyse_tracks "
            f"{ref['analyse_tracks']:.1f} s ({args.n_tracks / ref['predict_d']:.0f} tracks/s)",
            flush=True,
        )

    viewer = napari.Viewer(show=False)
    app = QApplication.instance()
    b = Bench(app, args.profile or args.profile_all)
    b.profile_all = args.profile_all
    b.pump(0.5)
    if args.reuse_results:
        _reuse_results(args.reuse_results, len(table))
    _time_prepare(b)
    if args.via_detect_widget:  # the STEP widget is docked when the linking result arrives
        widget = _open_step_widget(b, viewer)
        layer = _add_via_detect_widget(b, viewer, table, args.timeout)
    else:
        data = table[["track_id", "frame", "y", "x"]].to_numpy(float)
        if args.layer_from_thread:
            built = _build_in_thread(b, data)
            layer = b.step("add the built Tracks layer (napari)", lambda: viewer.add_layer(built))
        else:
            layer = b.step(
                "add Tracks layer (napari)",
                lambda: viewer.add_tracks(data, name="tracks"),
                gui=False,
            )
        widget = _open_step_widget(b, viewer)
    widget.tracks.value = layer
    widget.settings.mode = "all"
    widget.settings.min_length = 1
    _time_result_handling(
        widget, b, "results applied (GUI thread)", "analysis (worker; until applied)"
    )
    b.step("Run clicked (selection, job start)", lambda: widget.run(layer=layer))
    b.wait_for("analysis (worker; until applied)", lambda: not widget.running, timeout=args.timeout)
    b.step("colour range typed (recolour)", lambda: _set_range(widget, -2.5, 0.5))
    b.step("colour range auto (recolour)", lambda: setattr(widget.settings, "colour_auto", True))
    plot = b.step("open plot dock (D(t), histogram)", widget.open_plot_dock)
    tid = int(table["track_id"].iloc[len(table) // 2])
    b.step("pick a track (plot, outline)", lambda: widget.set_current_track(tid))
    for name in ("histogram", "MSD"):  # the plot dock's other tabs, where it has them
        index = _tab_index(plot, name)
        if index >= 0:
            done = (lambda _: plot.msd_data is not None) if name == "MSD" else None
            b.step(f"{name} tab", lambda i=index: plot.tabs.setCurrentIndex(i), until=done)
    plot.tabs.setCurrentIndex(0)
    b.pump(0.3)
    tbl = b.step(
        "open per-track table", widget.open_table_dock, until=lambda t: t.frame is not None
    )
    b.step("sort table by a column", lambda: tbl.view.sortByColumn(2, _descending()))
    b.step("pick a table row", lambda: tbl.select_row(3))
    report(b, ref, args)
    viewer.close()


def _open_step_widget(b: Bench, viewer):
    from napari_step._napari.step_widget import StepAnalysisWidget

    widget = b.step("open STEP widget", lambda: StepAnalysisWidget(viewer))
    b.step("dock STEP widget", lambda: viewer.window.add_dock_widget(widget, name="STEP"))
    return widget


def _add_via_detect_widget(b: Bench, viewer, table: pd.DataFrame, timeout: float):
    """The tracks added by the Detect & link widget, as a linking result of a movie (detection
    and linking replaced by the table itself: the widget's worker builds the Tracks layer,
    the GUI thread adds it; the STEP widget and the other docks react to the new layer)."""
    from napari_step._napari import detect_widget as dw

    _gl_answers_offscreen()
    n_frames = int(table["frame"].max()) + 1
    movie = np.random.default_rng(1).random((n_frames, 64, 64), dtype=np.float32)
    viewer.add_image(movie, name="movie")
    det = b.step("open Detect & link widget", lambda: dw.DetectLinkWidget(viewer))
    b.step("dock Detect & link widget", lambda: viewer.window.add_dock_widget(det, name="Detect"))
    while det._suggest_busy or det._preview_busy:  # its suggestion and preview on the noise
        b.pump(0.1)
    linked = table[["track_id", "frame", "y", "x"]].copy()

    def job(_movie, _detection, _linking, processes=None):
        yield n_frames, n_frames
        return linked.drop(columns="track_id"), linked  # (detections, linked tracks)

    dw.detect_job = job
    back_to = "Detect & link (worker; until the layer is added)"
    _time_result_handling(det, b, "linking result added (GUI thread)", back_to, "_on_detected")
    b.step("Detect & link clicked (job start)", det.detect)
    b.wait_for(back_to, lambda: not det.running, timeout=timeout)
    return det._last_result


def _gl_answers_offscreen() -> None:
    """Offscreen Qt has no OpenGL context, and napari's Image visual asks it for extensions and
    texture sizes: vispy's ``glGetParameter`` answers with safe defaults there (nothing is
    drawn offscreen; the tests' conftest does the same)."""
    if os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        return
    from vispy.gloo import gl

    real = gl.glGetParameter
    defaults = {gl.GL_EXTENSIONS: "", gl.GL_MAX_TEXTURE_SIZE: 4096, 32883: 2048}

    def get_parameter(pname):
        try:
            value = real(pname)
        except AttributeError:  # no context
            value = None
        return value if value else defaults.get(pname, value)

    gl.glGetParameter = get_parameter  # after the viewer (its canvas resets vispy's gl)
    from napari._vispy.utils import gl as napari_gl

    for cached in ("get_gl_extensions", "get_max_texture_sizes"):  # asked without answers
        getattr(getattr(napari_gl, cached, None), "cache_clear", lambda: None)()


def _time_result_handling(
    widget, b: Bench, label: str, back_to: str, name: str = "_on_result"
) -> None:
    """Time the widget's result handler (GUI thread) as a step of its own, so the analysis
    step's freeze is what the running worker costs the GUI thread."""
    handler = getattr(widget, name, None)
    if handler is None:  # the widget changed: the analysis step then includes it
        return

    def timed(*a, **kw):
        prof = cProfile.Profile() if b.profile else None
        b.meter.start(label)
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        try:
            return handler(*a, **kw)
        finally:
            call = time.perf_counter() - t0
            if prof:
                prof.disable()
            b.meter.stop()
            b._record(label, call, True, prof)
            b.meter.label = back_to

    setattr(widget, name, timed)  # run() binds the handler when the job starts


def _build_in_thread(b: Bench, data: np.ndarray):
    """napari's Tracks layer object built in a worker thread (the GUI thread pumps events)."""
    import threading

    from napari.layers import Tracks

    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("layer", Tracks(data, name="tracks")))
    b.meter.start("build Tracks layer (worker thread)")
    t0 = time.perf_counter()
    thread.start()
    while thread.is_alive():
        b.app.processEvents()
        time.sleep(0.005)
    b.meter.stop()
    b._record("build Tracks layer (worker thread)", time.perf_counter() - t0, False, None)
    return out["layer"]


def _reuse_results(path: str, n_points: int) -> None:
    """Run the widget's analysis once and keep it in ``path``; later runs load it (the model
    is skipped, everything after it runs as usual)."""
    import pickle
    from pathlib import Path

    from napari_step._napari import _analysis_jobs, step_widget
    from napari_step._napari._jobs import JobError

    # the widget runs analyse_layer_job, which calls _analysis_jobs.analyse_job (older widgets
    # call step_widget.analyse_job): both names are replaced
    p, real = Path(path), _analysis_jobs.analyse_job
    if p.is_file():
        with open(p, "rb") as f:
            saved = pickle.load(f)
        if len(saved[0]) != n_points:
            raise SystemExit(f"{p} holds another track set ({len(saved[0])} rows); delete it")
        print(f"  analysis loaded from {p} (the model is not run)", flush=True)

        def job(*_args, **_kw):
            yield 1
            return saved

    else:

        def job(*args, **kw):
            out = yield from real(*args, **kw)
            if not isinstance(out, JobError):
                with open(p, "wb") as f:
                    pickle.dump(out, f)
            return out

    _analysis_jobs.analyse_job = step_widget.analyse_job = job


def _time_prepare(b: Bench) -> None:
    """Record how long the worker spends preparing a result for the layer (merge, colours)."""
    from napari_step._napari import _step_outputs

    real = getattr(_step_outputs, "prepare_outcome", None)
    if real is None:  # an older widget: the GUI thread does it all
        return

    def timed(*a, **kw):
        t0 = time.perf_counter()
        out = real(*a, **kw)
        b.worker_rows.append(("result prepared (worker thread)", time.perf_counter() - t0))
        return out

    _step_outputs.prepare_outcome = timed


def _tab_index(plot, name: str) -> int:
    tabs = plot.tabs
    return next((i for i in range(tabs.count()) if tabs.tabText(i).startswith(name)), -1)


def _set_range(widget, lo, hi):
    s = widget.settings
    s.colour_auto = False
    s.colour_lo, s.colour_hi = lo, hi


def _descending():
    from qtpy.QtCore import Qt

    return Qt.SortOrder.DescendingOrder


def report(b: Bench, ref, args) -> None:
    rows = pd.DataFrame(b.rows)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gui = rows[rows.gui]
    print(
        f"\npeak RSS {peak:.0f} MB; longest freeze {rows.freeze_s.max():.2f} s "
        f"({rows.loc[rows.freeze_s.idxmax(), 'step']}); slowest GUI update "
        f"{gui.time_s.max():.2f} s ({gui.loc[gui.time_s.idxmax(), 'step']})"
    )
    run = rows[rows.step.str.startswith("analysis")].iloc[0]  # Run to results applied
    analysis, worker_freeze = run.time_s, run.freeze_s  # freeze: results applied excluded
    if ref:
        print(
            f"analysis from the widget (Run to results applied) {analysis:.1f} s vs predict_d "
            f"{ref['predict_d']:.1f} s (x{analysis / ref['predict_d']:.2f}) and analyse_tracks "
            f"{ref['analyse_tracks']:.1f} s (x{analysis / ref['analyse_tracks']:.2f}); longest "
            f"GUI freeze while the worker ran {worker_freeze:.2f} s"
        )
    over = rows[((rows.gui) & (rows.time_s > GUI_LIMIT_S)) | (rows.freeze_s > FREEZE_LIMIT_S)]
    print(
        f"over target ({GUI_LIMIT_S:g} s per GUI update, {FREEZE_LIMIT_S:g} s freeze): "
        f"{', '.join(over.step) if len(over) else 'none'}"
    )
    for label, t in b.worker_rows:
        print(f"{label}: {t:.2f} s (no GUI freeze: off the GUI thread)")
    for label, text in b.profiles.items():
        print(f"\n--- profile: {label}\n{text}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n-tracks", type=int, default=100_000)
    ap.add_argument("--mean-length", type=float, default=11.0, help="mean points per track")
    ap.add_argument("--n-frames", type=int, default=500, help="frames of the movie")
    ap.add_argument("--timeout", type=float, default=1800, help="s to wait for the analysis")
    ap.add_argument("--skip-core", action="store_true", help="skip the predict_d reference")
    ap.add_argument("--profile", action="store_true", help="profile the steps over target")
    ap.add_argument("--profile-all", action="store_true", help="profile every step")
    ap.add_argument(
        "--reuse-results",
        metavar="FILE",
        help="save the analysis to FILE (first run) or load it from there (later runs)",
    )
    ap.add_argument(
        "--via-detect-widget",
        action="store_true",
        help="the tracks arrive as the Detect & link widget's linking result (STEP widget open)",
    )
    ap.add_argument(
        "--layer-from-thread",
        action="store_true",
        help="build the Tracks layer in a worker thread, add it in the GUI thread",
    )
    run(ap.parse_args())


if __name__ == "__main__":
    main()
