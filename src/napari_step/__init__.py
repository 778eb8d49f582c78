"""napari-step: single-particle tracking with time-resolved diffusion coefficients (STEP).

The core library (simulation, TA-MSD, model, inference, linking, I/O) imports neither Qt nor
napari; the napari widgets live in :mod:`napari_step._napari` and load only when napari asks.
"""

__version__ = "0.1.0"

from .analysis import analyse_tracks
from .predict import predict_d
from .tamsd import tamsd_alpha, tamsd_d

__all__ = ["predict_d", "tamsd_d", "tamsd_alpha", "analyse_tracks", "__version__"]
