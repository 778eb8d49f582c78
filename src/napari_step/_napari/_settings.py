"""One settings object behind the STEP analysis widget, synced both ways with its controls.

The panels of :mod:`.step_widget` show the fields of :class:`AnalysisSettings`; :func:`bind`
keeps a field and its control equal in both directions (a control edited by the user sets the
field; a field set by code updates the control without echoing back), the way btrack's plugin
syncs its configuration to its widgets. The widget's logic reads the settings, never the
controls, so a value that a control can only show rounded (1/24 s in a 4-decimal box) stays
exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from psygnal import evented

from ._colour import COLOUR_BY, DEFAULT_RANGE

__all__ = [
    "AnalysisSettings",
    "bind",
    "set_quietly",
    "colour_from_layer",
    "UNITS_CHOICES",
    "CALIBRATED",
    "UNCALIBRATED",
]

CALIBRATED = "um and s (calibrated)"
UNCALIBRATED = "px and frames (uncalibrated)"
UNITS_CHOICES = (CALIBRATED, UNCALIBRATED)


@evented
@dataclass
class AnalysisSettings:
    """What the STEP analysis widget will do on Run (and how it colours the result).

    ``pixel_size_um`` and ``frame_interval_s`` count only with ``units == CALIBRATED``; with
    ``UNCALIBRATED`` D is in px^2/frame whatever they hold. ``colour_lo``/``colour_hi`` are the
    log10 D colour range in the results' units; with ``colour_auto`` they follow the data.
    """

    mode: str = "all"
    min_length: int = 20
    track_ids: str = ""
    units: str = UNCALIBRATED
    pixel_size_um: float = 1.0
    frame_interval_s: float = 1.0
    model: str = ""
    device: str = "auto"
    tamsd_window: int = 20
    subtract_drift: bool = False
    segments: bool = False
    estimator: str = "mle"
    alpha: bool = False
    states: bool = False
    colour_by: str = COLOUR_BY[0]
    colour_auto: bool = True
    colour_lo: float = float(DEFAULT_RANGE[0])
    colour_hi: float = float(DEFAULT_RANGE[1])

    @property
    def calibrated(self) -> bool:
        return self.units == CALIBRATED

    def scale(self) -> tuple[float, float]:
        """(pixel size um, frame interval s) the analysis uses: (1, 1) when uncalibrated."""
        if not self.calibrated:
            return 1.0, 1.0
        return float(self.pixel_size_um), float(self.frame_interval_s)

    def d_units(self) -> str:
        """The D units of a run with these settings (an explicit choice, not guessed from
        the numbers: a calibrated pixel of 1.0 um and 1.0 s stays um^2/s)."""
        return "um^2/s" if self.calibrated else "px^2/frame"


def bind(settings, controls: dict) -> None:
    """Keep ``settings.<field>`` and ``controls[field].value`` equal in both directions.

    Parameters
    ----------
    settings : AnalysisSettings
        The evented settings object.
    controls : dict
        Field name -> magicgui value widget.
    """
    for name, widget in controls.items():
        _bind_one(settings, name, widget)


def _bind_one(settings, name: str, widget) -> None:
    def to_settings(value):
        if getattr(settings, name) != value:
            setattr(settings, name, value)

    def to_widget(value):
        if widget.value != value:
            with widget.changed.blocked():
                widget.value = value

    to_widget(getattr(settings, name))
    widget.changed.connect(to_settings)
    getattr(settings.events, name).connect(to_widget)


def set_quietly(settings, owner, **values) -> None:
    """Set settings fields without their reactions (no recolouring), and show the new values
    in the controls of ``owner`` named like the fields (without echoing back)."""
    with settings.events.blocked():
        for name, value in values.items():
            setattr(settings, name, value)
    for name in values:
        widget = getattr(owner, name, None)
        if widget is not None:
            with widget.changed.blocked():
                widget.value = getattr(settings, name)


def colour_from_layer(meta: dict) -> dict:
    """The colour settings stored in a layer's ``napari_step`` metadata (field -> value)."""
    out: dict = {}
    if "colour_range" in meta:
        out["colour_lo"], out["colour_hi"] = (float(v) for v in meta["colour_range"])
    if "colour_auto" in meta:
        out["colour_auto"] = bool(meta["colour_auto"])
    if meta.get("colour_by") in COLOUR_BY:
        out["colour_by"] = meta["colour_by"]
    return out
