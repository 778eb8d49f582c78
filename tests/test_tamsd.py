import numpy as np
import pytest

from napari_step import tamsd_alpha, tamsd_d
from napari_step.simulate import scaled_brownian
from napari_step.tamsd import (
    _kernel,
    _slope_weights,
    _window_fit_numpy,
    fit_alpha,
    fit_d,
    sliding_tamsd,
    tamsd,
    window_frame_offset,
)


def naive_tamsd_d(track, window, lags):
    """Independent slow implementation: one polyfit per window, stored at its steps' centre."""
    out = np.full(len(track), np.nan)
    for i in range(len(track) - window + 1):
        w = track[i : i + window]
        msd = [np.mean(np.sum((w[lag:] - w[:-lag]) ** 2, axis=1)) for lag in lags]
        out[i + (window - 2) // 2] = np.polyfit(lags, msd, 1)[0] / (2 * track.shape[1])
    return out


def switching_tracks(n, t, c, d_before, d_after, dim=2, seed=0):
    """Brownian tracks whose step s (frame s -> s + 1) has D d_before for s < c, d_after from c."""
    rng = np.random.default_rng(seed)
    d = np.where(np.arange(t - 1) < c, d_before, d_after)[None, :, None]
    steps = np.sqrt(2 * d) * rng.standard_normal((n, t - 1, dim))
    return np.concatenate([np.zeros((n, 1, dim)), steps.cumsum(1)], axis=1)


def decades_track(t, dim, seed):
    """A track whose D wanders over six decades (1e-3 .. 1e3 px^2/frame)."""
    rng = np.random.default_rng(seed)
    log_d = np.clip(np.cumsum(rng.normal(0, 0.4, t - 1)), -3, 3)
    steps = np.sqrt(2 * 10**log_d)[:, None] * rng.standard_normal((t - 1, dim))
    return np.concatenate([np.zeros((1, dim)), steps.cumsum(0)]) + 1e4  # far from the origin


@pytest.mark.parametrize("window", [3, 7, 20, 21, 33])
@pytest.mark.parametrize("lags", [(1, 2), (1, 2, 3), (2, 5)])
def test_tamsd_d_is_exact_against_per_window_polyfit(window, lags):
    if max(lags) >= window:
        pytest.skip("lag does not fit in the window")
    lengths = (window, window + 1, 57, 80, 129)  # odd and even, one and two windows
    tracks = [
        decades_track(n, dim, seed) for seed, (n, dim) in enumerate(zip(lengths, (1, 2, 3, 2, 2)))
    ]
    for dim in (1, 2, 3):
        same_dim = [tr for tr in tracks if tr.shape[1] == dim]
        for tr, fast in zip(same_dim, tamsd_d(same_dim, window=window, lags=lags)):
            ref = naive_tamsd_d(tr, window, lags)
            assert np.array_equal(np.isnan(ref), np.isnan(fast))
            ok = ~np.isnan(ref)
            assert ok.sum() == len(tr) - window + 1
            np.testing.assert_allclose(fast[ok], ref[ok], rtol=1e-9, atol=0)


def test_numpy_path_matches_the_compiled_kernel_and_the_reference():
    pos = np.stack([decades_track(90, 2, s) for s in range(37)])  # 37: not a multiple of a chunk
    pos[5, 40] = np.nan
    pos[36, 0, 1] = np.inf
    lags = np.array([1, 2, 4])
    w = (_slope_weights(lags.astype(float)) / 4)[:, None]
    slow = _window_fit_numpy(pos, 15, lags, w)[:, :, 0]
    fast = np.stack(tamsd_d(pos, window=15, lags=lags))[:, 6 : 6 + 76]
    assert np.array_equal(np.isnan(slow), np.isnan(fast))
    np.testing.assert_allclose(fast, slow, rtol=1e-12, equal_nan=True)
    ref = naive_tamsd_d(pos[0], 15, lags)[6 : 6 + 76]
    np.testing.assert_allclose(slow[0], ref, rtol=1e-9)
    assert _kernel() is not None  # numba is a dependency: the compiled path was the one tested


def test_sliding_tamsd_layout_and_values():
    tr = decades_track(40, 2, 9)
    s = sliding_tamsd(tr[None], 10, [1, 3])
    assert s.shape == (1, 31, 2)
    for i in (0, 17, 30):
        w = tr[i : i + 10]
        for j, lag in enumerate((1, 3)):
            expected = np.mean(np.sum((w[lag:] - w[:-lag]) ** 2, axis=1))
            assert s[0, i, j] == pytest.approx(expected, rel=1e-12)
    assert sliding_tamsd(tr[None, :5], 10, [1, 2]).shape == (1, 0, 2)


def test_tamsd_d_layout_lists_and_short_tracks():
    rng = np.random.default_rng(1)
    tracks = [rng.standard_normal((n, 2)).cumsum(0) for n in (50, 10, 19, 20, 50)]
    out = tamsd_d(tracks, window=20)
    assert window_frame_offset(20) == 9
    assert [len(o) for o in out] == [50, 10, 19, 20, 50]
    assert np.isnan(out[1]).all() and np.isnan(out[2]).all()
    assert np.isfinite(out[3][9]) and np.isnan(out[3]).sum() == 19
    # windows [i, i+20), i = 0..30, stored at frames 9..39
    assert np.isnan(out[0][:9]).all() and np.isfinite(out[0][9:40]).all()
    assert np.isnan(out[0][40:]).all()
    assert np.allclose(out[0][9:40], naive_tamsd_d(tracks[0], 20, (1, 2))[9:40])
    assert tamsd_d(np.zeros((0, 30, 2))) == []


def test_value_at_frame_t_is_centred_on_the_step_t_to_t_plus_1():
    # Forward convention: step s (frame s -> s+1) belongs to frame s; change point c is the first
    # frame of the new segment. One large jump at step 30 enters exactly the windows whose steps
    # include it, which are centred on frames 30 - 9 .. 30 + 9 for a 20-frame window.
    tr = np.zeros((80, 2))
    tr[31:] = 5.0
    d = tamsd_d([tr], window=20)[0]
    hit = np.flatnonzero(np.abs(d) > 0)
    assert hit.min() == 30 - 9 and hit.max() == 30 + 9


def test_switch_is_crossed_at_the_change_point():
    c, t = 40, 80
    up = switching_tracks(400, t, c, 0.2, 2.0, seed=1)
    down = switching_tracks(400, t, c, 2.0, 0.2, seed=2)
    offsets = []
    for pos, rising in ((up, True), (down, False)):
        d = np.stack(tamsd_d(pos, window=20))
        # the mean curve is symmetric about the step at each frame: it passes the midpoint of
        # the two D values between frames c - 1 and c
        mean = d[:, 9:-10].mean(axis=0)  # every window valid
        mean = np.concatenate([np.full(9, np.nan), mean])
        mid = (0.2 + 2.0) / 2
        sign = 1 if rising else -1
        assert sign * (mean[c] - mid) > 0 > sign * (mean[c - 1] - mid)
        # per track: the first frame on the new side of the midpoint after the crossing nearest c
        side = sign * (d - mid) > 0
        for row in side:
            enter = np.flatnonzero(row[1:] & ~row[:-1]) + 1
            if enter.size:
                offsets.append(enter[np.argmin(np.abs(enter - c))] - c)
    offsets = np.array(offsets)
    assert len(offsets) > 700
    assert np.median(offsets) == 0
    assert abs(np.mean(offsets)) < 0.5  # no systematic lead or lag


def test_tamsd_recovers_d_of_brownian():
    pos = switching_tracks(200, 200, 0, 0.5, 0.5, seed=2)
    d = np.concatenate(tamsd_d(pos, window=20))
    assert abs(np.nanmean(d) - 0.5) < 0.02
    whole = fit_d(tamsd(pos, [1, 2]), [1, 2], 2)
    assert abs(whole.mean() - 0.5) < 0.01


def test_gap_masks_only_windows_that_touch_it():
    tr = np.random.default_rng(3).standard_normal((60, 2)).cumsum(0)
    tr[30] = np.nan
    out = tamsd_d([tr], window=10)[0]
    off = window_frame_offset(10)  # 4
    ref_before = naive_tamsd_d(tr[:30], 10, (1, 2))
    assert np.allclose(out[off : 21 + off], ref_before[off : 21 + off])
    # windows [i, i+10) containing frame 30 are NaN: i in 21..30 -> frames 25..34
    assert np.isnan(out[21 + off : 31 + off]).all()
    assert np.isfinite(out[31 + off : 51 + off]).all()
    assert np.isnan(out[51 + off :]).all()


def test_alpha_from_sbm():
    pos, _ = scaled_brownian(300, 400, 0.5, 2, rng=np.random.default_rng(4))
    whole = tamsd(pos, np.arange(1, 11))
    # time-averaged MSD of SBM scales with lag as lag^1 (ergodicity breaking) for lag << T
    assert abs(np.median(fit_alpha(whole, np.arange(1, 11))) - 1.0) < 0.15
    a = tamsd_alpha(pos[:5], window=50)
    assert len(a) == 5 and a[0].shape == (400,)
    off = window_frame_offset(50)
    ref = fit_alpha(sliding_tamsd(pos[:1], 50, np.arange(1, 11))[0], np.arange(1, 11))
    np.testing.assert_allclose(a[0][off : off + ref.size], ref, rtol=1e-12)
    assert np.isnan(a[0][:off]).all() and np.isnan(a[0][off + ref.size :]).all()


def test_bad_lags_and_window():
    with pytest.raises(ValueError, match="lags"):
        tamsd_d(np.zeros((2, 50, 2)), lags=(1,))
    with pytest.raises(ValueError, match="smaller than the window"):
        tamsd_d(np.zeros((2, 50, 2)), window=5, lags=(1, 5))
    with pytest.raises(ValueError, match="integer"):
        tamsd_d(np.zeros((2, 50, 2)), window=10.5)
    with pytest.raises(ValueError, match="shape"):
        tamsd_d(np.zeros((2, 3, 4, 5)))


def test_list_inputs_are_validated_like_arrays():
    rng = np.random.default_rng(5)
    tracks = [rng.standard_normal((n, 2)).cumsum(0) for n in (30, 25, 30)]
    ref = tamsd_d(np.stack([tracks[0], tracks[2]]))
    out = tamsd_d(tracks)
    np.testing.assert_array_equal(out[0], ref[0])
    np.testing.assert_array_equal(out[2], ref[1])
    as_int = tamsd_d([np.round(t * 100).astype(int) for t in tracks])
    np.testing.assert_allclose(as_int[1], tamsd_d([np.round(tracks[1] * 100)])[0])
    with pytest.raises(ValueError, match="same dimension"):
        tamsd_d([tracks[0], np.zeros((30, 3))])
    with pytest.raises(ValueError, match="complex"):
        tamsd_d([tracks[0], tracks[1] + 1j])


def test_without_numba_the_numpy_path_gives_the_same_output(monkeypatch):
    import napari_step.tamsd as tamsd_module

    pos = np.stack([decades_track(64, 2, s) for s in range(5)])
    pos[2, 30] = np.nan
    compiled = tamsd_d(pos, window=12, lags=(1, 2, 3)), tamsd_alpha(pos, window=21)
    monkeypatch.setattr(tamsd_module, "_kernel", lambda: None)
    plain = tamsd_d(pos, window=12, lags=(1, 2, 3)), tamsd_alpha(pos, window=21)
    for a, b in zip(compiled, plain):
        np.testing.assert_allclose(np.stack(a), np.stack(b), rtol=1e-12, equal_nan=True)
