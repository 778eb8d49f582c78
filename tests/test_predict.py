import warnings

import numpy as np
import pytest
import torch

from napari_step import predict_d
from napari_step._inference import windows
from napari_step.model import CheckpointError, load_checkpoint, save_checkpoint
from napari_step.predict import (
    WEIGHTS_DIR,
    load_model,
    predict_alpha,
    predict_log10_d,
    resolve_device,
    resolve_precision,
)
from napari_step.simulate import brownian_changepoints, fbm


def step_track(d1, d2, n=200, switch=100, seed=0, dim=2):
    """Forward convention: frame t carries the D of the step t -> t+1; the step ``switch`` ->
    ``switch + 1`` is the first with D = d2."""
    rng = np.random.default_rng(seed)
    d = np.where(np.arange(n) < switch, d1, d2)
    steps = rng.standard_normal((n, dim)) * np.sqrt(2 * d)[:, None]
    return np.concatenate([np.zeros((1, dim)), steps[:-1].cumsum(0)]), d


def switch_tracks(n_tracks, d1, d2, dim, rng, n_frames=200):
    """Tracks whose D switches from d1 to d2 at a random frame c (forward convention)."""
    cs = rng.integers(60, n_frames - 60, n_tracks)
    d = np.where(np.arange(n_frames)[None] >= cs[:, None], d2, d1)
    steps = rng.standard_normal((n_tracks, n_frames, dim)) * np.sqrt(2 * d)[..., None]
    return np.concatenate([np.zeros((n_tracks, 1, dim)), steps[:, :-1].cumsum(1)], 1), cs


def best_split(y):
    """The first frame of the second segment of the least-squares two-level fit of y."""
    n = len(y)
    k = np.arange(1, n)
    cs, cs2 = np.cumsum(y), np.cumsum(y**2)
    sse = (
        (cs2[k - 1] - cs[k - 1] ** 2 / k)
        + (cs2[-1] - cs2[k - 1])
        - (cs[-1] - cs[k - 1]) ** 2 / (n - k)
    )
    return int(k[np.argmin(sse)])


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


@pytest.mark.parametrize("dim", [2, 1])
def test_frame_convention_switch_is_centred_on_the_change_point(dim):
    """Forward convention: on tracks whose D switches 100x at frame c (the step c -> c+1 is the
    first with the new D), the predicted switch starts at frame c: median offset 0 over 150
    tracks each way, for the shipped (legacy, shifted) 2-D and 1-D models."""
    rng = np.random.default_rng(dim)
    for d1, d2 in ((0.1, 10.0), (10.0, 0.1)):
        pos, cs = switch_tracks(150, d1, d2, dim, rng)
        offsets = np.array([best_split(p) for p in predict_log10_d(pos)]) - cs
        assert np.median(offsets) == 0, (d1, d2, np.bincount(offsets - offsets.min()))
        assert np.mean(np.abs(offsets) <= 1) > 0.9


def test_frame_convention_alpha_switch_is_centred():
    """FBM switching between alpha 0.3 and 1.7 at frame c: the predicted switch is centred on c
    (median offset 0 over both directions, 200 tracks each; the model reacts one frame early to
    a rise and one late to a fall, so each direction alone is off by one)."""
    rng = np.random.default_rng(5)
    offsets = []
    for a1, a2 in ((0.3, 1.7), (1.7, 0.3)):
        cs = rng.integers(60, 140, 200)
        x1, x2 = fbm(200, 200, a1, 2, rng=rng), fbm(200, 200, a2, 2, rng=rng)
        pos = np.array(
            [
                np.concatenate([a[: c + 1], a[c] + b[1 : 200 - c] - b[0]])
                for a, b, c in zip(x1, x2, cs)
            ]
        )
        offsets.append(np.array([best_split(p) for p in predict_alpha(pos)]) - cs)
    assert np.median(np.concatenate(offsets)) == 0
    assert all(abs(np.median(o)) <= 1 for o in offsets)


def test_card_frame_convention_drives_the_shift(tmp_path):
    """The same weights saved as "backward" (legacy) and "forward": the legacy output is the
    forward one moved by one frame (frame t gets frame t+1's value, the last repeats)."""
    net, _ = load_checkpoint(WEIGHTS_DIR / "step_d_2d.pt")
    for conv in ("forward", "backward"):
        save_checkpoint(tmp_path / f"{conv}.pt", net, frame_convention=conv)
    assert load_checkpoint(tmp_path / "backward.pt")[1]["card"]["frame_convention"] == "backward"
    pos = np.random.default_rng(3).standard_normal((3, 120, 2)).cumsum(1)
    fwd = predict_log10_d(pos, model=tmp_path / "forward.pt")
    bwd = predict_log10_d(pos, model=tmp_path / "backward.pt")
    for f, b in zip(fwd, bwd):
        np.testing.assert_allclose(b[:-1], f[1:], atol=1e-6)
        assert b[-1] == b[-2]
    shipped = predict_log10_d(pos)  # the shipped card has no entry: legacy
    np.testing.assert_allclose(np.stack(shipped), np.stack(bwd), atol=1e-6)
    with pytest.raises(ValueError, match="frame_convention"):
        save_checkpoint(tmp_path / "x.pt", net, frame_convention="sideways")


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


def test_complex_and_non_numeric_positions_are_refused():
    real = np.random.default_rng(0).standard_normal((2, 30, 2)).cumsum(1)
    with pytest.raises(ValueError, match="track 0 has complex positions"):
        predict_d(real + 1j)
    with pytest.raises(ValueError, match="track 1 has complex positions"):
        predict_alpha([real[0], real[1].astype(complex)])
    with pytest.raises(ValueError, match="track 0: positions must be numbers"):
        predict_d([np.array([["a", "b"]] * 30)])


