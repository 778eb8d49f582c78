"""Regenerate ``trackpy_linked.csv``: real trackpy locate + link on a simulated movie.

Run from the repository root: ``python tests/data/make_trackpy_csv.py``. The CSV is saved the
way trackpy users usually save it, ``linked.to_csv(path)``, so it carries the pandas index as an
unnamed first column.
"""

import warnings
from pathlib import Path

import numpy as np
import trackpy as tp

from napari_step.simulate import brownian_changepoints, render_movie


def main():
    rng = np.random.default_rng(7)
    sim = brownian_changepoints(
        4, n_frames=25, dim=2, n_changepoints=1, min_segment=8, d_range=(0.02, 0.3), rng=rng
    )
    starts = np.array([[12.0, 14.0], [14.0, 48.0], [46.0, 16.0], [48.0, 50.0]])
    positions = sim.positions + starts[:, None, :]
    movie = render_movie(positions, shape=(64, 64), photons=3000, background=50, rng=rng)
    tp.quiet()
    warnings.filterwarnings("ignore", message="No maxima")
    features = tp.batch(movie, 7, minmass=300, processes=1)
    linked = tp.link(features, 5, memory=1)
    linked.to_csv(Path(__file__).with_name("trackpy_linked.csv"))
    print(linked.head(), len(linked), linked["particle"].nunique())


if __name__ == "__main__":
    main()
