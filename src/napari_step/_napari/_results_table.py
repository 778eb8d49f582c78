"""The per-track results dock: one row per analysed track (:func:`napari_step.track_summary`),
sortable, a click picking the track (plots, outline in the canvas), exportable as CSV/Parquet.
Ctrl- or shift-clicking rows selects several tracks: they are outlined together in the canvas
and become the STEP widget's typed-ID selection (as a lasso in the D-alpha tab does).

The table model is lazy (:class:`FrameModel`): it keeps the columns as numpy arrays and
formats only the cells Qt draws, and sorts with one ``argsort``, so 100 000 rows fill at once.
The summary of a layer of at least ``ASYNC_POINTS`` points is computed in a worker thread (the
dock says so meanwhile), so opening the table never freezes the viewer for it.
"""

from __future__ import annotations

import os
from functools import partial

import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox
from napari.layers import Tracks
from napari.utils import notifications
from psygnal import Signal
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ._jobs import JobError
from ._layers import layer_in_viewer, results_metadata
from ._widgets_common import (
    FollowsTracks,
    compact_combo,
    is_alive,
    layer_choices,
    register_dock,
    unwrap_viewer,
)

__all__ = ["ASYNC_POINTS", "FrameModel", "TrackTableWidget", "layer_track_summary", "summarise"]

ASYNC_POINTS = 200_000  # layers with at least this many points are summarised in a worker


