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

from . import acquisition, andi1, andi1_changepoints, brownian, phenom_spatial
from .acquisition import *  # noqa: F403 (re-exported whole, see __all__)
from .andi1 import *  # noqa: F403
from .andi1_changepoints import *  # noqa: F403
from .andi2_world import ANDI2_MODELS, andi2_like
from .brownian import *  # noqa: F403
from .phenom_spatial import *  # noqa: F403
from .phenomenological import (
    STATES,
    PhenomTracks,
    label_changepoints,
    multi_state,
    single_state,
)

__all__ = [  # the families' public names, in the order above
    *brownian.__all__,
    *andi1.__all__,
    *andi1_changepoints.__all__,
    *acquisition.__all__,
    "STATES",
    "PhenomTracks",
    "label_changepoints",
    "single_state",
    "multi_state",
    *phenom_spatial.__all__,
    "ANDI2_MODELS",
    "andi2_like",
]
