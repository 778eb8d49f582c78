"""What the STEP widget does with a result and where it goes: the layer (once), the messages,
the segments table, the docks it drives (plots, per-track table, colour bar) and the exports
(all through the core's one atomic table-plus-sidecar writer)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from napari.utils import notifications

from ._apply_run import apply_prepared
from ._layers import SEGMENTS_KEY, apply_results, layer_segments, results_metadata
from ._widgets_common import is_alive

__all__ = [
    "colour_choice",
    "RunOutcome",
    "prepare_outcome",
    "apply_outcome",
    "run_message",
    "refresh_segments_table",
    "status_text",
    "open_plot_dock",
    "open_table_dock",
    "table_docks",
    "show_colour_bar",
    "export",
    "export_segments",
    "MAX_TABLE_ROWS",
]

MAX_TABLE_ROWS = 5000  # the segments table shows at most this many rows (export writes all)


def colour_choice(widget) -> dict:
    """The widget's colouring for the next result: ``by``, ``auto``, ``lo``, ``hi`` (automatic
    when the typed range is empty)."""
    s = widget.settings
    colour = {"by": s.colour_by, "auto": bool(s.colour_auto), "lo": s.colour_lo, "hi": s.colour_hi}
    if not s.colour_auto and not s.colour_hi > s.colour_lo:
        colour["auto"] = True
    return colour


@dataclass
class RunOutcome:
    """A finished run, prepared for its layer in the worker thread (:func:`prepare_outcome`)."""

    results: pd.DataFrame
    summary: object  # napari_step.analysis.AnalysisSummary
    ids: list  # the selected track IDs
    params: object  # ._analysis_jobs.AnalysisParams
    prepared: object  # ._apply_run.PreparedRun
    done: np.ndarray  # sorted IDs of the run's tracks that got a STEP D
    longest: int | None  # the one of them with the most points
    message: str  # the notification


def prepare_outcome(snap, ids, params, result):
    """Worker thread, after the analysis: merge the result into the layer's snapshot and build
    what the GUI thread then only assigns (:mod:`._apply_run`).

    Parameters
    ----------
    snap : ._apply_run.LayerSnapshot
        The layer at Run time.
    ids : list of int
        The selected track IDs.
    params : ._analysis_jobs.AnalysisParams
        The run's settings.
    result : (pandas.DataFrame, AnalysisSummary) or JobError
        What the analysis job returned.

    Returns
    -------
    RunOutcome or JobError
        The prepared run (a :class:`JobError` passes unchanged).
    """
    from ._apply_run import prepare_run
    from ._jobs import JobError

    if isinstance(result, JobError):
        return result
    results, summary = result
    segments = summary.segments if params.segments else None
    prep = prepare_run(snap, results, ids, run_metadata(params, summary), segments)
    tid = results["track_id"].to_numpy(np.int64)
    ok = np.isfinite(results["step_d"].to_numpy(float))
    done, counts = np.unique(tid[ok], return_counts=True)
    longest = int(done[np.argmax(counts)]) if done.size else None
    message = run_message(results, ids, params, summary, prep.metadata.get(SEGMENTS_KEY), done)
    _warm_imports()
    return RunOutcome(results, summary, list(ids), params, prep, done, longest, message)


def _warm_imports() -> None:
    """Work the GUI thread would otherwise do, once, when the first result is shown: import
    matplotlib's Qt canvas (the colour bar's; half a second) and compile napari's numba
    kernels of Shapes layers (the outline of the picked track; over a second on the first
    Shapes layer of a session). napari's own warm-up leaves out the kernel that triangulates a
    path's edges (the outline's: 8 s to compile on a fresh install, then cached on disk, but
    loaded on first use in every session), so one small path is built here, off the GUI
    thread."""
    import importlib

    try:
        importlib.import_module(__package__ + "._colour_bar")
    except ImportError:  # pragma: no cover - the colour bar is then reported by the GUI thread
        pass
    try:  # napari's own warm-up, which its first Shapes layer would otherwise run
        from napari.layers.shapes._accelerated_triangulate_dispatch import warmup_numba_cache
    except ImportError:  # another napari: its Shapes layer warms up by itself
        return
    warmup_numba_cache()
    try:  # the outline's own path type (no Qt, no layer: a shape model only)
        from napari.layers.shapes._shapes_models import Path as ShapePath
    except ImportError:  # pragma: no cover - another napari
        return
    ShapePath(np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 1.0]]), edge_width=2.5)


def apply_outcome(widget, layer, outcome: RunOutcome) -> str:
    """Put a prepared run into its layer (GUI thread). When the layer (features, STEP
    metadata) or the colour choice changed during the run, the run is merged again into the
    layer as it is now, so nothing the user did meanwhile is lost.

    Parameters
    ----------
    widget : .step_widget.StepAnalysisWidget
        The widget that ran it (viewer, colour settings).
    layer : napari.layers.Tracks
        The analysed layer.
    outcome : RunOutcome
        From :func:`prepare_outcome`.

    Returns
    -------
    str
        The notification for the user.
    """
    prep = outcome.prepared
    if colour_choice(widget) == prep.snapshot.colour and apply_prepared(
        widget._viewer, layer, prep
    ):
        return outcome.message
    res, summary = outcome.results, outcome.summary
    params = outcome.params
    apply_results(
        widget._viewer,
        layer,
        res,
        outcome.ids,
        run_metadata(params, summary),
        summary.segments if params.segments else None,
        colour_choice(widget),
    )
    return run_message(res, outcome.ids, params, summary, layer_segments(layer), outcome.done)


def run_metadata(params, summary) -> dict:
    """The layer metadata of a run: its settings, the frame step D was read at (the one
    the acquisition check chose, not "auto") and, for the "auto" model, the one it chose."""
    md = {**params.metadata(), "frame_step": int(summary.frame_step)}
    if params.model == "auto" and summary.model:
        md["model"] = f"{params.model_name}: {summary.model}"
    return md


def run_message(results, ids, params, summary, segments, done) -> str:
    """The notification after a run (``segments``: the layer's segments table after it,
    ``done``: the IDs of the tracks that got a STEP D)."""
    msg = (
        f"STEP analysis: {len(done)} of {len(ids)} selected track(s) got D(t) "
        f"({summary.n_points} points) in {params.d_units()}"
    )
    if params.alpha and "step_alpha" in results.columns:
        n_alpha = int(np.isfinite(results["step_alpha"].to_numpy(float)).sum())
        msg += f"; alpha(t) for {n_alpha} point(s)"
    if params.segments and summary.segments is not None:
        n_new = int(summary.segments["changepoint"].sum())
        n_all = 0 if segments is None else int(segments["changepoint"].sum())
        msg += f"; {n_new} change point(s) ({n_all} in the layer)"
    if summary.messages:
        msg += "; " + "; ".join(summary.messages)
    return msg


def status_text(layer, stale: bool, done=None) -> str:
    """The STEP widget's status line for a layer (results, units, model; stale results);
    ``done``: the layer's analysed track IDs when already known."""
    from ._layers import analysed_track_ids

    done = analysed_track_ids(layer) if done is None else done
    meta = results_metadata(layer)
    if not len(done):
        return f"'{layer.name}': no results yet"
    if stale:
        return (
            f"STALE: results use pixel size {meta['pixel_size_um']:g} um and frame interval "
            f"{meta['frame_interval_s']:g} s ({meta.get('units', '?')}); Run again to "
            "update (earlier tracks are converted to the new units)"
        )
    return (
        f"'{layer.name}': {len(done)} track(s) analysed, D in "
        f"{meta.get('units', '?')}, model {meta.get('model', '?')}"
    )


