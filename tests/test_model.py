import numpy as np
import pytest
import torch

from napari_step.model import (
    DEFAULT_D_CONFIG,
    PAPER_D_CONFIG,
    CheckpointError,
    ModelConfig,
    XResAttn,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from napari_step.predict import WEIGHTS_DIR


def test_paper_config_has_about_8m_parameters():
    n = sum(p.numel() for p in XResAttn(PAPER_D_CONFIG).parameters())
    assert 7.5e6 < n < 8.5e6
    n_default = sum(p.numel() for p in XResAttn(DEFAULT_D_CONFIG).parameters())
    assert n_default < n / 5


def test_output_per_frame_and_within_range():
    m = XResAttn(ModelConfig(normalise=False, y_range=[-3.1, 3.1])).eval()
    with torch.inference_mode():
        y = m(torch.randn(3, 57, 2).cumsum(1))
    assert y.shape == (3, 57)
    assert (y > -3.1).all() and (y < 3.1).all()


def test_checkpoint_round_trip(tmp_path):
    m = XResAttn(
        ModelConfig(
            blocks=[16, 16],
            blocks_per_stage=[1, 1],
            stem=[8],
            dim_ff=32,
            n_heads=2,
            n_encoder_layers=1,
        )
    )
    path = tmp_path / "m.pt"
    save_checkpoint(path, m, record={"step": 3}, card={"name": "tiny"})
    m2, ckpt = load_checkpoint(path)
    assert ckpt["record"]["step"] == 3 and ckpt["card"]["name"] == "tiny"
    x = torch.randn(2, 30, 2).cumsum(1)
    m.eval()
    with torch.inference_mode():
        assert torch.allclose(m(x), m2(x))


def test_corrupt_truncated_and_foreign_files_are_refused(tmp_path):
    good = WEIGHTS_DIR / "step_d_2d.pt"
    data = good.read_bytes()
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.pt"):
        load_checkpoint(trunc)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a model at all" * 10)
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a napari-step checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_mismatched_config_is_refused(tmp_path):
    m = XResAttn(DEFAULT_D_CONFIG)
    path = tmp_path / "mismatch.pt"
    save_checkpoint(path, m)
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["blocks"] = [64, 128, 256]
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(path)
    ckpt["config"]["not_a_key"] = 1
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="unknown model config"):
        load_checkpoint(path)


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch EXPLOITED_BY_PICKLE",))


def test_pickled_code_is_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save(
        {"format": "napari-step-checkpoint", "config": {}, "state_dict": {}, "payload": _Exploit()},
        path,
    )
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(path)
    assert not (tmp_path / "EXPLOITED_BY_PICKLE").exists()


def test_shipped_weights_load_with_card():
    model, ckpt = load_checkpoint(WEIGHTS_DIR / "step_d_2d.pt")
    card = ckpt["card"]
    for key in ("training_data", "noise", "d_range", "accuracy"):
        assert key in card
    assert ckpt["record"]["validation"], "training record travels with the weights"
    assert (WEIGHTS_DIR / "step_d_2d.pt").stat().st_size < 5e6


def test_training_runs_and_resumes(tmp_path):
    from napari_step.train import TrainConfig, train

    cfg = ModelConfig(
        stem=[8], blocks=[16, 16], blocks_per_stage=[1, 1], n_heads=2, dim_ff=32, n_encoder_layers=1
    )
    tc = TrainConfig(
        batch_size=16, total_steps=40, val_tracks=40, val_every=10, length_range=[20, 60]
    )
    path = tmp_path / "run.pt"
    rec = train(path, cfg, tc, max_steps=20, progress=False, device="cpu")
    assert rec["step"] == 20 and rec["samples_seen"] == 320 and len(rec["validation"]) == 2
    first_loss = rec["validation"][0]["val_l1_log10"]
    rec2 = train(path, progress=False, device="cpu")  # resumes and finishes the schedule
    assert rec2["step"] == 40 and len(rec2["sessions"]) == 2
    assert rec2["validation"][-1]["val_l1_log10"] < first_loss + 0.5
    assert path.with_suffix(".best.pt").exists()
    load_checkpoint(path)  # a training checkpoint is a valid, safe checkpoint


