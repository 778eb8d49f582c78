"""napari integration of napari-step: reader, writer, sample data, widgets and the demo.

Everything here is loaded lazily by napari through the npe2 manifest (``napari.yaml``); the core
library never imports this package. Modules:

- :mod:`._colour`: the fixed-range, NaN-safe colouring of Tracks layers by log10 D.
- :mod:`._layers`: track table <-> Tracks layer helpers, merging of results into features.
- :mod:`._pipeline`: the jobs the widgets run in worker threads (detection + linking, chunked
  analysis) as plain generators built on the core (``tracks``, ``analysis``, ``pipeline``).
- :mod:`._selection`: tracks by length, inside shapes, nearest to a click.
- :mod:`._io`: reader, writer and results export (via :mod:`napari_step.io`).
- :mod:`._sample`: the sample-data contribution (movie + ground-truth tracks).
- :mod:`.detect_widget`, :mod:`.step_widget`, :mod:`.plot_widget`: the dock widgets.
- :mod:`.demo`: :func:`open_demo`, the whole workflow on the sample in a viewer.
"""
