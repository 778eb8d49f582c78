import numpy as np

from napari_step.anomalous import loglog_slope


def test_loglog_slope_exact_and_ignores_bad_points():
    t = np.arange(1, 50, dtype=float)
    y = 3 * t**-0.7
    y[5] = np.nan
    y[7] = -1
    assert abs(loglog_slope(t, y) + 0.7) < 1e-12
    assert np.isnan(loglog_slope(t[:1], y[:1]))
