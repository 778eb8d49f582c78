"""Sample-data contribution: the rendered sample movie and its ground-truth tracks."""

from __future__ import annotations

import numpy as np

from ..sample import SAMPLE_FRAME_INTERVAL_S, SAMPLE_PIXEL_SIZE_UM, make_sample
from ..tracks import to_napari

__all__ = ["sample_data", "SAMPLE_MOVIE_NAME", "SAMPLE_TRUTH_NAME"]

SAMPLE_MOVIE_NAME = "STEP sample movie"
SAMPLE_TRUTH_NAME = "STEP sample ground truth"


def sample_data(n_particles: int = 30, n_frames: int = 200, shape=(256, 256), seed: int = 0):
    """[(movie, kwargs, 'image'), (tracks, kwargs, 'tracks')] for napari.

    Both layers carry the sample's physical scale (frame interval s, pixel size um, pixel size um)
    and ``metadata['pixel_size_um']`` / ``['frame_interval_s']``; the ground truth has the true D
    as features ``d_true`` (px^2/frame) and ``d_true_um2_s``.
    """
    movie, truth = make_sample(n_particles=n_particles, n_frames=n_frames, shape=shape, seed=seed)
    scale = (SAMPLE_FRAME_INTERVAL_S, SAMPLE_PIXEL_SIZE_UM, SAMPLE_PIXEL_SIZE_UM)
    meta = {
        "pixel_size_um": SAMPLE_PIXEL_SIZE_UM,
        "frame_interval_s": SAMPLE_FRAME_INTERVAL_S,
        "source": "napari_step.sample.make_sample",
    }
    lo, hi = np.percentile(movie, [1, 99.9])
    image = (
        movie,
        {
            "name": SAMPLE_MOVIE_NAME,
            "scale": scale,
            "axis_labels": ("t", "y", "x"),
            "units": ("s", "um", "um"),
            "metadata": dict(meta),
            "contrast_limits": (float(lo), float(max(hi, lo + 1))),
            "colormap": "gray",
        },
        "image",
    )
    truth = truth.copy()
    truth["d_true_um2_s"] = truth["d_true"] * SAMPLE_PIXEL_SIZE_UM**2 / SAMPLE_FRAME_INTERVAL_S
    data, feats = to_napari(truth)
    tracks = (
        data,
        {
            "name": SAMPLE_TRUTH_NAME,
            "scale": scale,
            "axis_labels": ("t", "y", "x"),
            "units": ("s", "um", "um"),
            "features": feats,
            "metadata": dict(meta),
            "color_by": "d_true",
            "colormap": "viridis",
            "tail_length": 30,
        },
        "tracks",
    )
    return [image, tracks]