def segment_headers(seg, units: str) -> list[tuple[str, str]]:
    """(column, header) of the segments table shown in the widget: track, start, end (last
    frame), D, length, then the per-segment details the table holds (duration, alpha, state,
    confinement radius), units in the headers."""
    calibrated = units != "px^2/frame"
    out = [
        ("track_id", "track"),
        ("start_frame", "start"),
        ("stop_frame", "end"),
        ("d", f"D ({units})"),
        ("n_frames", "length (frames)"),
    ]
    details = {
        "duration": f"duration ({'s' if calibrated else 'frames'})",
        "alpha": "alpha",
        "state": "state",
        "confinement_radius": f"confinement radius ({'um' if calibrated else 'px'})",
    }
    columns = [] if seg is None else list(seg.columns)
    return out + [(c, h) for c, h in details.items() if c in columns]


def _segment_cells(seg, column: str) -> list[str]:
    """The texts of one column of the segments table (empty where there is no value)."""
    from ._colour import STATE_NAMES

    col = seg[column]
    if column == "stop_frame":  # shown as the last frame (the table's stop is exclusive)
        return (col.astype(np.int64) - 1).astype(str).tolist()
    if column in ("track_id", "start_frame", "n_frames"):
        return col.astype(np.int64).astype(str).tolist()
    v = col.to_numpy(dtype=float, na_value=np.nan)
    if column == "state":
        names = np.array(list(STATE_NAMES) + [""])
        k = np.where(np.isin(v, np.arange(len(STATE_NAMES))), np.nan_to_num(v), len(STATE_NAMES))
        return names[k.astype(int)].tolist()
    return ["" if not np.isfinite(x) else f"{x:.4g}" for x in v]