def test_fine_tuning_starts_from_the_given_weights_and_trains_on_drifting_d(tmp_path):
    from napari_step.train import TrainConfig, make_batch, train

    cfg = ModelConfig(
        stem=[8], blocks=[16, 16], blocks_per_stage=[1, 1], n_heads=2, dim_ff=32, n_encoder_layers=1
    )
    tc = TrainConfig(
        batch_size=16, total_steps=10, val_tracks=40, val_every=10, length_range=[20, 60]
    )
    base = tmp_path / "base.pt"
    train(base, cfg, tc, progress=False, device="cpu")
    source, _ = load_checkpoint(base)

    # drifting-D batches: labels change smoothly inside segments, positions follow them
    drift_cfg = TrainConfig(batch_size=64, p_drift=1.0, p_noise=0.0)
    pos, logd = make_batch(drift_cfg, 2, np.random.default_rng(0), n_frames=200)
    assert np.median([np.unique(row).size for row in logd]) > 100
    var_early = (np.diff(pos[:, :40], axis=1) ** 2).sum(-1) / 4
    np.testing.assert_allclose(
        np.log10(var_early.mean(1)), np.log10((10 ** logd[:, :39]).mean(1)), atol=0.6
    )

    tuned = tmp_path / "tuned.pt"
    ft = TrainConfig(
        batch_size=16,
        total_steps=2,
        lr=1e-12,
        val_tracks=40,
        val_every=10,
        length_range=[20, 60],
        p_drift=0.5,
    )
    rec = train(tuned, ModelConfig(dim=1), ft, progress=False, device="cpu", init_weights=base)
    assert rec["init_from"]["file"] == "base.pt" and rec["init_from"]["step"] == 10
    assert rec["train_config"]["p_drift"] == 0.5 and rec["step"] == 2
    model, ckpt = load_checkpoint(tuned)
    assert model.config == source.config  # the source architecture, not the argument
    tuned_params = dict(model.named_parameters())  # (batch-norm statistics move in any case)
    for name, w in source.named_parameters():
        torch.testing.assert_close(tuned_params[name], w, atol=1e-6, rtol=0)


def test_frame_convention_in_the_card(tmp_path):
    """New checkpoints say "forward"; a card without the entry is legacy "backward"; anything
    else is refused when loading."""
    m = XResAttn(
        ModelConfig(
            blocks=[16], blocks_per_stage=[1], stem=[8], dim_ff=32, n_heads=2, n_encoder_layers=1
        )
    )
    assert m.frame_convention == "forward"
    path = tmp_path / "m.pt"
    save_checkpoint(path, m, card={"name": "tiny"})
    model, ckpt = load_checkpoint(path)
    assert ckpt["card"]["frame_convention"] == "forward" == model.frame_convention
    legacy = {**ckpt, "card": {k: v for k, v in ckpt["card"].items() if k != "frame_convention"}}
    torch.save(legacy, tmp_path / "legacy.pt")
    assert load_checkpoint(tmp_path / "legacy.pt")[0].frame_convention == "backward"
    shipped, card = load_checkpoint(WEIGHTS_DIR / "step_d_2d.pt")  # trained backward, says so
    assert card["card"]["frame_convention"] == "backward" == shipped.frame_convention
    shipped, card = load_checkpoint(WEIGHTS_DIR / "step_d_2d_acquired.pt")  # its fine-tune
    assert card["card"]["frame_convention"] == "backward" == shipped.frame_convention
    world = card["card"]["training_world"]  # the card says what the model assumes
    assert world["acquired"]["snr_range"] == [1e-3, 10.0] and world["p_classic"] < 1
    ckpt["card"]["frame_convention"] = "sideways"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="unknown frame_convention"):
        load_checkpoint(path)


def test_text_file_is_refused_with_a_checkpoint_error(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_text("epoch 101 loss 0.25\n")  # torch.load used to raise KeyError: 101
    with pytest.raises(CheckpointError, match="weights.pt: not a PyTorch checkpoint"):
        read_checkpoint(path)


def test_head_stays_float32_under_autocast():
    """bf16 autocast runs the convolutions and attention in bf16 but the output head in float32:
    outputs stay finely resolved (a bf16 sigmoid would quantise log10 D in ~0.02 decade steps)."""
    m, _ = load_checkpoint(WEIGHTS_DIR / "step_d_2d.pt")
    x = torch.randn(8, 100, 2).cumsum(1)
    with torch.inference_mode():
        ref = m(x)
        with torch.autocast("cpu", torch.bfloat16):
            low = m(x)
    assert low.dtype == torch.float32
    assert (low - ref).abs().mean() < 0.01
    steps = np.diff(np.unique(low.numpy().round(7)))
    assert np.median(steps) < 1e-3  # not on a coarse bf16 grid
