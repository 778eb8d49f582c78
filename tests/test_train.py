"""Training: the acquired world (physics and labels), real optimisation steps, resume, the
learning-rate schedule and the evaluation used for every target."""

import numpy as np
import pytest
import torch

from napari_step.model import ModelConfig, load_checkpoint, read_checkpoint
from napari_step.predict import WEIGHTS_DIR
from napari_step.train import (
    TrainConfig,
    acquired_validation_sets,
    evaluate,
    lr_factor,
    make_batch,
    train,
)
from napari_step.train_world import AcquiredWorld, acquired_tracks, markov_d

TINY = dict(
    stem=[8], blocks=[16, 16], blocks_per_stage=[1, 1], n_heads=2, dim_ff=32, n_encoder_layers=1
)


SINGLE_D = dict(
    max_changepoints=0, p_markov=0.0, p_immobile=0.0, p_drift=0.0, p_noise_free=1.0, p_no_blur=0.0
)


def test_the_world_blurs_as_berglund_says():
    """Constant-D tracks of random exposure f: per axis <dx^2> = 2 D (1 - 2R) and
    <dx_n dx_n+1> = 2 R D with R = f / 6 (D = 1 after the world's rescaling)."""
    pos, d, info = acquired_tracks(3000, 60, 2, AcquiredWorld(**SINGLE_D), 7)
    np.testing.assert_allclose(d, 1.0)
    dx = np.diff(pos, axis=1)
    r = info["exposure"] / 6
    msd = (dx**2).mean(axis=(1, 2))
    cov = (dx[:, 1:] * dx[:, :-1]).mean(axis=(1, 2))
    np.testing.assert_allclose(msd.mean(), (2 * (1 - 2 * r)).mean(), rtol=0.01)
    np.testing.assert_allclose(cov.mean(), (2 * r).mean(), atol=0.01)
    slope = np.polyfit(r, cov, 1)[0]  # the covariance follows each track's own exposure
    np.testing.assert_allclose(slope, 2.0, rtol=0.1)


def test_forward_labels_line_up_with_the_motion():
    """Steps normalised by the label of their start frame have unit variance, also at the change
    points, where a one-frame shift would be off by the D ratio (up to 1e6)."""
    world = AcquiredWorld(**{**SINGLE_D, "max_changepoints": 1, "p_no_blur": 1.0})
    pos, d, _ = acquired_tracks(2000, 60, 2, world, 8)
    z2 = (np.diff(pos, axis=1) ** 2).sum(-1) / (4 * d[:, :-1])
    cp = np.argmax(d[:, 1:] != d[:, :-1], axis=1) + 1  # first frame of the new segment
    rows = np.arange(len(d))
    np.testing.assert_allclose(z2[rows, cp].mean(), 1.0, rtol=0.1)
    np.testing.assert_allclose(z2[rows, cp - 1].mean(), 1.0, rtol=0.1)


def test_acquired_tracks_labels_scale_and_regimes():
    world = AcquiredWorld(p_immobile=0.5, p_drift=0.0)
    pos, d, info = acquired_tracks(400, 120, 2, world, np.random.default_rng(3))
    assert pos.shape == (400, 120, 2) and d.shape == (400, 120) and np.isfinite(pos).all()
    np.testing.assert_array_equal(d[:, -1], d[:, -2])  # the last frame repeats the one before
    imm = info["immobile"]
    assert 0.3 < imm.mean() < 0.7 and 0.3 < info["markov"].mean() < 0.6
    # rescaled: the slowest mobile level is 1 px^2/frame; immobile frames sit 1e-4..1e-3 below it
    mobile_min = np.array([row[row > 2e-3].min() for row in d[~imm]])
    np.testing.assert_allclose(mobile_min, 1.0, rtol=1e-9)
    low = d[imm].min(axis=1)
    assert (low >= 1e-4 * 0.999).all() and (low <= 1e-3 * 1.001).all()
    assert (info["exposure"] == 0).mean() > 0.2 and info["exposure"].max() <= 1.0
    assert (info["snr"] == 0).mean() > 0.05 and info["snr"].max() > 1.0


