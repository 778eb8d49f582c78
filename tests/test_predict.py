import warnings

import numpy as np
import pytest
import torch

from napari_step import predict_d
from napari_step.predict import _windows, resolve_device
from napari_step.simulate import brownian_changepoints


def step_track(d1, d2, n=200, switch=100, seed=0):
    rng = np.random.default_rng(seed)
    d = np.where(np.arange(n) < switch, d1, d2)
    steps = rng.standard_normal((n, 2)) * np.sqrt(2 * d)[:, None]
    steps[0] = 0
    return steps.cumsum(0), d


def test_mixed_lengths_shapes_and_order():
    rng = np.random.default_rng(0)
    lengths = [200, 15, 64, 200, 350, 64]
    tracks = [rng.standard_normal((n, 2)).cumsum(0) * (i + 1) for i, n in enumerate(lengths)]
    out = predict_d(tracks)
    assert [len(o) for o in out] == lengths
    # results come back in input order: track i has D ~ (i+1)^2 * 0.5
    med = [np.median(o) for o in out]
    for i, m in enumerate(med):
        assert 0.5 * (i + 1) ** 2 / 2 < m < 0.5 * (i + 1) ** 2 * 2
    # batched and one-by-one give the same answer (batching does not change results)
    alone = predict_d([tracks[2]])[0]
    assert np.allclose(alone, out[2], rtol=1e-4)


def test_tracks_d_step_change():
    """The shipped model follows D 0.1 -> 10 at frame 100 (stated tolerance: factor 1.5 median
    away from the change, change located within 5 frames)."""
    errs, locs = [], []
    for seed in range(10):
        pos, d = step_track(0.1, 10.0, seed=seed)
        p = predict_d(pos)[0]
        errs.append(np.median(np.abs(np.log10(p / d))[np.r_[10:90, 110:190]]))
        locs.append(np.argmax(np.log10(p) > 0))  # first frame above the log-midpoint (D = 1)
    assert np.median(errs) < np.log10(1.5)
    assert np.all(np.abs(np.array(locs) - 100) <= 5)


@pytest.mark.parametrize("scale", [1e-5, 1e5])
def test_out_of_range_tracks_are_rescaled(scale):
    pos, d = step_track(0.1, 10.0, seed=1)
    base = predict_d(pos)[0]
    scaled = predict_d(pos * np.sqrt(scale))[0]  # D times scale: 1e-6 .. 1e6 px^2/frame
    assert np.allclose(scaled / scale, base, rtol=1e-3)


def test_huge_coordinates_do_not_lose_precision():
    pos, d = step_track(1e-3, 1e-3, seed=2)
    base = predict_d(pos)[0]
    far = predict_d(pos + 1e7)[0]
    assert np.allclose(far, base, rtol=1e-3)


def test_short_tracks_get_nan_and_one_warning():
    rng = np.random.default_rng(0)
    tracks = [rng.standard_normal((n, 2)) for n in (1, 2, 5, 50)]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = predict_d(tracks)
    msgs = [str(x.message) for x in w if "shorter than" in str(x.message)]
    assert len(msgs) == 1 and msgs[0].startswith("3 track(s)")
    assert all(np.isnan(o).all() for o in out[:3]) and np.isfinite(out[3]).all()


def test_nan_positions_are_refused_naming_the_track():
    tracks = [np.zeros((30, 2)), np.ones((30, 2))]
    tracks[1][4] = np.nan
    with pytest.raises(ValueError, match="track 1 has non-finite positions at rows \\[4\\]"):
        predict_d(tracks)


def test_still_track_has_zero_d():
    out = predict_d([np.full((40, 2), 3.0), np.random.default_rng(0).standard_normal((40, 2))])
    assert (out[0] == 0).all() and (out[1] > 0).all()


def test_3d_tracks_via_projections_and_1d_model():
    rng = np.random.default_rng(3)
    steps = rng.standard_normal((20, 150, 3)) * np.sqrt(2 * 0.7)
    out = predict_d(steps.cumsum(1))
    assert abs(np.median(np.concatenate(out)) - 0.7) < 0.15
    # 1-D tracks use the shipped 1-D model: D 0.1 -> 10 at frame 100
    d = np.where(np.arange(200) < 100, 0.1, 10.0)
    x = (rng.standard_normal((10, 200)) * np.sqrt(2 * d)).cumsum(1)[..., None]
    p = np.stack(predict_d(x))
    err = np.abs(np.log10(p / d))[:, np.r_[10:90, 110:190]]
    assert np.median(err) < np.log10(1.6)
    with pytest.raises(ValueError, match="same dimension"):
        predict_d([np.zeros((20, 1)), np.zeros((20, 2))])


def test_long_tracks_are_windowed_consistently():
    pos, d = step_track(0.2, 5.0, n=2500, switch=1200, seed=4)
    out = predict_d(pos)[0]
    assert out.shape == (2500,)
    assert np.median(np.abs(np.log10(out / d))) < np.log10(1.5)
    wins = _windows(2500)
    covered = np.zeros(2500, int)
    for _, _, a, b in wins:
        covered[a:b] += 1
    assert (covered == 1).all()


def test_device_selection(monkeypatch):
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.warns(UserWarning, match="no GPU"):
        assert resolve_device("cuda").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None).type == "cuda"


def test_deterministic_on_cpu():
    sim = brownian_changepoints(20, 100, 2, 1, rng=np.random.default_rng(9))
    a = predict_d(sim.positions, device="cpu")
    b = predict_d(sim.positions, device="cpu")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_progress_callback_reaches_total():
    seen = []
    predict_d(np.random.default_rng(0).standard_normal((30, 40, 2)).cumsum(1), batch_size=7,
              progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (30, 30) and len(seen) == 5


def test_100k_tracks_in_bounded_batches():
    """100 000 tracks: processed batch by batch with progress, every result present, and peak
    memory growth bounded by the data (inputs are 16 MB), not by tracks x activations."""
    import resource

    x = np.random.default_rng(1).standard_normal((100_000, 10, 2)).cumsum(1)
    calls = []
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = predict_d(x, progress=lambda d, n: calls.append((d, n)))
    growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    assert len(out) == 100_000 and all(o.shape == (10,) and np.isfinite(o).all() for o in out)
    assert len(calls) > 50 and calls[-1] == (100_000, 100_000)
    assert all(b[0] > a[0] for a, b in zip(calls, calls[1:]))
    assert growth_mib < 1500
