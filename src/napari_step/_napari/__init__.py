"""napari integration of napari-step: reader, writer, sample data, widgets and the demo.

Everything here is loaded lazily by napari through the npe2 manifest (``napari.yaml``); the core
library never imports this package. Modules:

- :mod:`.step_widget` (STEP analysis dock) over :mod:`._settings` (one evented settings object),
  :mod:`._step_panels` (its panels), :mod:`._step_selection` (which tracks, mouse picking) and
  :mod:`._step_outputs` (result -> layer, messages, docks it drives, exports).
- :mod:`.plot_widget` (D(t), histogram and MSD tabs; :mod:`._msd_plot`),
  :mod:`._results_table` (per-track results dock), :mod:`._colour_bar` (colour-bar dock).
- :mod:`.detect_widget` (Detect & link dock) over :mod:`._detection_jobs`.
- :mod:`._colour`: the NaN-safe colouring of Tracks layers (range from the data, blending),
  used by the widget and the reader alike.
- :mod:`._layers`: track table <-> Tracks layer helpers; building layers in one place (results
  merged and coloured with one features update, change points, the picked track's outline).
- :mod:`._analysis_jobs`, :mod:`._jobs`: the jobs the widgets run in worker threads, as plain
  generators built on the core.
- :mod:`._widgets_common`: the background-job mixin (Run/Cancel, progress bar), scrollable docks,
  following the newest or selected Tracks layer.
- :mod:`._selection`: tracks by length, inside shapes, nearest to a click.
- :mod:`._io`: reader, writer and results export (via :mod:`napari_step.io`).
- :mod:`._sample_data`: the sample-data contribution (movie + ground-truth tracks).
- :mod:`.demo`: :func:`open_demo`, the whole workflow on the sample in a viewer.
"""