def test_markov_switching_dwell_times():
    world = AcquiredWorld(dwell_range=(4.0, 4.0), p_three_states=0.0, ratio_range=(10.0, 10.0))
    d = markov_d(300, 400, world, np.random.default_rng(4))
    assert (np.array([np.unique(r).size for r in d]) == 2).all()  # two levels, a factor 10 apart
    np.testing.assert_allclose(d.max(1) / d.min(1), 10.0)
    switches = (np.diff(d, axis=1) != 0).sum() / d[:, 1:].size
    np.testing.assert_allclose(switches, 1 / 4, rtol=0.05)  # leaving probability 1 / dwell


def test_make_batch_acquired_world():
    tc = TrainConfig(batch_size=32, world="acquired")
    pos, logd = make_batch(tc, 2, np.random.default_rng(5), n_frames=80)
    assert pos.shape == (32, 80, 2) and logd.shape == (32, 80) and np.isfinite(logd).all()
    with pytest.raises(ValueError, match="unknown training world"):
        TrainConfig(world="moon")
    with pytest.raises(TypeError, match="unknown acquired-world parameter"):
        make_batch(
            TrainConfig(world="acquired", acquired={"exposure": 1}), 2, np.random.default_rng(0)
        )


def test_lr_schedule_warms_up_then_decays():
    f = [lr_factor(s, 1000) for s in range(1000)]
    assert f[0] == pytest.approx(1 / 20) and f[19] == pytest.approx(1.0)
    assert np.all(np.diff(f[20:]) <= 0) and f[-1] == pytest.approx(0.02, abs=1e-4)


def test_evaluate_d_and_alpha():
    from napari_step.model import XResAttn

    torch.manual_seed(0)
    model = XResAttn(ModelConfig(**TINY)).eval()
    pos = np.random.default_rng(6).standard_normal((10, 50, 2)).cumsum(1)
    with torch.no_grad():
        own = 10 ** model(torch.as_tensor(pos, dtype=torch.float32)).double().numpy()
    r = evaluate(model, pos, own)
    assert r["l1_log10"] < 1e-5 and r["rel_err"] < 1e-4
    r2 = evaluate(model, pos, own * 10)
    assert r2["l1_log10"] == pytest.approx(1.0, abs=1e-5) and r2["rel_err"] == pytest.approx(0.9)
    alpha = XResAttn(ModelConfig(**TINY, target="alpha", y_range=[0.0, 2.0])).eval()
    assert set(evaluate(alpha, pos, np.ones((10, 50)))) == {"mae_alpha"}


