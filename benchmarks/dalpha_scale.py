"""Time the D-alpha tab and the selection outline at scale, in a real (hidden) napari viewer.

N tracks of 10 points with random per-frame results (log10 D, alpha, a state per half track):
the D-alpha tab per track and per segment (first draw, a pick's redraw), a lasso over half the
tracks (typed IDs + the canvas outline) and the outline alone. Each time includes the idle
redraws the step queues (the plots of the picked track). Run::

    QT_QPA_PLATFORM=offscreen python benchmarks/dalpha_scale.py --tracks 100000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def timed(what: str, fn) -> None:
    t0 = time.perf_counter()
    out = fn()
    print(f"{what:<38s} {time.perf_counter() - t0:6.2f} s  {out if out is not None else ''}")


def main(n_tracks: int, length: int = 10) -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_step._napari._layers import highlight_track
    from napari_step._napari._selection_outline import outline_tracks
    from napari_step._napari.step_widget import StepAnalysisWidget

    rng = np.random.default_rng(0)
    tid = np.repeat(np.arange(n_tracks), length)
    start = np.repeat(rng.random((n_tracks, 2)) * 2000, length, axis=0)
    data = np.column_stack([tid, np.tile(np.arange(length), n_tracks), start])
    data[:, 2:] += rng.normal(size=(len(data), 2)).cumsum(axis=0) * 0.1
    state = np.repeat(rng.integers(0, 4, 2 * n_tracks), length // 2)[: len(data)]
    feats = pd.DataFrame(
        {
            "step_log10_d": rng.normal(size=len(data)),
            "step_alpha": 2 * rng.random(len(data)),
            "step_state": state.astype(float),
        }
    )
    viewer = napari.Viewer(show=False)
    app = QApplication.instance()
    layer = viewer.add_tracks(data, features=feats, name="scale")
    step = StepAnalysisWidget(viewer)
    viewer.window.add_dock_widget(step)
    plot = step.open_plot_dock()
    panel = plot.dalpha
    print(f"{n_tracks} tracks, {len(data)} points")

    def show_tab():  # the figures draw when idle: processEvents runs those draws
        plot.tabs.setCurrentIndex(3)
        app.processEvents()
        return len(panel.points)

    def switch(mode):
        panel.mode = mode
        app.processEvents()
        return len(panel.points)

    def pick():
        step.set_current_track(123)
        app.processEvents()

    def lasso():
        selected = panel.lasso_select([(-1, -9), (1, -9), (1, 9), (-1, 9)])
        app.processEvents()
        return len(selected)

    highlight_track(viewer, layer, 0)  # napari's first Shapes layer warms numba up (1 s)

    timed("D-alpha tab shown (per track)", show_tab)
    for mode in ("per track", "per segment"):
        timed(f"switch to {mode}", lambda m=mode: switch(m))
        timed("  pick a track (ring + plots)", pick)
        timed("  lasso over alpha < 1 (tracks)", lasso)
    every = range(n_tracks)
    timed("outline of every track (pieces)", lambda: len(outline_tracks(viewer, layer, every).data))
    timed(
        "outline of 10 tracks (pieces)", lambda: len(outline_tracks(viewer, layer, range(10)).data)
    )
    viewer.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracks", type=int, default=100_000)
    main(p.parse_args().tracks)
