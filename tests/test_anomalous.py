import warnings

import numpy as np
import pandas as pd
import pytest

from napari_step.anomalous import attm_analysis, loglog_slope, plot_attm, predict_alpha
from napari_step.model import CheckpointError, ModelConfig, load_checkpoint
from napari_step.predict import WEIGHTS_DIR


def test_loglog_slope_exact_and_ignores_bad_points():
    t = np.arange(1, 50, dtype=float)
    y = 3 * t**-0.7
    y[5] = np.nan
    y[7] = -1
    assert abs(loglog_slope(t, y) + 0.7) < 1e-12
    assert np.isnan(loglog_slope(t[:1], y[:1]))


# ------------------------------------------------------------------------------------------------
# alpha training and prediction (a tiny model trained for a few steps)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models on a shared, loaded 2-core machine run ~20x faster on one thread (two threads
    spin against other processes); results do not depend on it. Restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY_ALPHA = dict(
    target="alpha",
    y_range=[0.0, 2.0],
    normalise=True,
    stem=[8],
    blocks=[16, 16],
    blocks_per_stage=[1, 1],
    n_heads=2,
    dim_ff=32,
    n_encoder_layers=1,
)


@pytest.fixture(scope="module")
def alpha_run(tmp_path_factory):
    from napari_step.train import TrainConfig, train

    path = tmp_path_factory.mktemp("alpha") / "alpha.pt"
    tc = TrainConfig(
        batch_size=16,
        total_steps=20,
        val_tracks=40,
        val_every=5,
        n_frames=64,
        length_range=[20, 60],
    )
    rec = train(path, ModelConfig(**TINY_ALPHA), tc, max_steps=10, progress=False, device="cpu")
    return path, rec


def test_alpha_make_batch():
    from napari_step.train import TrainConfig, make_batch

    tc = TrainConfig(batch_size=32)
    rng = np.random.default_rng(0)
    pos, alpha = make_batch(tc, 2, rng, n_frames=120, target="alpha")
    assert pos.shape == (32, 120, 2) and alpha.shape == (32, 120)
    assert np.isfinite(pos).all() and (alpha > 0).all() and (alpha <= 2).all()
    # the default target is unchanged: Brownian tracks and log10 D
    pos_d, logd = make_batch(tc, 2, rng, n_frames=120)
    assert logd.min() >= -3 and logd.max() <= 3
    with pytest.raises(ValueError, match="unknown target"):
        make_batch(tc, 2, rng, target="hurst")


def test_alpha_training_runs_and_resumes(alpha_run):
    from napari_step.train import train

    path, rec = alpha_run
    assert rec["step"] == 10 and rec["samples_seen"] == 160 and len(rec["validation"]) == 2
    first = rec["validation"][0]["val_mae_alpha"]
    assert 0 < first < 1.5 and rec["best_val_mae_alpha"] is not None
    assert "best_val_rel_err" not in rec
    resumed = path.with_name("resumed.pt")
    resumed.write_bytes(path.read_bytes())
    rec2 = train(resumed, progress=False, device="cpu")  # resumes and finishes the schedule
    assert rec2["step"] == 20 and len(rec2["sessions"]) == 2
    assert rec2["validation"][-1]["val_mae_alpha"] < first + 0.3
    model, ckpt = load_checkpoint(resumed)
    assert model.config.target == "alpha" and model.config.y_range == [0.0, 2.0]
    assert path.with_suffix(".best.pt").exists()