def summarise(data: np.ndarray, features: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """One row per analysed track of napari Tracks ``data`` and ``features`` (read, never
    modified) with the layer's STEP metadata ``meta`` (units, pixel size, frame interval)."""
    from ..track_summary import track_summary
    from ..tracks import from_napari

    table = from_napari(data, features)
    table.attrs = {"napari_step": meta}
    return track_summary(
        table,
        pixel_size=float(meta.get("pixel_size_um", 1.0)),
        frame_interval=float(meta.get("frame_interval_s", 1.0)),
    )


def _summary_job(data, features, meta):
    """:func:`summarise` for a worker thread: the table or a :class:`JobError`."""
    try:
        return summarise(data, features, meta)
    except (ValueError, MemoryError) as e:
        return JobError(str(e))


def _snapshot(layer) -> tuple:
    """What the summary reads from a layer (the arrays themselves, no copy)."""
    return np.asarray(layer.data), layer.features, dict(results_metadata(layer))


def layer_track_summary(layer) -> pd.DataFrame | None:
    """One row per analysed track of a Tracks layer (None before any analysis)."""
    if "step_d" not in layer.features.columns:
        return None
    return summarise(*_snapshot(layer))


def _format(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if not np.isfinite(v) else f"{v:.4g}"
    return str(v)


class FrameModel(QAbstractTableModel):
    """A read-only, sortable Qt model over a DataFrame (cells formatted on demand)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._columns: list[str] = []
        self._arrays: list[np.ndarray] = []
        self._order = np.arange(0)

    def set_frame(self, frame: pd.DataFrame | None) -> None:
        self.beginResetModel()
        frame = pd.DataFrame() if frame is None else frame
        self._columns = [str(c) for c in frame.columns]
        self._arrays = [frame[c].to_numpy() for c in frame.columns]
        self._order = np.arange(len(frame))
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()):  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._order)

    def columnCount(self, parent=QModelIndex()):  # noqa: B008
        return 0 if parent.isValid() else len(self._columns)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return _format(self._arrays[index.column()][self._order[index.row()]])
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self._columns[section] if section < len(self._columns) else None
        return str(section + 1)

    def sort(self, column, order=Qt.SortOrder.AscendingOrder):
        if not self._arrays or column < 0:
            return
        self.layoutAboutToBeChanged.emit()
        values = self._arrays[column]
        if values.dtype.kind == "f":
            nan = np.isnan(values)
            key = np.where(nan, np.inf, values)
            idx = np.argsort(-key if order == Qt.SortOrder.DescendingOrder else key, kind="stable")
            idx = np.concatenate([idx[~nan[idx]], idx[nan[idx]]])  # NaN last either way
        else:
            idx = np.argsort(values, kind="stable")
            if order == Qt.SortOrder.DescendingOrder:
                idx = idx[::-1]
        self._order = idx
        self.layoutChanged.emit()

    def value(self, row: int, column: str):
        """The value in a displayed row (after sorting) of a named column."""
        return self._arrays[self._columns.index(column)][self._order[row]]


class TrackTableWidget(FollowsTracks, QWidget):
    """Dock: per-track results of a Tracks layer."""

    track_clicked = Signal(int)

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self._viewer = viewer = unwrap_viewer(napari_viewer)
        self._layer = None
        self.frame: pd.DataFrame | None = None
        self.layer_choice = ComboBox(
            label="tracks",
            choices=layer_choices(viewer, Tracks),
            tooltip="the Tracks layer whose results are listed",
        )
        self.model = FrameModel(self)
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.setSortingEnabled(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        header = self.view.verticalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        header.setDefaultSectionSize(20)
        header.setVisible(False)
        # column widths from the header and the first rows, not from every row (100 000 tracks)
        self.view.horizontalHeader().setResizeContentsPrecision(50)
        self.view.setToolTip(
            "one row per analysed track; click a header to sort, a row to "
            "pick the track (plots, outline in the canvas); ctrl/shift-click rows to "
            "select several tracks (outlined, and chosen for the next Run)"
        )
        self.view.clicked.connect(self._on_row)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.export_button = QPushButton("Export table...")
        self.export_button.setToolTip("write this table as CSV or Parquet with a JSON sidecar")
        self.export_button.clicked.connect(self._export_clicked)
        compact_combo(self.layer_choice.native)
        top = QHBoxLayout()
        top.addWidget(self.layer_choice.native)
        top.addWidget(self.export_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(top)
        lay.addWidget(self.info)
        lay.addWidget(self.view)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self.refresh)
        self.layer_choice.changed.connect(self.set_layer)
        register_dock(self)
        self._follow_tracks(viewer, self.layer_choice)
        self.set_layer(self.layer_choice.value)

    @property
    def layer(self):
        return self._layer

    def _tracks_followed(self):
        self.set_layer(self.layer_choice.value)

    def _schedule(self, *_):
        if is_alive(self) and is_alive(self._timer):
            self._timer.start()

    def set_layer(self, layer) -> None:
        """List the per-track results of ``layer`` (and follow its changes)."""
        if layer is not self._layer:
            if self._layer is not None:
                try:
                    self._layer.events.metadata.disconnect(self._schedule)
                except (TypeError, ValueError, RuntimeError):
                    pass
            self._layer = layer
            if layer is not None:
                layer.events.metadata.connect(self._schedule)
                if self.layer_choice.value is not layer:
                    with self.layer_choice.changed.blocked():
                        try:
                            self.layer_choice.value = layer
                        except ValueError:
                            pass
        self.refresh()

    def _results_key(self):
        """What the table depends on: the layer, its result values and how they were made
        (not the colouring, which changes the metadata without changing the table)."""
        layer = self._layer
        if layer is None or "step_d" not in layer.features.columns:
            return (id(layer), None)
        meta = {k: str(v) for k, v in results_metadata(layer).items() if not k.startswith("colour")}
        step_d = np.ascontiguousarray(layer.features["step_d"].to_numpy(float))
        return (id(layer), tuple(sorted(meta.items())), len(step_d), hash(step_d.tobytes()))

    def refresh(self, force: bool = False) -> None:
        """Recompute the table from the layer (one vectorised summary, in a worker thread for
        a large layer) when its results changed (or with ``force``)."""
        if not is_alive(self):
            return
        key = self._results_key()
        if not force and key == getattr(self, "_key", None):
            return
        self._key = key
        layer = self._layer
        if layer is None or not layer_in_viewer(self._viewer, layer) or key[1] is None:
            return self._show(layer, None)
        if len(layer.data) < ASYNC_POINTS:
            try:
                return self._show(layer, layer_track_summary(layer))
            except ValueError as e:
                return self._show(layer, JobError(str(e)))
        from napari.qt.threading import create_worker

        self.info.setText(f"'{layer.name}': summarising the analysed tracks...")
        self._worker = create_worker(_summary_job, *_snapshot(layer), _start_thread=False)
        self._worker.returned.connect(partial(self._summarised, layer, key))
        self._worker.start()

    def _summarised(self, layer, key, frame) -> None:
        """A worker's summary: shown unless the layer or its results changed meanwhile."""
        if is_alive(self) and key == getattr(self, "_key", None) and layer is self._layer:
            self._show(layer, frame)

    def _show(self, layer, frame) -> None:
        """Fill the table with ``frame`` (None: empty; a JobError: empty, with the reason)."""
        if isinstance(frame, JobError):
            self.info.setText(f"no table: {frame.message}")
            frame = None
        elif frame is None:
            self.info.setText("no results yet: run the STEP analysis")
        self.frame = frame
        self.model.set_frame(frame)
        if frame is None:
            return
        units = (frame.attrs.get("napari_step") or {}).get("units", "?")
        self.info.setText(f"'{layer.name}': {len(frame)} analysed track(s); D in {units}")
        self.view.resizeColumnsToContents()

    def _on_row(self, index) -> None:
        if not index.isValid() or self.frame is None:
            return
        rows = sorted(i.row() for i in self.view.selectionModel().selectedRows())
        if len(rows) > 1:
            self.select_rows(rows, pick=index.row())
        else:
            self.select_row(index.row())

    def select_rows(self, rows, pick: int | None = None) -> list[int]:
        """Select the tracks of several displayed rows: they are outlined in the canvas and
        become the STEP widget's typed-ID selection; the track of row ``pick`` (default: the
        first) is the picked one (plots follow). Returns the selected track IDs."""
        from ._dalpha_plot import select_in_step_widgets
        from ._selection_outline import outline_tracks

        rows = [int(r) for r in rows]
        ids = sorted({int(self.model.value(r, "track_id")) for r in rows})
        if not ids or self._layer is None:
            return []
        select_in_step_widgets(self._viewer, ids)
        outline_tracks(self._viewer, self._layer, ids)
        self._pick(int(self.model.value(rows[0] if pick is None else int(pick), "track_id")))
        return ids

    def select_row(self, row: int) -> int:
        """Pick the track in a displayed row: plots and canvas outline follow."""
        tid = int(self.model.value(row, "track_id"))
        self.view.selectRow(row)
        self._pick(tid)
        return tid

    def _pick(self, tid: int) -> None:
        """Outline track ``tid`` as the picked one and show it in the plot docks."""
        from ._layers import highlight_track
        from .plot_widget import plot_docks

        if self._layer is not None:
            highlight_track(self._viewer, self._layer, tid)
            for plot in plot_docks(self._viewer):
                plot.set_layer(self._layer)
                plot.show_track(tid)
        self.track_clicked.emit(tid)

    def export(self, path) -> str | None:
        """Write the table (CSV or Parquet by suffix) with a JSON sidecar, atomically."""
        from ..io import write_table

        if self.frame is None:
            notifications.show_warning("STEP per-track table: nothing to export yet")
            return None
        md = dict(self.frame.attrs.get("napari_step") or {})
        md.update({"table": "per-track summary", "layer": self._layer.name})
        try:
            written = write_table(self.frame, os.fspath(path), metadata=md)
        except (OSError, ValueError) as e:
            notifications.show_error(f"STEP per-track table: export failed: {e}")
            return None
        notifications.show_info(
            f"STEP per-track table: {len(self.frame)} row(s) written to {written}"
        )
        return str(written)

    def _export_clicked(self, *_):
        from qtpy.QtWidgets import QFileDialog

        if self._layer is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export per-track table",
            f"{self._layer.name}.tracks.csv",
            "CSV (*.csv);;Parquet (*.parquet)",
        )
        if path:
            self.export(path)