def test_acquired_training_runs_resumes_and_records(tmp_path):
    """Real optimisation steps on tiny batches, validation on both acquired sets, snapshots, the
    LambdaLR schedule's lr in the saved optimiser, then a resume that finishes the schedule."""
    tc = TrainConfig(
        batch_size=8,
        total_steps=12,
        val_tracks=20,
        val_every=3,
        lr=1e-3,
        length_range=[20, 40],
        world="acquired",
    )
    path = tmp_path / "acq.pt"
    rec = train(
        path,
        ModelConfig(**TINY),
        tc,
        max_steps=6,
        progress=False,
        device="cpu",
        snapshots=True,
        card={"name": "tiny"},
    )
    assert rec["step"] == 6 and rec["samples_seen"] == 48 and len(rec["validation"]) == 2
    entry = rec["validation"][-1]
    assert {"val_l1_log10", "val_rel_err", "clean_l1_log10", "clean_rel_err"} <= set(entry)
    assert rec["best_val_l1_log10"] == min(v["val_l1_log10"] for v in rec["validation"])
    assert path.with_suffix(".step3.pt").exists() and path.with_suffix(".best.pt").exists()
    ckpt = read_checkpoint(path)
    assert ckpt["card"]["frame_convention"] == "forward"
    lr = ckpt["optimizer"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(1e-3 * lr_factor(6, 12))
    rec2 = train(path, progress=False, device="cpu")
    assert rec2["step"] == 12 and len(rec2["sessions"]) == 2
    assert rec2["train_config"]["world"] == "acquired"
    assert np.isfinite(rec2["validation"][-1]["val_l1_log10"])


def test_fine_tuning_the_shipped_model_on_the_acquired_world(tmp_path):
    """The shipped (legacy, pre-refactor) checkpoint still starts a fine-tune; the result keeps
    its source's backward convention (no one-frame shift to relearn), says so in its card, and
    records the source."""
    tc = TrainConfig(
        batch_size=4,
        total_steps=2,
        val_tracks=8,
        val_every=10,
        n_frames=60,
        p_other_length=0.0,
        world="acquired",
        lr=1e-5,
    )
    out = tmp_path / "ft.pt"
    rec = train(
        out,
        train_config=tc,
        init_weights=WEIGHTS_DIR / "step_d_2d.pt",
        progress=False,
        device="cpu",
    )
    assert rec["init_from"]["file"] == "step_d_2d.pt" and rec["step"] == 2
    assert rec["train_config"]["frame_convention"] == "backward"
    model, ckpt = load_checkpoint(out)
    assert model.frame_convention == "backward" and model.config.normalise
    assert ckpt["card"]["frame_convention"] == "backward"


def test_backward_labels_are_the_forward_ones_one_frame_later():
    """A backward-convention batch holds at frame t the step t-1 -> t: the same tracks drawn with
    the same seed, labels shifted by one frame (frame 0 repeats frame 1)."""
    fwd = TrainConfig(batch_size=16, n_frames=60, p_other_length=0.0, world="acquired")
    bwd = TrainConfig(**{**fwd.__dict__, "frame_convention": "backward"})
    pos_f, y_f = make_batch(fwd, 2, np.random.default_rng(4))
    pos_b, y_b = make_batch(bwd, 2, np.random.default_rng(4))
    np.testing.assert_array_equal(pos_f, pos_b)
    np.testing.assert_array_equal(y_b[:, 1:], y_f[:, :-1])
    np.testing.assert_array_equal(y_b[:, 0], y_f[:, 0])
    with pytest.raises(ValueError, match="frame_convention"):
        TrainConfig(frame_convention="sideways")


def test_classic_batches_mixed_into_the_acquired_world():
    """p_classic = 1 draws the classic world (no blur: lag-1 covariance of the steps ~ 0), 0 the
    acquired one (blur on 2/3 of the tracks: positive covariance on average)."""
    kw = dict(batch_size=256, n_frames=100, p_other_length=0.0, world="acquired", p_noise=0.0)
    cov = {}
    for p in (0.0, 1.0):
        tc = TrainConfig(**kw, p_classic=p, acquired={"p_noise_free": 1.0})
        pos, _ = make_batch(tc, 2, np.random.default_rng(5))
        dx = np.diff(pos, axis=1)
        dx = dx / np.sqrt((dx**2).mean(axis=(1, 2), keepdims=True))
        cov[p] = (dx[:, 1:] * dx[:, :-1]).mean()
    assert cov[1.0] == pytest.approx(0.0, abs=0.01)
    assert cov[0.0] > 0.03


def test_the_world_blends_frames_when_asked():
    """With frame blending the world records each track's blend weights; the steps then correlate
    at lag 2 when a second earlier frame is mixed in (a one-frame blur cannot do that)."""
    world = AcquiredWorld(**{**SINGLE_D, "p_no_blur": 1.0, "p_blend": 1.0})
    pos, d, info = acquired_tracks(2000, 80, 2, world, 9)
    w = info["blend"]
    assert w.shape == (2000, 2) and (w[:, 0] > 0).all() and (w[:, 1] == 0).mean() > 0.3
    dx = np.diff(pos, axis=1)
    lag2 = (dx[:, 2:] * dx[:, :-2]).mean(axis=(1, 2))
    assert lag2[w[:, 1] > 0.2].mean() > 0.05 > abs(lag2[w[:, 1] == 0].mean())
    off = acquired_tracks(50, 80, 2, AcquiredWorld(**SINGLE_D), 9)[2]["blend"]
    assert (off == 0).all()


def test_acquired_validation_sets_are_seeded():
    tc = TrainConfig(world="acquired")
    a = acquired_validation_sets(tc, 5)
    b = acquired_validation_sets(tc, 5)
    assert set(a) == {"val", "clean"}
    np.testing.assert_array_equal(a["val"][0], b["val"][0])
    clean_d = a["clean"][1]
    assert all(np.unique(r).size <= 5 for r in clean_d)  # piecewise constant: 1-4 change points


def test_short_switching_tracks_with_immobile_states_keep_a_positive_d():
    """A short Markov track whose only mobile frame is the last one used to become all immobile
    after the last-frame repeat, so its D was scaled by 1/inf to 0 (log10 D = -inf, a NaN loss)."""
    world = AcquiredWorld(p_markov=1.0, p_immobile=1.0, p_drift=0.0, dwell_range=(3.0, 10.0))
    rng = np.random.default_rng(0)
    for _ in range(40):
        _, d, _ = acquired_tracks(256, 20, 2, world, rng)
        assert np.all(np.isfinite(d) & (d > 0))


def test_a_non_finite_batch_is_skipped_not_learned(tmp_path, monkeypatch):
    """One batch with a -inf label (log10 of D = 0) must not turn the weights into NaN."""
    import napari_step.train_data as train_data

    real = train_data.make_batch
    calls = {"n": 0}

    def sometimes_bad(*args, **kwargs):
        pos, y = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            y = y.copy()
            y[0, 3] = -np.inf
        return pos, y

    monkeypatch.setattr(train_data, "make_batch", sometimes_bad)
    tc = TrainConfig(batch_size=4, total_steps=4, val_tracks=10, val_every=100, n_frames=30)
    tc.p_other_length = 0.0
    rec = train(
        tmp_path / "m.pt",
        ModelConfig(**TINY),
        tc,
        max_steps=4,
        progress=False,
        device="cpu",
        workers=0,
    )
    assert rec["step"] == 4 and rec["skipped_batches"] == 2
    model = load_checkpoint(tmp_path / "m.pt")[0]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_short_tracks_get_the_long_tracks_density_of_heterogeneity():
    from napari_step.train_data import TrainConfig, make_batch

    rng = np.random.default_rng(0)
    kw = dict(batch_size=256, p_drift=1.0, drift_decades=3.0, p_noise=0.0)
    legacy, scaled = TrainConfig(**kw), TrainConfig(heterogeneity_per_frame=True, **kw)
    _, y_legacy = make_batch(legacy, 2, rng, n_frames=20)
    _, y_scaled = make_batch(scaled, 2, rng, n_frames=20)
    span = lambda y: y.max(axis=1) - y.min(axis=1)  # noqa: E731
    # legacy: a 20-frame track may jump (change point) and drift by up to 3 decades
    assert span(y_legacy).max() > 1.0
    # per frame: round(4 * 20 / 200) = 0 change points, drift <= 3 * 20 / 200 = 0.3 decades
    assert span(y_scaled).max() <= 0.3 + 1e-9
    assert np.mean(span(y_scaled) > 0.01) > 0.5  # the drifts are still there
    # full-length tracks are unchanged: change points and drifts as before
    _, y_long = make_batch(scaled, 2, rng, n_frames=200)
    assert span(y_long).max() > 1.0
    for bad in ("sqrt", ""):
        with pytest.raises(ValueError, match="length_sampling"):
            TrainConfig(length_sampling=bad)


def test_log_uniform_lengths_cover_short_tracks():
    from napari_step.train_data import TrainConfig, _other_length

    rng = np.random.default_rng(1)
    cfg = TrainConfig(length_range=[10, 400], length_sampling="log-uniform")
    n = np.array([_other_length(cfg, rng) for _ in range(5000)])
    assert n.min() >= 10 and n.max() <= 400
    assert 0.15 < np.mean(n < 20) < 0.22  # ln 2 / ln 40 = 0.19 (uniform: 0.026)


def test_freeze_batchnorm_keeps_the_running_statistics(tmp_path):
    # a fine-tune on 10-frame batches drags unfrozen statistics far from the 200-frame tracks
    # the model was trained and is validated on (the shipped model's error then explodes)
    from napari_step.train import train
    from napari_step.train_data import TrainConfig

    src = WEIGHTS_DIR / "step_d_2d.pt"

    def stats(path):
        sd = read_checkpoint(path)["state_dict"]
        return {k: v.clone() for k, v in sd.items() if "running_mean" in k or "running_var" in k}

    before = stats(src)
    for freeze in (True, False):
        tc = TrainConfig(
            batch_size=8,
            total_steps=3,
            val_tracks=16,
            val_every=3,
            n_frames=12,
            p_other_length=0.0,
            freeze_batchnorm=freeze,
        )
        out = tmp_path / f"ft_{freeze}.pt"
        train(out, train_config=tc, init_weights=src, max_steps=3, device="cpu", progress=False)
        after = stats(out)
        same = all(torch.equal(before[k], after[k]) for k in before)
        assert same is freeze