def refresh_segments_table(widget) -> None:
    """Show the chosen layer's segments in the widget's table (at most
    :data:`MAX_TABLE_ROWS` rows; the per-segment details the table holds get columns)."""
    from qtpy.QtWidgets import QTableWidgetItem

    table = getattr(widget, "segments_table", None)
    if table is None or not is_alive(widget.native) or not is_alive(table):
        return
    layer = widget.tracks.value
    seg = None if layer is None else layer_segments(layer)
    units = results_metadata(layer).get("units", "?") if layer is not None else "?"
    headers = segment_headers(seg, units)
    table.setColumnCount(len(headers))
    table.setHorizontalHeaderLabels([h for _, h in headers])
    if seg is None:
        table.setRowCount(0)
        return
    seg = seg.iloc[:MAX_TABLE_ROWS]
    table.setRowCount(len(seg))
    for c, (column, _) in enumerate(headers):
        for r, text in enumerate(_segment_cells(seg, column)):
            table.setItem(r, c, QTableWidgetItem(text))


# --------------------------------------------------------------------------- docks
def _docks(viewer, kind) -> list:
    from ._widgets_common import docks_of

    return docks_of(viewer, kind)


def table_docks(viewer) -> list:
    """The live per-track table docks of a viewer."""
    from ._results_table import TrackTableWidget

    return _docks(viewer, TrackTableWidget)


def _open_dock(widget, kind, name: str, area: str = "right", tabify_with=None):
    """Show the viewer's dock of ``kind`` (created when missing, tabbed with a dock of
    ``tabify_with`` when one exists, so the results share one place beside the canvas)."""
    from qtpy.QtCore import QTimer

    viewer = widget._viewer
    found = _docks(viewer, kind)
    if found:
        dock = found[0]
    else:
        dock = kind(viewer)
        partner = _docks(viewer, tabify_with) if tabify_with is not None else []
        dw = viewer.window.add_dock_widget(dock, name=name, area=area)
        if partner:
            qt_window = dw.parent()
            partner_dw = partner[0].parent()
            while partner_dw is not None and type(partner_dw) is not type(dw):
                partner_dw = partner_dw.parent()
            if partner_dw is not None and hasattr(qt_window, "tabifyDockWidget"):
                qt_window.tabifyDockWidget(partner_dw, dw)
                QTimer.singleShot(0, dw.raise_)  # the new dock in front, once laid out
    layer = widget.tracks.value
    if layer is not None:
        dock.set_layer(layer)
    return dock


def open_plot_dock(widget):
    """Show (creating it if needed) the D(t) plot dock; it follows the widget's track."""
    from ._results_table import TrackTableWidget
    from .plot_widget import DPlotWidget

    plot = _open_dock(widget, DPlotWidget, "STEP D(t)", tabify_with=TrackTableWidget)
    plot.show_track(widget.current_track)
    return plot


def open_table_dock(widget):
    """Show (creating it if needed) the per-track results table dock."""
    from ._results_table import TrackTableWidget
    from .plot_widget import DPlotWidget

    table = _open_dock(widget, TrackTableWidget, "STEP per-track results", tabify_with=DPlotWidget)
    table.track_clicked.connect(widget.set_current_track)
    return table


def show_colour_bar(widget, layer, create: bool = True, defer: bool = False):
    """Point the colour-bar dock at ``layer`` (adding the dock, next to the canvas, when
    ``create`` and the layer is coloured by this plugin; with ``defer`` the new dock is made
    at the next turn of the Qt event loop, apart from the result that asked for it, so the
    viewer does not freeze for both at once)."""
    import sys

    coloured = layer is not None and "colour_range" in results_metadata(layer)
    if not coloured and __package__ + "._colour_bar" not in sys.modules:
        return None  # no bar yet and none needed (spares the matplotlib import)
    from ._colour_bar import ColourBarWidget

    viewer = widget._viewer
    bars = _docks(viewer, ColourBarWidget)
    if not bars and create and coloured:
        if defer:
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, lambda: _new_colour_bar(widget, layer))
            return None
        bars = [_new_colour_bar(widget, layer)]
    for bar in bars:
        bar.set_layer(layer)
    return bars[0] if bars else None


