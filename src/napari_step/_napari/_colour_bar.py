"""A small dock next to the canvas with the colour bar of the coloured Tracks layer.

napari draws no colour bar for Tracks layers; this dock shows the one the plugin uses (log10 D
over the layer's range with its units, or alpha 0..2; a legend of the four state colours when
the tracks are coloured by state), grey meaning "not analysed". The STEP
widget adds it whenever it colours tracks; it redraws when the layer's colouring changes, and
only then (a new dock pointed at a layer draws once; metadata changes that leave the colouring
as it is draw nothing).
"""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QVBoxLayout, QWidget

from ._colour import (
    ALPHA_RANGE,
    DEFAULT_RANGE,
    GREY,
    STATE_COLOURS,
    STATE_NAMES,
    colour_by,
    mpl_alpha_colormap,
    mpl_colormap,
)
from ._layers import results_metadata
from ._widgets_common import is_alive, register_dock, unwrap_viewer

__all__ = ["ColourBarWidget", "colour_bar_label"]


def colour_bar_label(layer) -> tuple[str, float, float, bool]:
    """(label, low, high, alpha?) of the colouring of ``layer`` (the default when None)."""
    if layer is not None and colour_by(layer) == "alpha":
        a, b = ALPHA_RANGE
        return (f"alpha, {a:g} to {b:g} (1: normal diffusion); grey: no alpha", a, b, True)
    meta = results_metadata(layer) if layer is not None else {}
    lo, hi = meta.get("colour_range", DEFAULT_RANGE)
    units = meta.get("units", "px^2/frame")
    name = f"'{layer.name}': " if layer is not None else ""
    return (f"{name}log10 D ({units}); grey: not analysed", float(lo), float(hi), False)


class ColourBarWidget(QWidget):
    """The colour bar of one Tracks layer's STEP colouring."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self._viewer = unwrap_viewer(napari_viewer)
        self._layer = None
        self.figure = Figure(figsize=(3.0, 0.75), dpi=90, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(60)
        self.canvas.setMaximumHeight(80)
        self.canvas.setToolTip("what the track colours in the canvas mean")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.canvas)
        self.setMaximumHeight(90)
        self.label = ""
        self.colorbar = self.legend = None
        self._drawn = None  # what the figure shows (see _what); None: nothing yet
        register_dock(self)
        QTimer.singleShot(0, self.redraw)  # the default bar, unless set_layer() drew first

    @property
    def layer(self):
        return self._layer

    def set_layer(self, layer) -> None:
        """Show the colouring of ``layer`` (and follow its changes)."""
        if layer is not self._layer:
            if self._layer is not None:
                try:
                    self._layer.events.metadata.disconnect(self.redraw)
                except (TypeError, ValueError, RuntimeError):
                    pass
            self._layer = layer
            if layer is not None:
                layer.events.metadata.connect(self.redraw)
        self.redraw()

    def _what(self) -> tuple:
        """What the figure should show: the state legend of a layer, or a bar's label and
        range."""
        if self._layer is not None and colour_by(self._layer) == "state":
            return ("state", self._layer.name)
        return ("bar", *colour_bar_label(self._layer))

    def redraw(self, *_, force: bool = False) -> None:
        """Draw the colour bar (or the state legend) of the layer, unless it shows that
        already (``force``: draw anyway)."""
        if not is_alive(self):
            return
        what = self._what()
        if what == self._drawn and not force:
            return
        self._drawn = what
        if what[0] == "state":
            self._draw_legend()
            return
        from matplotlib.cm import ScalarMappable
        from matplotlib.colorbar import Colorbar
        from matplotlib.colors import Normalize

        _, label, lo, hi, is_alpha = what
        cmap = mpl_alpha_colormap() if is_alpha else mpl_colormap()
        self.figure.clear()
        ax = self.figure.add_subplot(111)
        self.colorbar = Colorbar(
            ax, ScalarMappable(norm=Normalize(lo, hi), cmap=cmap), orientation="horizontal"
        )
        self.colorbar.set_label(label, fontsize=8)
        ax.tick_params(labelsize=8)
        self.label = label
        self.canvas.draw_idle()

    def _draw_legend(self) -> None:
        """A legend of the state colours (and grey) instead of the colour bar."""
        from matplotlib.patches import Patch

        self.figure.clear()
        self.colorbar = None
        names = [*STATE_NAMES, "no state"]
        handles = [Patch(color=c, label=n) for c, n in zip([*STATE_COLOURS, GREY], names)]
        self.legend = self.figure.legend(
            handles=handles, loc="center", ncols=3, fontsize=8, frameon=False
        )  # two rows: one row of five is cut off in the default dock width
        self.label = f"'{self._layer.name}': state: " + ", ".join(names)
        self.canvas.draw_idle()
