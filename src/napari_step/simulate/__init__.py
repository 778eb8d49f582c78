"""Simulators of single-particle tracks with per-frame ground truth, by family.

* :mod:`.brownian`: Brownian motion with jumps of D (change points), smooth drifts, scaled
  Brownian motion, Brownian motion from any per-frame D.
* :mod:`.andi1`: the AnDi-1 anomalous models (ATTM, CTRW, FBM, Lévy walk, SBM);
  :mod:`.andi1_changepoints`: tracks whose model and alpha change at change points.
* :mod:`.acquisition`: what the camera adds: motion blur, localisation noise, movie rendering.
* :mod:`.phenomenological` and :mod:`.phenom_spatial`: the AnDi-2 phenomenological models
  (single state, Markov switching, immobile traps, dimerisation, confinement) and directed
  motion, with per-frame D, alpha and state labels; :mod:`.andi2_world` draws them with the
  AnDi-2 challenge's default parameters.

Everything is vectorised over tracks and seeded through ``numpy.random.Generator``. Units are px
and frames (D in px^2/frame). Per-frame convention (forward, as andi-datasets and the STEP
reference): the label at frame t describes the motion from t to t+1, the last frame repeats the
one before it, and a change point c means frame c is the first frame of the new segment.
"""

from .acquisition import (
    add_localisation_noise,
    blur_coefficient,
    blur_path,
    blur_steps,
    brownian_acquired,
    localisation_sigma,
    render_movie,
)
from .andi1 import (
    ALPHA_RANGES,
    MODELS,
    attm,
    ctrw,
    fbm,
    levy_walk,
    simulate_model,
)
from .andi1_changepoints import AnomalousChangepoints, anomalous_changepoints
from .andi2_world import ANDI2_MODELS, andi2_like
from .brownian import (
    BrownianChangepoints,
    brownian_changepoints,
    brownian_from_d,
    scaled_brownian,
    smooth_log_d_drift,
)
from .phenom_spatial import confinement, dimerisation, immobile_traps, place_compartments
from .phenomenological import (
    STATES,
    PhenomTracks,
    label_changepoints,
    multi_state,
    single_state,
)

__all__ = [
    "BrownianChangepoints",
    "brownian_changepoints",
    "scaled_brownian",
    "smooth_log_d_drift",
    "brownian_from_d",
    "MODELS",
    "ALPHA_RANGES",
    "AnomalousChangepoints",
    "anomalous_changepoints",
    "simulate_model",
    "attm",
    "fbm",
    "ctrw",
    "levy_walk",
    "blur_coefficient",
    "blur_path",
    "brownian_acquired",
    "blur_steps",
    "localisation_sigma",
    "add_localisation_noise",
    "render_movie",
    "STATES",
    "PhenomTracks",
    "label_changepoints",
    "single_state",
    "multi_state",
    "immobile_traps",
    "dimerisation",
    "confinement",
    "place_compartments",
    "ANDI2_MODELS",
    "andi2_like",
]