def _new_colour_bar(widget, layer):
    """The colour-bar dock (made unless one exists), pointed at ``layer``; None when the widget
    or the layer has gone meanwhile."""
    from ._colour_bar import ColourBarWidget
    from ._layers import layer_in_viewer

    viewer = widget._viewer
    if not is_alive(widget.native) or not layer_in_viewer(viewer, layer):
        return None
    bars = _docks(viewer, ColourBarWidget)
    if not bars:
        bars = [ColourBarWidget(viewer)]
        viewer.window.add_dock_widget(bars[0], name="STEP track colours", area="left")
    bars[0].set_layer(layer)
    return bars[0]


# --------------------------------------------------------------------------- exports
def export(widget, path, layer=None) -> list[str] | None:
    """Write the layer's results table (CSV or Parquet + JSON sidecar)."""
    from ._io import _file_errors, export_results
    from ._layers import analysed_track_ids

    layer = widget._checked_layer(layer if layer is not None else widget.tracks.value)
    if layer is None:
        return None
    if not analysed_track_ids(layer):
        notifications.show_warning(
            f"STEP analysis: '{layer.name}' has no results yet; exporting the tracks only"
        )
    try:
        written = export_results(layer, path)
    except _file_errors() as e:
        notifications.show_error(f"STEP analysis: export failed: {e}")
        return None
    notifications.show_info(f"STEP analysis: results written to {written[0]}")
    return written


def _ask_path(parent, title: str, default: str, filters: str) -> str:
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getSaveFileName(parent, title, default, filters)
    return path


def export_clicked(widget, *_):
    layer = widget.tracks.value
    if widget._checked_layer(layer) is None:
        return
    path = _ask_path(
        widget.native,
        "Export STEP results",
        f"{layer.name}.csv",
        "CSV (*.csv);;Parquet (*.parquet)",
    )
    if path:
        export(widget, path, layer)


def segments_metadata(layer) -> dict:
    """The JSON sidecar of a segments table: units, estimator, model, column units."""
    from ._io import export_metadata

    meta = results_metadata(layer)
    units = meta.get("units", "px^2/frame")
    md = export_metadata(
        {**layer.metadata, "napari_step": meta}, layer.name, layer.scale, layer.translate
    )
    calibrated = units != "px^2/frame"
    seg = layer_segments(layer)
    details = {"duration", "alpha", "state", "confinement_radius"}
    held = set() if seg is None else details.intersection(seg.columns)
    column_units = {
        "track_id": "",
        "segment": "",
        "start_frame": "frame",
        "stop_frame": "frame (exclusive)",
        "n_frames": "frames",
        "d": units,
        "changepoint": "",
        "duration": "s" if calibrated else "frames",
        "alpha": "",
        "state": "0 immobile, 1 confined, 2 free, 3 directed",
        "confinement_radius": "um" if calibrated else "px",
    }
    md["column_units"] = {k: v for k, v in column_units.items() if k not in details - held}
    md["table"] = "segments"
    return md


def export_segments(widget, path, layer=None) -> list[str] | None:
    """Write the layer's segments table (CSV) with a JSON sidecar, atomically."""
    from ..io import sidecar_path, write_table

    layer = widget._checked_layer(layer if layer is not None else widget.tracks.value)
    if layer is None:
        return None
    seg = layer_segments(layer)
    if seg is None:
        notifications.show_warning(
            f"STEP analysis: '{layer.name}' has no segments yet; run with "
            "'find change points (segments)' first"
        )
        return None
    p = Path(os.fspath(path))
    if p.suffix.lower() != ".csv":
        notifications.show_error(f"STEP analysis: segments are written as .csv, not {p.name}")
        return None
    seg.attrs = {}
    try:
        write_table(seg, p, metadata=segments_metadata(layer))
    except (OSError, ValueError) as e:
        notifications.show_error(f"STEP analysis: segments export failed: {e}")
        return None
    notifications.show_info(f"STEP analysis: {len(seg)} segment(s) written to {p}")
    return [str(p), str(sidecar_path(p))]


def export_segments_clicked(widget, *_):
    layer = widget.tracks.value
    if widget._checked_layer(layer) is None:
        return
    path = _ask_path(widget.native, "Export segments", f"{layer.name}_segments.csv", "CSV (*.csv)")
    if path:
        export_segments(widget, path, layer)
