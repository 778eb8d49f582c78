import numpy as np
import pytest

from napari_step import tamsd_alpha, tamsd_d
from napari_step.simulate import brownian_changepoints, scaled_brownian
from napari_step.tamsd import fit_d, tamsd


def naive_tamsd_d(track, window, lags):
    """Independent straightforward implementation: one polyfit per window."""
    out = np.full(len(track), np.nan)
    for i in range(len(track) - window + 1):
        w = track[i : i + window]
        msd = [np.mean(np.sum((w[l:] - w[:-l]) ** 2, axis=1)) for l in lags]
        out[i + window // 2] = np.polyfit(lags, msd, 1)[0] / (2 * track.shape[1])
    return out


@pytest.mark.parametrize("lags", [(1, 2), (1, 2, 3, 4)])
def test_tamsd_d_matches_naive(lags):
    sim = brownian_changepoints(5, 80, 2, 2, rng=np.random.default_rng(0))
    fast = tamsd_d(sim.positions, window=20, lags=lags)
    for tr, f in zip(sim.positions, fast):
        ref = naive_tamsd_d(tr, 20, lags)
        assert np.array_equal(np.isnan(ref), np.isnan(f))
        ok = ~np.isnan(ref)
        assert np.allclose(f[ok], ref[ok], rtol=1e-9, atol=0)


def test_tamsd_d_layout_lists_and_short_tracks():
    rng = np.random.default_rng(1)
    tracks = [rng.standard_normal((n, 2)).cumsum(0) for n in (50, 10, 19, 20, 50)]
    out = tamsd_d(tracks, window=20)
    assert [len(o) for o in out] == [50, 10, 19, 20, 50]
    assert np.isnan(out[1]).all() and np.isnan(out[2]).all()
    assert np.isfinite(out[3][10]) and np.isnan(out[3]).sum() == 19
    assert np.isnan(out[0][:10]).all() and np.isfinite(out[0][10:41]).all() and np.isnan(out[0][41:]).all()
    assert np.allclose(out[0][10:41], naive_tamsd_d(tracks[0], 20, (1, 2))[10:41])


def test_tamsd_recovers_d_of_brownian():
    sim = brownian_changepoints(200, 200, 2, 0, d_range=(0.5, 0.5 + 1e-9), rng=np.random.default_rng(2))
    d = np.concatenate(tamsd_d(sim.positions, window=20))
    assert abs(np.nanmean(d) - 0.5) < 0.02
    whole = fit_d(tamsd(sim.positions, [1, 2]), [1, 2], 2)
    assert abs(whole.mean() - 0.5) < 0.01


def test_gap_masks_only_windows_that_touch_it():
    tr = np.random.default_rng(3).standard_normal((60, 2)).cumsum(0)
    tr[30] = np.nan
    out = tamsd_d([tr], window=10)[0]
    ref_before = naive_tamsd_d(tr[:30], 10, (1, 2))
    assert np.allclose(out[5:26], ref_before[5:26])
    # windows [i, i+10) containing frame 30 are NaN: i in 21..30 -> frames 26..35
    assert np.isnan(out[26:36]).all()
    assert np.isfinite(out[36:56]).all()


def test_alpha_from_sbm():
    pos, _ = scaled_brownian(300, 400, 0.5, 2, rng=np.random.default_rng(4))
    whole = tamsd(pos, np.arange(1, 11))
    from napari_step.tamsd import fit_alpha

    # time-averaged MSD of SBM scales with lag as lag^1 (ergodicity breaking) for lag << T
    assert abs(np.median(fit_alpha(whole, np.arange(1, 11))) - 1.0) < 0.15
    a = tamsd_alpha(pos[:5], window=50)
    assert len(a) == 5 and a[0].shape == (400,)


def test_bad_lags_and_window():
    with pytest.raises(ValueError, match="lags"):
        tamsd_d(np.zeros((2, 50, 2)), lags=(1,))
    with pytest.raises(ValueError, match="smaller than the window"):
        tamsd_d(np.zeros((2, 50, 2)), window=5, lags=(1, 5))
    with pytest.raises(ValueError, match="shape"):
        tamsd_d(np.zeros((2, 3, 4, 5)))
