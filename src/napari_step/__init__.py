"""napari-step: single-particle tracking with time-resolved diffusion coefficients (STEP).

The core library (simulation, TA-MSD, model, inference, linking, I/O) imports neither Qt nor
napari; the napari widgets live in :mod:`napari_step._napari` and load only when napari asks.
Top-level names are imported lazily so that `import napari_step` (and the readers napari calls)
does not pay for PyTorch until a model is needed.
"""

__version__ = "0.1.0"

_LAZY = {
    "predict_d": "predict",
    "predict_alpha": "predict",
    "predict_state": "states",
    "tamsd_d": "tamsd",
    "tamsd_alpha": "tamsd",
    "analyse_tracks": "analysis",
    "read_tracks": "io",
    "write_tracks": "io",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'napari_step' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
