"""Training data for STEP: the training configuration, simulated batches and validation sets.

:class:`TrainConfig` says what to simulate; :func:`make_batch` draws one batch for a model's target
and training world (``"classic"``: Brownian tracks with change points, drifts and noise;
``"acquired"``: :mod:`napari_step.train_world`, tracks as a camera records them); the validation
sets are fixed and seeded. Labels follow the forward convention (the value at frame t describes
the motion from t to t+1). Units: px, frames, D in px^2/frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .model import FRAME_CONVENTIONS, ModelConfig
from .simulate import MODELS as ANOMALOUS_MODELS
from .simulate import (
    add_localisation_noise,
    anomalous_changepoints,
    brownian_changepoints,
    brownian_from_d,
    smooth_log_d_drift,
)
from .train_world import AcquiredWorld, acquired_tracks

__all__ = [
    "TrainConfig",
    "make_batch",
    "validation_set",
    "alpha_validation_set",
    "acquired_validation_sets",
    "acquired_world",
    "CLEAN_WORLD",
    "DEFAULT_ALPHA_CONFIG",
    "TARGETS",
    "WORLDS",
    "to_convention",
]

TARGETS = ("log10_d", "alpha")
WORLDS = ("classic", "acquired")
LENGTH_SAMPLINGS = ("uniform", "log-uniform")
# The alpha model: the default architecture, scale-free inputs, sigmoid onto alpha in [0, 2].
DEFAULT_ALPHA_CONFIG = ModelConfig(target="alpha", y_range=[0.0, 2.0], normalise=True)
# The acquired world's clean corner: the classic protocol (1-4 change points, no blur, no noise)
CLEAN_WORLD = {
    "p_markov": 0.0,
    "p_immobile": 0.0,
    "p_drift": 0.0,
    "p_no_blur": 1.0,
    "p_noise_free": 1.0,
}


@dataclass
class TrainConfig:
    """What to simulate and how to optimise. Lengths are frames, D is px^2/frame.

    Attributes
    ----------
    batch_size, lr, weight_decay : AdamW batch and hyper-parameters.
    total_steps : length of the warm-up + cosine schedule (training may stop earlier).
    d_range : D range per segment, px^2/frame (log-uniform).
    n_frames, length_range, p_other_length : most batches have ``n_frames`` frames, a share
        ``p_other_length`` a length drawn from ``length_range``.
    heterogeneity_per_frame : a track shorter than ``n_frames`` gets proportionally fewer
        change points (at most ``max_changepoints * T / n_frames``, rounded) and a smooth drift of
        log10 D of at most ``drift_decades * T / n_frames``: the same density per frame as the
        long tracks. Off, a 20-frame track may carry a change point and 3 decades of drift, and
        a model that cannot rule that out on a short constant-D track reads its D low.
    freeze_batchnorm : keep the batch-norm running statistics of the starting weights (for
        fine-tunes whose batches differ from the original training's, e.g. many short tracks).
    length_sampling : how that other length is drawn: "uniform" or "log-uniform" (as many
        batches of 10-20 frames as of 200-400: real tracks are mostly short, and a model that
        never saw short tracks reads D low on them).
    max_changepoints, min_segment : change points per track (0..max) and shortest segment.
    p_noise, noise_rel_range : classic world: share of noisy tracks and sigma / sqrt(2 D_min).
    val_tracks, val_every, seed : validation size and period (steps); random seed.
    p_drift, drift_decades : share of D tracks whose log10 D also drifts smoothly, and by how much.
    anomalous_models, anomalous_d_range : alpha models: which AnDi models; optional per-segment
        D range (factor on the step variance).
    world : D models: "classic" or "acquired" (:mod:`napari_step.train_world`).
    acquired : overrides of :class:`napari_step.train_world.AcquiredWorld`'s parameters.
    p_classic : acquired world: share of batches drawn from the classic world instead (keeps
        the precision on clean tracks while the model learns blur and noise).
    frame_convention : "forward" (the value at frame t describes t -> t+1) or "backward" (the
        legacy checkpoints' t-1 -> t). A fine-tune keeps the convention of the weights it starts
        from, so it does not spend its steps relearning a one-frame shift.
    """

    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    total_steps: int = 20000
    d_range: list = field(default_factory=lambda: [1e-3, 1e3])
    n_frames: int = 200
    length_range: list = field(default_factory=lambda: [20, 400])
    p_other_length: float = 0.3
    length_sampling: str = "uniform"
    heterogeneity_per_frame: bool = False
    freeze_batchnorm: bool = False
    max_changepoints: int = 4
    min_segment: int = 10
    p_noise: float = 0.5
    noise_rel_range: list = field(default_factory=lambda: [0.03, 1.0])
    val_tracks: int = 1000
    val_every: int = 500
    seed: int = 0
    p_drift: float = 0.0
    drift_decades: float = 2.0
    anomalous_models: list = field(default_factory=lambda: list(ANOMALOUS_MODELS))
    anomalous_d_range: list | None = None
    world: str = "classic"
    acquired: dict = field(default_factory=dict)
    p_classic: float = 0.0
    frame_convention: str = "forward"

    def __post_init__(self):
        if self.length_sampling not in LENGTH_SAMPLINGS:
            raise ValueError(
                f"unknown length_sampling {self.length_sampling!r}: use one of "
                f"{list(LENGTH_SAMPLINGS)}"
            )
        if self.world not in WORLDS:
            raise ValueError(f"unknown training world {self.world!r}: use one of {list(WORLDS)}")
        if self.frame_convention not in FRAME_CONVENTIONS:
            raise ValueError(
                f"unknown frame_convention {self.frame_convention!r}: use one of "
                f"{list(FRAME_CONVENTIONS)}"
            )


def to_convention(labels: np.ndarray, convention: str) -> np.ndarray:
    """Per-frame labels (..., T) given in the forward convention, in ``convention``: "backward"
    puts the value of the step t-1 -> t at frame t (frame 0 repeats frame 1)."""
    if convention == "forward":
        return labels
    return np.concatenate([labels[..., :1], labels[..., :-1]], axis=-1)


# ------------------------------------------------------------------------------------------------
# data


def acquired_world(cfg: TrainConfig) -> AcquiredWorld:
    """The acquired world a config trains on (its D range, change points and drifts, then the
    overrides in ``cfg.acquired``)."""
    base = {
        "d_range": tuple(cfg.d_range),
        "max_changepoints": cfg.max_changepoints,
        "min_segment": cfg.min_segment,
        "p_drift": cfg.p_drift,
        "drift_decades": cfg.drift_decades,
    }
    return AcquiredWorld(**{**base, **cfg.acquired})


def make_batch(
    cfg: TrainConfig,
    dim: int,
    rng: np.random.Generator,
    n_frames: int | None = None,
    target: str = "log10_d",
) -> tuple[np.ndarray, np.ndarray]:
    """One batch of simulated tracks.

    Parameters
    ----------
    cfg : TrainConfig
    dim : int
        Spatial dimension of the tracks.
    rng : numpy.random.Generator
    n_frames : int, optional
        Track length; drawn as ``cfg`` says if None.
    target : {"log10_d", "alpha"}

    Returns
    -------
    positions : ndarray (B, T, dim), px
    labels : ndarray (B, T)
        log10 D (px^2/frame) or alpha per frame, in ``cfg.frame_convention``.
    """
    pos, y = _forward_batch(cfg, dim, rng, n_frames, target)
    return pos, to_convention(y, cfg.frame_convention)


def _other_length(cfg: TrainConfig, rng) -> int:
    """A track length from ``cfg.length_range`` drawn as ``cfg.length_sampling`` says."""
    lo, hi = cfg.length_range
    if cfg.length_sampling == "log-uniform":
        return int(np.clip(np.floor(np.exp(rng.uniform(np.log(lo), np.log(hi + 1)))), lo, hi))
    return int(rng.integers(lo, hi + 1))


def _forward_batch(cfg: TrainConfig, dim: int, rng, n_frames, target: str):
    """:func:`make_batch` with forward labels."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: use one of {list(TARGETS)}")
    if n_frames is None:
        if rng.uniform() < cfg.p_other_length:
            n_frames = _other_length(cfg, rng)
        else:
            n_frames = cfg.n_frames
    if cfg.heterogeneity_per_frame and n_frames < cfg.n_frames:
        scale = n_frames / cfg.n_frames
        cfg = replace(
            cfg,
            max_changepoints=int(round(cfg.max_changepoints * scale)),
            drift_decades=cfg.drift_decades * scale,
        )
    k_max = min(cfg.max_changepoints, n_frames // cfg.min_segment - 1)
    n_cps = (1 if k_max >= 1 and n_frames >= 50 else 0, max(k_max, 0))
    if target == "alpha":
        return _alpha_batch(cfg, dim, rng, n_frames, n_cps)
    if cfg.world == "acquired" and not rng.uniform() < cfg.p_classic:
        pos, d, _ = acquired_tracks(cfg.batch_size, n_frames, dim, acquired_world(cfg), rng)
        return pos, np.log10(d)
    return _classic_batch(cfg, dim, rng, n_frames, n_cps)


def _classic_batch(cfg: TrainConfig, dim: int, rng, n_frames: int, n_cps):
    """Brownian tracks with change points, optional drifts of log10 D and noise."""
    sim = brownian_changepoints(
        cfg.batch_size,
        n_frames,
        dim,
        n_changepoints=n_cps,
        min_segment=cfg.min_segment,
        d_range=cfg.d_range,
        rng=rng,
    )
    pos, d = sim.positions, sim.d
    drifting = rng.uniform(size=cfg.batch_size) < cfg.p_drift
    if drifting.any():
        lo, hi = np.log10(cfg.d_range)
        logd = np.log10(d[drifting]) + smooth_log_d_drift(
            drifting.sum(), n_frames, cfg.drift_decades, rng
        )
        d = d.copy()
        d[drifting] = 10 ** np.clip(logd, lo, hi)
        pos = pos.copy()
        pos[drifting] = brownian_from_d(d[drifting], dim, rng)
    noisy = rng.uniform(size=cfg.batch_size) < cfg.p_noise
    if noisy.any():
        lo, hi = np.log10(cfg.noise_rel_range)
        rel = 10 ** rng.uniform(lo, hi, size=noisy.sum())
        pos = pos.copy()
        pos[noisy] = add_localisation_noise(
            pos[noisy], rel * np.sqrt(2 * d[noisy].min(axis=1)), rng
        )
    return pos, np.log10(d)


def _alpha_batch(cfg: TrainConfig, dim: int, rng, n_frames: int, n_cps):
    """Anomalous tracks (typical per-axis step 1) with noise relative to that step."""
    sim = anomalous_changepoints(
        cfg.batch_size,
        n_frames,
        dim,
        n_changepoints=n_cps,
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
            pos, y = make_batch(self.cfg, self.dim, rng, target=self.target)
            yield torch.as_tensor(pos, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)


# ------------------------------------------------------------------------------------------------
# validation


def validation_set(
    n_tracks=1000, n_frames=200, dim=2, noise_rel=0.0, seed=12345, d_range=(1e-3, 1e3)
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed seeded Brownian tracks with 1-4 change points (equal numbers of each).

    Returns positions (N, T, dim) in px and the forward per-frame D (N, T) in px^2/frame;
    ``noise_rel`` adds noise of std ``noise_rel * sqrt(2 D_min)`` per track.
    """
    rng = np.random.default_rng(seed)
    sim = brownian_changepoints(n_tracks, n_frames, dim, (1, 4), 10, d_range, rng=rng)
    pos = sim.positions
    if noise_rel > 0:
        pos = add_localisation_noise(pos, noise_rel * np.sqrt(2 * sim.d.min(axis=1)), rng)
    return pos, sim.d


def alpha_validation_set(
    n_tracks=1000,
    n_frames=200,
    dim=2,
    noise_rel=0.0,
    seed=12345,
    models=ANOMALOUS_MODELS,
    d_range=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed seeded anomalous tracks with 1-4 change points: (positions, alpha (N, T))."""
    rng = np.random.default_rng(seed)
    sim = anomalous_changepoints(
        n_tracks, n_frames, dim, (1, 4), 10, models=tuple(models), d_range=d_range, rng=rng
    )
    pos = sim.positions
    if noise_rel > 0:
        pos = add_localisation_noise(pos, noise_rel, rng)
    return pos, sim.alpha


def acquired_validation_sets(
    cfg: TrainConfig, n_tracks: int = 1000, dim: int = 2, seed: int = 12345
) -> dict:
    """{"val": acquired world, "clean": its clean corner}, each (positions, D (N, T)), 200
    frames, seeded (see :data:`CLEAN_WORLD`)."""
    world = acquired_world(cfg)
    clean = AcquiredWorld(**{**world.describe(), **CLEAN_WORLD})
    return {
        name: acquired_tracks(n_tracks, 200, dim, w, np.random.default_rng(seed))[:2]
        for name, w in (("val", world), ("clean", clean))
    }