def test_predict_alpha_shapes_order_and_invariances(alpha_run):
    path, _ = alpha_run
    rng = np.random.default_rng(1)
    lengths = [100, 5, 64, 100, 1200]
    tracks = [rng.standard_normal((n, 2)).cumsum(0) for n in lengths]
    with pytest.warns(UserWarning, match="shorter than"):
        out = predict_alpha(tracks, model=path)
    assert [len(o) for o in out] == lengths
    assert np.isnan(out[1]).all()
    for o in (out[0], out[2], out[3], out[4]):  # long track (windows) included
        assert np.isfinite(o).all() and (o >= 0).all() and (o <= 2).all()
    # batching, scale and offset do not change the prediction (alpha is scale-free)
    assert np.allclose(predict_alpha([tracks[2]], model=str(path))[0], out[2], atol=1e-4)
    assert np.allclose(predict_alpha(tracks[0] * 1e4 + 1e6, model=path)[0], out[0], atol=1e-3)
    assert np.allclose(
        predict_alpha(np.stack([tracks[0], tracks[3]]), model=path)[1], out[3], atol=1e-4
    )
    # still tracks have no alpha; 3-D tracks use the 2-D model on their projections
    assert np.isnan(predict_alpha(np.zeros((1, 50, 2)), model=path)[0]).all()
    out3 = predict_alpha(rng.standard_normal((2, 80, 3)).cumsum(1), model=path)
    assert out3[0].shape == (80,) and np.isfinite(out3[0]).all()
    calls = []
    predict_alpha(tracks[:1], model=path, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (1, 1)
    assert predict_alpha([], model=path) == []


def test_predict_alpha_errors(alpha_run, tmp_path):
    path, _ = alpha_run
    tracks = np.random.default_rng(2).standard_normal((2, 50, 2)).cumsum(1)
    with pytest.raises(CheckpointError, match="no built-in 3-D alpha model|1-D"):
        predict_alpha(tracks[..., :1])  # only a 2-D alpha model ships
    with pytest.raises(ValueError, match="unknown alpha model"):
        predict_alpha(tracks, model="fancy")
    with pytest.raises(ValueError, match="not alpha"):  # a D model is refused
        predict_alpha(tracks, model=WEIGHTS_DIR / "step_d_2d.pt")
    with pytest.raises(CheckpointError, match="not found"):
        predict_alpha(tracks, model=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="2-D tracks"):
        predict_alpha(tracks[..., :1], model=path)
    bad = tracks.copy()
    bad[1, 7] = np.nan
    with pytest.raises(ValueError, match="track 1"):
        predict_alpha(bad, model=path)


def test_cli_train_target_alpha_builds_alpha_config(monkeypatch, tmp_path, capsys):
    import napari_step.train as train_mod
    from napari_step.cli import main

    seen = {}

    def fake_train(out, model_config, tc, **kw):
        seen["config"], seen["tc"] = model_config, tc
        return {"step": 1, "samples_seen": 128, "validation": [{"val_mae_alpha": 0.25}]}

    monkeypatch.setattr(train_mod, "train", fake_train)
    argv = ["train", "--target", "alpha", "--out", str(tmp_path / "a.pt"), "--steps", "5"]
    assert main(argv) is None
    cfg = seen["config"]
    assert cfg.target == "alpha" and cfg.y_range == [0.0, 2.0] and cfg.normalise
    assert "MAE(alpha) 0.2500" in capsys.readouterr().out
    main(["train", "--out", str(tmp_path / "d.pt")])  # the D default is untouched
    assert seen["config"].target == "log10_d" and seen["config"].y_range == [-8.0, 3.0]


# ------------------------------------------------------------------------------------------------
# ATTM analysis
# ------------------------------------------------------------------------------------------------


def test_attm_analysis_small(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = attm_analysis(n_tracks=40, n_frames=200, seed=1)
    s = res.summary_dict()
    assert np.isfinite(list(s.values())).all()
    assert s["n_tracks"] == 40 and s["alpha_expected"] == 0.5
    assert res.d_step.shape == res.d_true.shape == res.d_tamsd.shape == (40, 200)
    assert len(res.per_track) == 40 and res.per_track.step_log10_err.notna().all()
    # STEP follows D(t) more closely than the sliding TA-MSD, frame by frame and in distribution
    assert s["step_median_log10_err"] < s["tamsd_median_log10_err"]
    assert s["step_median_log10_err"] < 0.15
    assert 0 <= s["jump_recall"] <= 1 and s["jump_precision"] > 0.5
    assert res.waits_true.size and res.waits_step.size
    assert len(res.examples) == 3
    png = plot_attm(res, tmp_path / "attm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20000


def test_reproduce_attm_cli(tmp_path, capsys):
    from napari_step.cli import main

    assert main(["reproduce", "attm", "--out", str(tmp_path), "--n-tracks", "20"]) == 0
    table = pd.read_csv(tmp_path / "attm_summary.csv")
    assert list(table.columns) == ["metric", "value"]
    assert {"step_mean_rel_err", "tamsd_mean_rel_err", "wait_ks_distance"} <= set(table.metric)
    assert (tmp_path / "attm.png").stat().st_size > 20000
    assert len(pd.read_csv(tmp_path / "attm_per_track.csv")) == 20
    assert "wrote" in capsys.readouterr().out


def test_shipped_alpha_model_on_fbm_of_known_alpha():
    """The shipped alpha model separates sub- from superdiffusive FBM and reads alpha within
    0.3 (median over frames and tracks) for alpha 0.4, 1.0 and 1.6."""
    from napari_step.simulate import fbm

    rng = np.random.default_rng(11)
    medians = {}
    for alpha in (0.4, 1.0, 1.6):
        pred = np.stack(predict_alpha(fbm(40, 200, alpha, 2, rng=rng)))
        medians[alpha] = np.median(pred[:, 20:-20])
        assert abs(medians[alpha] - alpha) < 0.3, medians
    assert medians[0.4] < medians[1.0] < medians[1.6]
    model, ckpt = load_checkpoint(WEIGHTS_DIR / "step_alpha_2d.pt")
    assert model.config.target == "alpha" and "accuracy" in ckpt["card"]
