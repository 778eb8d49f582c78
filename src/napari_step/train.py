"""Training STEP models on freshly simulated tracks, resumable and time-budgeted.

Every batch is new data from the simulator, so the network never sees the same track twice and
cannot overfit; validation uses a fixed seeded set. What is simulated follows the model's target
(``ModelConfig.target``):

* ``"log10_d"``: Brownian motion with 0-4 change points, D log-uniform in 1e-3..1e3 px^2/frame,
  localisation noise at random levels including none; L1 loss on log10 D.
* ``"alpha"``: tracks whose anomalous-diffusion model (ATTM, CTRW, FBM, Lévy walk, SBM) and
  exponent change at 0-4 change points
  (:func:`napari_step.simulate.anomalous_changepoints`), with the same noise
  augmentation relative to the typical step; L1 loss on the per-frame alpha, validation reports
  the mean absolute error of alpha.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .model import ModelConfig, XResAttn, read_checkpoint, save_checkpoint
from .simulate import (add_localisation_noise, brownian_changepoints, brownian_from_d,
                       smooth_log_d_drift)
from .simulate import MODELS as ANOMALOUS_MODELS
from .simulate import anomalous_changepoints
from .train_world import AcquiredWorld, acquired_tracks

__all__ = [
    "TrainConfig",
    "train",
    "make_batch",
    "validation_set",
    "evaluate",
    "alpha_validation_set",
    "evaluate_alpha",
    "DEFAULT_ALPHA_CONFIG",
    "TARGETS",
]

TARGETS = ("log10_d", "alpha")
# The alpha model: the default architecture, scale-free inputs, sigmoid onto alpha in [0, 2].
DEFAULT_ALPHA_CONFIG = ModelConfig(target="alpha", y_range=[0.0, 2.0], normalise=True)


@dataclass
class TrainConfig:
    """What to simulate and how to optimise. Lengths are frames, D is px^2/frame."""

    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    total_steps: int = 20000  # length of the cosine schedule; training may stop earlier
    d_range: list = field(default_factory=lambda: [1e-3, 1e3])
    n_frames: int = 200  # the paper's track length, used for most batches
    length_range: list = field(default_factory=lambda: [20, 400])  # other batches
    p_other_length: float = 0.3
    max_changepoints: int = 4
    min_segment: int = 10
    p_noise: float = 0.5
    noise_rel_range: list = field(default_factory=lambda: [0.03, 1.0])  # sigma / sqrt(2 D_min)
    val_tracks: int = 1000
    val_every: int = 500
    seed: int = 0
    # D models: share of tracks whose log10 D also drifts smoothly (power law, ramp, gradual
    # transition; see simulate.smooth_log_d_drift) on top of the change points
    p_drift: float = 0.0
    drift_decades: float = 2.0
    # alpha models only: which AnDi models to simulate, and an optional per-segment D range
    # (log-uniform factor on the step variance) so the step size also changes at change points
    anomalous_models: list = field(default_factory=lambda: list(ANOMALOUS_MODELS))
    anomalous_d_range: list | None = None
    # D models: "classic" (Brownian, instantaneous positions, legacy labels) or "acquired"
    # (napari_step.train_world: blur, noise, Markov switching, immobile periods; forward labels),
    # with ``acquired`` overriding AcquiredWorld's parameters
    world: str = "classic"
    acquired: dict = field(default_factory=dict)


def make_batch(cfg: TrainConfig, dim: int, rng: np.random.Generator, n_frames: int | None = None,
               target: str = "log10_d"):
    """One batch of simulated tracks: (positions (B, T, dim), per-frame target (B, T)).

    ``target="log10_d"`` (default): Brownian tracks and their true log10 D; ``"alpha"``:
    anomalous tracks and their true per-frame exponent alpha.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: use one of {list(TARGETS)}")
    if n_frames is None:
        if rng.uniform() < cfg.p_other_length:
            n_frames = int(rng.integers(cfg.length_range[0], cfg.length_range[1] + 1))
        else:
            n_frames = cfg.n_frames
    k_max = min(cfg.max_changepoints, n_frames // cfg.min_segment - 1)
    k_lo = 1 if k_max >= 1 and n_frames >= 50 else 0
    if target == "alpha":
        return _alpha_batch(cfg, dim, rng, n_frames, (k_lo, max(k_max, 0)))
    if cfg.world == "acquired":
        pos, d, _ = acquired_tracks(cfg.batch_size, n_frames, dim, acquired_world(cfg), rng)
        return pos, np.log10(d)
    sim = brownian_changepoints(
        cfg.batch_size,
        n_frames,
        dim,
        n_changepoints=(k_lo, max(k_max, 0)),
        min_segment=cfg.min_segment,
        d_range=cfg.d_range,
        rng=rng,
    )
    pos, d = sim.positions, sim.d
    drifting = rng.uniform(size=cfg.batch_size) < cfg.p_drift
    if drifting.any():
        lo, hi = np.log10(cfg.d_range)
        logd = np.log10(d[drifting]) + smooth_log_d_drift(drifting.sum(), n_frames,
                                                          cfg.drift_decades, rng)
        d = d.copy()
        d[drifting] = 10 ** np.clip(logd, lo, hi)
        pos = pos.copy()
        pos[drifting] = brownian_from_d(d[drifting], dim, rng)
    noisy = rng.uniform(size=cfg.batch_size) < cfg.p_noise
    if noisy.any():
        lo, hi = np.log10(cfg.noise_rel_range)
        rel = 10 ** rng.uniform(lo, hi, size=noisy.sum())
        sigma = rel * np.sqrt(2 * d[noisy].min(axis=1))
        pos = pos.copy()
        pos[noisy] = add_localisation_noise(pos[noisy], sigma, rng)
    return pos, np.log10(d)


def _alpha_batch(cfg: TrainConfig, dim: int, rng, n_frames: int, n_changepoints):
    """Anomalous tracks (typical per-axis step 1) with noise relative to that step."""
    sim = anomalous_changepoints(
        cfg.batch_size,
        n_frames,
        dim,
        n_changepoints=n_changepoints,
        min_segment=cfg.min_segment,
        models=tuple(cfg.anomalous_models),
        d_range=cfg.anomalous_d_range,
        rng=rng,
    )
    pos = sim.positions
    noisy = rng.uniform(size=cfg.batch_size) < cfg.p_noise
    if noisy.any():
        lo, hi = np.log10(cfg.noise_rel_range)
        sigma = 10 ** rng.uniform(lo, hi, size=noisy.sum())  # x the RMS per-axis step (1)
        pos = pos.copy()
        pos[noisy] = add_localisation_noise(pos[noisy], sigma, rng)
    return pos, sim.alpha


class _SimulatedBatches(torch.utils.data.IterableDataset):
    """Endless simulated batches; each DataLoader worker gets its own seed stream."""

    def __init__(self, cfg: TrainConfig, dim: int, seed_key, target: str = "log10_d"):
        self.cfg, self.dim, self.seed_key, self.target = cfg, dim, list(seed_key), target

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng(self.seed_key + [info.id if info else 0])
        while True:
            pos, logd = make_batch(self.cfg, self.dim, rng, target=self.target)
            yield torch.as_tensor(pos, dtype=torch.float32), torch.as_tensor(logd, dtype=torch.float32)


def validation_set(n_tracks=1000, n_frames=200, dim=2, noise_rel=0.0, seed=12345, d_range=(1e-3, 1e3)):
    """Fixed seeded test tracks with 1-4 change points (equal numbers of each)."""
    rng = np.random.default_rng(seed)
    sim = brownian_changepoints(n_tracks, n_frames, dim, (1, 4), 10, d_range, rng=rng)
    pos = sim.positions
    if noise_rel > 0:
        pos = add_localisation_noise(pos, noise_rel * np.sqrt(2 * sim.d.min(axis=1)), rng)
    return pos, sim.d


@torch.inference_mode()
def evaluate(model: XResAttn, positions: np.ndarray, d_true: np.ndarray, device="cpu", batch=500):
    """(mean |log10 error|, mean relative error |D_pred/D_true - 1|) over every frame."""
    model.eval()
    preds = []
    for i in range(0, len(positions), batch):
        x = torch.as_tensor(positions[i : i + batch], dtype=torch.float32, device=device)
        preds.append(model(x).float().cpu().numpy())
    logp = np.concatenate(preds)
    logt = np.log10(d_true)
    return float(np.abs(logp - logt).mean()), float(np.abs(10 ** (logp - logt) - 1).mean())


def acquired_world(cfg: TrainConfig) -> AcquiredWorld:
    """The acquired world a config trains on (its d_range, change points and drifts)."""
    base = {"d_range": tuple(cfg.d_range), "max_changepoints": cfg.max_changepoints,
            "min_segment": cfg.min_segment, "p_drift": cfg.p_drift,
            "drift_decades": cfg.drift_decades}
    return AcquiredWorld(**{**base, **cfg.acquired})


CLEAN_WORLD = {"p_markov": 0.0, "p_immobile": 0.0, "p_drift": 0.0, "p_no_blur": 1.0,
               "p_noise_free": 1.0}  # the classic protocol with forward labels


def acquired_validation_sets(cfg: TrainConfig, n_tracks: int = 1000, dim: int = 2, seed=12345):
    """{name: (positions, d)}: the acquired world and its clean corner (1-4 change points, no
    blur, no noise), 200 frames, forward labels, seeded."""
    world = acquired_world(cfg)
    clean = AcquiredWorld(**{**world.describe(), **CLEAN_WORLD})
    out = {}
    for name, w in (("acquired", world), ("clean", clean)):
        pos, d, _ = acquired_tracks(n_tracks, 200, dim, w, np.random.default_rng(seed))
        out[name] = (pos, d)
    return out


def alpha_validation_set(n_tracks=1000, n_frames=200, dim=2, noise_rel=0.0, seed=12345,
                         models=ANOMALOUS_MODELS, d_range=None):
    """Fixed seeded anomalous tracks with 1-4 change points: (positions, alpha (N, T))."""
    rng = np.random.default_rng(seed)
    sim = anomalous_changepoints(n_tracks, n_frames, dim, (1, 4), 10, models=tuple(models),
                                 d_range=d_range, rng=rng)
    pos = sim.positions
    if noise_rel > 0:
        pos = add_localisation_noise(pos, noise_rel, rng)
    return pos, sim.alpha


@torch.inference_mode()
def evaluate_alpha(model: XResAttn, positions: np.ndarray, alpha_true: np.ndarray, device="cpu",
                   batch=500) -> float:
    """Mean absolute error of the per-frame alpha over every frame."""
    model.eval()
    preds = []
    for i in range(0, len(positions), batch):
        x = torch.as_tensor(positions[i : i + batch], dtype=torch.float32, device=device)
        preds.append(model(x).float().cpu().numpy())
    return float(np.abs(np.concatenate(preds) - alpha_true).mean())


def _pick_device(device):
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def train(
    out_path,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    resume: bool = True,
    max_minutes: float = 60.0,
    max_steps: int | None = None,
    device=None,
    progress: bool = True,
    card: dict | None = None,
    workers: int | None = None,
    fit_schedule: bool = False,
    init_weights=None,
    snapshots: bool = False,
) -> dict:
    """Train (or resume) a model, saving a checkpoint at every validation; returns the record.

    The model's ``target`` picks the data: Brownian tracks for "log10_d", anomalous tracks for
    "alpha" (use :data:`DEFAULT_ALPHA_CONFIG`; validation then records ``val_mae_alpha`` and the
    best score is ``best_val_mae_alpha``).

    The checkpoint at ``out_path`` holds the weights, the optimiser state and the training record
    (samples seen, wall time, device, validation error per evaluation) so a later session resumes
    where this one stopped. The best weights by validation error go to ``<out_path>.best.pt``.
    ``fit_schedule`` (fresh runs only) times the first batches and sizes the cosine schedule so it
    ends within ``max_minutes``. ``workers`` simulate data in parallel processes (default: none on
    the CPU, where they would compete with training, and 6 on a GPU).
    ``init_weights`` (fresh runs only) starts from another checkpoint's weights and architecture:
    fine-tuning, e.g. a shipped model on a wider training distribution.
    """
    out_path = Path(out_path)
    device = _pick_device(device)
    state = None
    if resume and out_path.exists():
        state = read_checkpoint(out_path)
        model_config = ModelConfig.from_dict(state["config"])
        train_config = TrainConfig(**state["record"]["train_config"])
    init_state = None
    if state is None and init_weights is not None:
        init_state = read_checkpoint(init_weights)
        model_config = ModelConfig.from_dict(init_state["config"])
    model_config = model_config or ModelConfig()
    tc = train_config or TrainConfig()
    if model_config.target not in TARGETS:
        raise ValueError(
            f"unknown model target {model_config.target!r}: use one of {list(TARGETS)}"
        )
    alpha = model_config.target == "alpha"
    best_key = "best_val_mae_alpha" if alpha else "best_val_rel_err"

    torch.manual_seed(tc.seed)
    model = XResAttn(model_config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    record = {
        "train_config": asdict(tc),
        "step": 0,
        "samples_seen": 0,
        "wall_time_s": 0.0,
        "sessions": [],
        "validation": [],
        best_key: None,
        "init_from": None,
    }
    if init_state is not None:
        model.load_state_dict(init_state["state_dict"])
        prev = init_state["record"]
        record["init_from"] = {
            "file": Path(init_weights).name,
            "step": prev.get("step"),
            "samples_seen": prev.get("samples_seen"),
            "train_config": prev.get("train_config"),
        }
    if state is not None:
        model.load_state_dict(state["state_dict"])
        if "optimizer" in state:
            opt.load_state_dict(state["optimizer"])
        record.update({k: v for k, v in state["record"].items() if k in record})
    step0 = record["step"]
    if workers is None:
        workers = 6 if device.type == "cuda" else 0
    loader = torch.utils.data.DataLoader(
        # new data after every resume
        _SimulatedBatches(tc, model_config.dim, [tc.seed, step0], model_config.target),
        batch_size=None,
        num_workers=workers,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    batches = iter(loader)
    record["sessions"].append({"device": str(device), "start_step": step0, "torch": str(torch.__version__)})

    def lr_at(step):
        warm = max(1, tc.total_steps // 50)
        if step < warm:
            return tc.lr * (step + 1) / warm
        prog = min(1.0, (step - warm) / max(1, tc.total_steps - warm))
        return tc.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * prog)))

    if alpha:
        val_pos, val_y = alpha_validation_set(tc.val_tracks, 200, model_config.dim,
                                              models=tc.anomalous_models,
                                              d_range=tc.anomalous_d_range)
    elif tc.world == "acquired":
        val_sets = acquired_validation_sets(tc, tc.val_tracks, model_config.dim)
        val_pos, val_y = val_sets["acquired"]
    else:
        val_pos, val_y = validation_set(tc.val_tracks, 200, model_config.dim)
    use_amp = device.type == "cuda"
    t_start = time.time()
    wall0 = record["wall_time_s"]
    last_steps = max_steps if max_steps is not None else tc.total_steps - step0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=last_steps, desc="training", unit="batch")

    def checkpoint():
        if alpha:
            mae = evaluate_alpha(model, val_pos, val_y, device)
            l1, rel = mae, mae  # the score that picks the best weights
            record["validation"].append(
                {"step": record["step"], "samples_seen": record["samples_seen"],
                 "val_mae_alpha": mae, "wall_time_s": record["wall_time_s"]}
            )
        else:
            l1, rel = evaluate(model, val_pos, val_y, device)
            record["validation"].append(
                {"step": record["step"], "samples_seen": record["samples_seen"], "val_l1_log10": l1,
                 "val_rel_err": rel, "wall_time_s": record["wall_time_s"]}
            )
            if tc.world == "acquired":
                cl1, crel = evaluate(model, *val_sets["clean"], device)
                record["validation"][-1].update({"clean_l1_log10": cl1, "clean_rel_err": crel})
        if snapshots:
            save_checkpoint(out_path.with_suffix(f".step{record['step']}.pt"), model, record, card)
        best = record[best_key]
        # acquired world: the relative error is dominated by immobile frames (where only the
        # noise moves the spot and D is not identifiable), so the log error picks the best
        score = l1 if tc.world == "acquired" else rel
        is_best = best is None or score < best
        if is_best:
            record[best_key] = score
        save_checkpoint(out_path, model, record, card, optimizer=opt)
        if is_best:
            save_checkpoint(out_path.with_suffix(".best.pt"), model, record, card)
        model.train()
        return l1, rel

    model.train()
    done = 0
    while done < last_steps and record["step"] < tc.total_steps:
        if time.time() - t_start > max_minutes * 60:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(record["step"])
        x, y = (t.to(device, non_blocking=True) for t in next(batches))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            pred = model(x)
        loss = (pred.float() - y).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        record["step"] += 1
        record["samples_seen"] += len(x)
        record["wall_time_s"] = wall0 + time.time() - t_start
        done += 1
        if fit_schedule and step0 == 0 and done == 20:
            t20 = time.time()  # after worker start-up
        if fit_schedule and step0 == 0 and done == 120:
            per_step = (time.time() - t20) / 100
            left = max_minutes * 60 - (time.time() - t_start)
            tc.total_steps = int(done + left / per_step * 0.92)  # 8% for validation
            record["train_config"]["total_steps"] = tc.total_steps
            last_steps = tc.total_steps
            if bar is not None:
                bar.total = last_steps
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if record["step"] % tc.val_every == 0:
            l1, rel = checkpoint()
            if bar is not None and alpha:
                bar.write(f"step {record['step']}: val MAE(alpha) {l1:.4f}")
            elif bar is not None:
                bar.write(f"step {record['step']}: val L1(log10 D) {l1:.4f}, rel err {rel:.4f}")
    if bar is not None:
        bar.close()
    if not record["validation"] or record["validation"][-1]["step"] != record["step"]:
        checkpoint()
    return record

