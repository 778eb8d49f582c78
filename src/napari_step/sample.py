"""The bundled synthetic SPT movie: particles whose D changes during the movie, with ground truth.

Generated on demand from the core simulators (deterministic for a seed), so the package ships no
image files and the sample is the same on every machine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .simulate import render_movie

__all__ = [
    "make_sample",
    "SAMPLE_PIXEL_SIZE_UM",
    "SAMPLE_FRAME_INTERVAL_S",
    "SAMPLE_D_SLOW",
    "SAMPLE_D_FAST",
]

SAMPLE_PIXEL_SIZE_UM = 0.1
SAMPLE_FRAME_INTERVAL_S = 0.05
SAMPLE_D_SLOW = 0.05  # px^2/frame: the sample's slow state
SAMPLE_D_FAST = 0.8  # px^2/frame: the sample's fast state


def make_sample(
    n_particles: int = 30,
    n_frames: int = 200,
    shape=(256, 256),
    seed: int = 0,
    psf_sigma: float = 1.5,
    photons: float = 3000.0,
    background: float = 100.0,
):
    """Render a movie of diffusing particles whose D switches once between slow and fast.

    Returns (movie (T, Y, X) uint16, truth track table with columns track_id, frame, y, x, d_true
    in px^2/frame). Half the particles start slow (D = 0.05 px^2/frame) and turn fast
    (D = 0.8), the other half the reverse, at a random frame in the middle third; particles are
    kept inside the field of view by reflecting walls and start well apart.
    """
    rng = np.random.default_rng(seed)
    slow, fast = SAMPLE_D_SLOW, SAMPLE_D_FAST
    margin = 12
    # start points on a jittered grid so that particles rarely meet
    g = int(np.ceil(np.sqrt(n_particles)))
    cells = rng.permutation(g * g)[:n_particles]
    cy, cx = np.divmod(cells, g)
    span = np.array(shape) - 2 * margin
    start = np.stack([margin + (cy + 0.5) / g * span[0], margin + (cx + 0.5) / g * span[1]], 1)
    start += rng.uniform(-0.2, 0.2, size=start.shape) * span / g
    switch = rng.integers(n_frames // 3, 2 * n_frames // 3, size=n_particles)
    first_slow = np.arange(n_particles) % 2 == 0
    t = np.arange(n_frames)[None, :]
    after = t >= switch[:, None]
    d = np.where(first_slow[:, None] ^ after, slow, fast)
    steps = rng.standard_normal((n_particles, n_frames, 2)) * np.sqrt(2 * d)[..., None]
    steps[:, 0] = 0
    pos = start[:, None, :] + np.cumsum(steps, axis=1)
    lo, hi = margin / 2, np.array(shape) - margin / 2
    pos = np.abs(pos - lo) + lo  # reflect at the walls (twice covers any excursion here)
    pos = hi - np.abs(hi - pos)
    movie = render_movie(
        pos, shape, psf_sigma=psf_sigma, photons=photons, background=background, rng=rng
    )
    table = pd.DataFrame(
        {
            "track_id": np.repeat(np.arange(n_particles), n_frames),
            "frame": np.tile(np.arange(n_frames), n_particles),
            "y": pos[..., 0].ravel(),
            "x": pos[..., 1].ravel(),
            "d_true": d.ravel(),
        }
    )
    return movie, table