def test_plain_text_model_file_is_a_checkpoint_error(tmp_path):
    tracks = np.random.default_rng(0).standard_normal((2, 30, 2)).cumsum(1)
    for name in ("notes.txt", "model.pt"):
        path = tmp_path / name
        path.write_text("epoch 101: loss 0.3\nthis is not a model\n")
        with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
            predict_d(tracks, model=path)
    with pytest.raises(ValueError, match="unknown D model"):
        predict_d(tracks, model="fancy")
    with pytest.raises(ValueError, match="not D"):
        predict_d(tracks, model=WEIGHTS_DIR / "step_alpha_2d.pt")


def test_still_track_has_zero_d():
    out = predict_d([np.full((40, 2), 3.0), np.random.default_rng(0).standard_normal((40, 2))])
    assert (out[0] == 0).all() and (out[1] > 0).all()


def test_3d_tracks_via_projections_and_1d_model():
    rng = np.random.default_rng(3)
    steps = rng.standard_normal((20, 150, 3)) * np.sqrt(2 * 0.7)
    out = predict_d(steps.cumsum(1))
    assert abs(np.median(np.concatenate(out)) - 0.7) < 0.15
    # 1-D tracks use the shipped 1-D model: D 0.1 -> 10 at frame 100
    x = np.stack([step_track(0.1, 10.0, seed=s, dim=1)[0] for s in range(10)])
    d = step_track(0.1, 10.0, dim=1)[1]
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
    covered = np.zeros(2500, int)
    for _, _, a, b in windows(2500):
        covered[a:b] += 1
    assert (covered == 1).all()


def test_device_and_precision_selection(monkeypatch):
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) is None  # float32 on the CPU
    assert resolve_precision("bf16", cpu) is torch.bfloat16
    assert resolve_precision("fp16", cpu) is torch.float16
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp8", cpu)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.warns(UserWarning, match="no GPU"):
        assert resolve_device("cuda").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None).type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("auto", torch.device("cuda")) is torch.bfloat16


def test_bf16_equals_fp32_within_tolerance_on_the_validation_set():
    """Reduced precision (CPU autocast here; the same code path on CUDA): per frame |log10 D|
    differs from fp32 by < 0.005 decades on average and < 0.03 at the 99th percentile, and the
    validation error (mean |D/D_true - 1|, train.validation_set, 200 tracks) moves by < 0.003."""
    from napari_step.train import validation_set

    pos, d_true = validation_set(n_tracks=200)
    ref = np.stack(predict_log10_d(pos, precision="fp32"))
    err_ref = np.abs(10**ref / d_true - 1).mean()
    for precision in ("bf16", "fp16"):
        low = np.stack(predict_log10_d(pos, precision=precision))
        diff = np.abs(low - ref)
        assert diff.mean() < 0.005 and np.percentile(diff, 99) < 0.03, precision
        assert abs(np.abs(10**low / d_true - 1).mean() - err_ref) < 0.003, precision
    assert err_ref < 0.16  # the shipped model on forward labels (0.141 on 1000 tracks)


def test_compiled_model_gives_the_same_output():
    pos = np.random.default_rng(4).standard_normal((4, 60, 2)).cumsum(1)
    ref = predict_log10_d(pos, compile_model=False)
    out = predict_log10_d(pos, compile_model="eager")  # torch.compile wiring, no C++ toolchain
    np.testing.assert_allclose(np.stack(out), np.stack(ref), atol=1e-5)
    assert "_napari_step_compiled" in load_model().__dict__


def test_deterministic_on_cpu():
    sim = brownian_changepoints(20, 100, 2, 1, rng=np.random.default_rng(9))
    a = predict_d(sim.positions, device="cpu")
    b = predict_d(sim.positions, device="cpu")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_progress_callback_reaches_total():
    seen = []
    predict_d(
        np.random.default_rng(0).standard_normal((30, 40, 2)).cumsum(1),
        batch_size=7,
        progress=lambda done, total: seen.append((done, total)),
    )
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


def test_a_batch_too_large_for_the_device_is_split_not_lost(monkeypatch):
    """Out of device memory on a batch: the engine splits it in halves until it fits, and the
    results equal an unsplit run."""
    from napari_step import _inference

    pos = np.random.default_rng(6).standard_normal((12, 50, 2)).cumsum(1)
    ref = predict_log10_d(pos, batch_size=12)
    real = _inference.Engine.batch_values
    sizes = []

    def limited(self, x):
        sizes.append(len(x))
        if len(x) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, x)

    monkeypatch.setattr(_inference.Engine, "batch_values", limited)
    out = predict_log10_d(pos, batch_size=12)
    np.testing.assert_allclose(np.stack(out), np.stack(ref), atol=1e-6)
    assert sizes[0] == 12 and max(s for s in sizes if s <= 3) == 3


def test_the_acquired_model_is_offered_and_is_2d_only():
    """The named built-in "acquired" model is listed (the GUI's model choices) and refuses 1-D
    tracks with a specific message instead of a shape error."""
    from napari_step.model import CheckpointError
    from napari_step.predict import available_models, model_path

    assert model_path("acquired").name == "step_d_2d_acquired.pt"
    assert "acquired (2-D, blur + noise)" in available_models()
    with pytest.raises(CheckpointError, match="'acquired' is a 2-D D model"):
        predict_d([np.cumsum(np.random.default_rng(0).normal(size=(50, 1)), 0)], model="acquired")
