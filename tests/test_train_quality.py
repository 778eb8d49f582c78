"""Quality of the shipped 2-D D models on tracks as a camera records them (issue 13): the
"acquired" model reads the true D of blurred, noisy Brownian tracks with no acquisition parameter
given; the default model (trained on instantaneous positions) does except under full blur; model
"auto", the package default, picks the one that does."""

import numpy as np
import pytest

from napari_step.predict import predict_d
from napari_step.simulate import brownian_acquired

D_TRUE = 0.5  # px^2/frame; the model is scale-equivariant, so any value tests the same thing


FULL_BLUR_XFAIL = pytest.mark.xfail(
    strict=True,
    reason=(
        "the default model reads 0.68 of the true D under full blur (it was trained on "
        "instantaneous positions); model='acquired' reads 0.95"
    ),
)
CELLS = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.3), (1.0, 1.0)]
IDS = ["full-blur", "noise-1", "half-blur-noise-0.3", "full-blur-noise-1"]


@pytest.mark.parametrize(
    "model, exposure, snr",
    [pytest.param("acquired", f, s, id=f"acquired-{i}") for (f, s), i in zip(CELLS, IDS)]
    + [pytest.param("auto", f, s, id=f"auto-{i}") for (f, s), i in zip(CELLS, IDS)]
    + [
        pytest.param(
            "default", f, s, id=f"default-{i}", marks=[FULL_BLUR_XFAIL] if i == IDS[0] else []
        )
        for (f, s), i in zip(CELLS, IDS)
    ],
)
def test_shipped_model_reads_the_true_d_under_blur_and_noise(model, exposure, snr):
    """200 Brownian tracks of 200 frames, exposure fraction f (blur R = f/6), noise
    sigma^2 / (D dt) = snr: the median over tracks of the per-track median D is within 15 % of
    the true D (a blur- and noise-unaware reading is off by 1 - 2f/3 + snr: up to -33 %, +100 %)."""
    rng = np.random.default_rng(13)
    d = np.full((200, 200), D_TRUE)
    pos = brownian_acquired(d, 2, exposure, np.sqrt(snr * D_TRUE), rng=rng)
    pred = predict_d(pos, model=model)
    ratio = np.median([np.median(p) for p in pred]) / D_TRUE
    assert abs(ratio - 1) < 0.15, f"median D / true D = {ratio:.3f}"
