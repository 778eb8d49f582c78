"""Training STEP models on freshly simulated tracks, resumable and time-budgeted.

Every batch is new data from the simulator, so the network never sees the same track twice and
cannot overfit; validation uses fixed seeded sets. What is simulated follows the model's target
(``ModelConfig.target``) and, for D models, the training world (``TrainConfig.world``):

* ``"log10_d"``, world ``"classic"``: Brownian motion with 0-4 change points, D log-uniform in
  1e-3..1e3 px^2/frame, localisation noise at random levels including none, optional smooth drifts
  of log10 D; L1 loss on log10 D.
* ``"log10_d"``, world ``"acquired"``: tracks as a camera records them
  (:mod:`napari_step.train_world`: motion blur, localisation noise over a wide signal-to-noise
  range, Markov switching, immobile periods); L1 loss on log10 D. Validation also reports the
  clean corner of that world (change points, no blur, no noise) as ``clean_*``.
* ``"alpha"``: tracks whose anomalous-diffusion model (ATTM, CTRW, FBM, Lévy walk, SBM) and
  exponent change at 0-4 change points (:func:`napari_step.simulate.anomalous_changepoints`), with
  the same noise augmentation relative to the typical step; L1 loss on the per-frame alpha,
  validation reports the mean absolute error of alpha.

Labels follow the forward convention: the value at frame t describes the motion from t to t+1.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .model import (
    ModelConfig,
    XResAttn,
    checkpoint_frame_convention,
    read_checkpoint,
    save_checkpoint,
)
from .predict import resolve_device
from .train_data import (
    CLEAN_WORLD,
    DEFAULT_ALPHA_CONFIG,
    TARGETS,
    WORLDS,
    TrainConfig,
    _SimulatedBatches,
    acquired_validation_sets,
    acquired_world,
    alpha_validation_set,
    make_batch,
    to_convention,
    validation_set,
)

__all__ = [
    "TrainConfig",
    "train",
    "make_batch",
    "validation_set",
    "alpha_validation_set",
    "acquired_validation_sets",
    "acquired_world",
    "evaluate",
    "lr_factor",
    "DEFAULT_ALPHA_CONFIG",
    "TARGETS",
    "WORLDS",
    "CLEAN_WORLD",
]


def _validation_sets(tc: TrainConfig, config: ModelConfig) -> dict:
    """{prefix: (positions, truth)} the run validates on, truth in the run's frame convention;
    "val" picks the best weights."""
    sets = _forward_validation_sets(tc, config)
    return {k: (pos, to_convention(y, tc.frame_convention)) for k, (pos, y) in sets.items()}


def _forward_validation_sets(tc: TrainConfig, config: ModelConfig) -> dict:
    if config.target == "alpha":
        return {
            "val": alpha_validation_set(
                tc.val_tracks,
                200,
                config.dim,
                models=tc.anomalous_models,
                d_range=tc.anomalous_d_range,
            )
        }
    if tc.world == "acquired":
        return acquired_validation_sets(tc, tc.val_tracks, config.dim)
    return {"val": validation_set(tc.val_tracks, 200, config.dim)}


@torch.inference_mode()
def evaluate(
    model: XResAttn, positions: np.ndarray, truth: np.ndarray, device="cpu", batch: int = 500
) -> dict:
    """Per-frame errors of a model on labelled tracks, for every target.

    Parameters
    ----------
    model : XResAttn
    positions : ndarray (N, T, dim), px
    truth : ndarray (N, T)
        D (px^2/frame, linear) for a D model, alpha for an alpha model.
    device : str or torch.device
    batch : int
        Tracks per model call.

    Returns
    -------
    dict
        D models: ``l1_log10`` (mean |log10 D_pred - log10 D|) and ``rel_err``
        (mean |D_pred / D - 1|); alpha models: ``mae_alpha``. Means over every frame.
    """
    model.eval()
    preds = []
    for i in range(0, len(positions), batch):
        x = torch.as_tensor(positions[i : i + batch], dtype=torch.float32, device=device)
        preds.append(model(x).float().cpu().numpy())
    pred = np.concatenate(preds)
    if model.config.target == "alpha":
        return {"mae_alpha": float(np.abs(pred - truth).mean())}
    err = pred - np.log10(truth)
    return {"l1_log10": float(np.abs(err).mean()), "rel_err": float(np.abs(10**err - 1).mean())}


def _score_key(tc: TrainConfig, config: ModelConfig) -> str:
    """The validation entry that picks the best weights. In the acquired world the relative
    error is dominated by immobile frames (only noise moves the spot, D is not identifiable
    there), so the log error decides."""
    if config.target == "alpha":
        return "val_mae_alpha"
    return "val_l1_log10" if tc.world == "acquired" else "val_rel_err"


# ------------------------------------------------------------------------------------------------
# optimisation


def lr_factor(step: int, total_steps: int, floor: float = 0.02) -> float:
    """Learning-rate multiplier: linear warm-up over 2 % of the schedule, then a cosine decay
    to ``floor``; ``step`` counts from the start of the run (resumed runs included)."""
    warm = max(1, total_steps // 50)
    if step < warm:
        return (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total_steps - warm))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def _scheduler(opt: torch.optim.Optimizer, tc: TrainConfig, step0: int):
    """LambdaLR over :func:`lr_factor` continuing at ``step0``; reads ``tc.total_steps`` at every
    step, so a schedule fitted to the time budget after start-up takes effect at once."""
    for group in opt.param_groups:  # a resumed optimiser carries its last lr: start from the base
        group["lr"] = group["initial_lr"] = tc.lr
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda i: lr_factor(step0 + i, tc.total_steps))


def _new_record(tc: TrainConfig, best_key: str) -> dict:
    return {
        "train_config": asdict(tc),
        "step": 0,
        "samples_seen": 0,
        "wall_time_s": 0.0,
        "sessions": [],
        "validation": [],
        best_key: None,
        "init_from": None,
    }


def _configs(out_path: Path, model_config, train_config, resume: bool, init_weights):
    """(model config, train config, resumed checkpoint or None, init checkpoint or None)."""
    state = init_state = None
    if resume and out_path.exists():
        state = read_checkpoint(out_path)
        model_config = ModelConfig.from_dict(state["config"])
        train_config = TrainConfig(**state["record"]["train_config"])
    elif init_weights is not None:
        init_state = read_checkpoint(init_weights)
        model_config = ModelConfig.from_dict(init_state["config"])
        train_config = train_config or TrainConfig()
        train_config.frame_convention = checkpoint_frame_convention(init_state, init_weights)
    model_config = model_config or ModelConfig()
    if model_config.target not in TARGETS:
        raise ValueError(
            f"unknown model target {model_config.target!r}: use one of {list(TARGETS)}"
        )
    return model_config, train_config or TrainConfig(), state, init_state


def _build(
    config: ModelConfig, tc: TrainConfig, device, state, init_state, init_weights, best_key: str
):
    """The model, its AdamW optimiser and the training record, fresh, fine-tuned or resumed."""
    torch.manual_seed(tc.seed)
    model = XResAttn(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    record = _new_record(tc, best_key)
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
    return model, opt, record


@dataclass
class _Run:
    """Everything one training session works on."""

    out_path: Path
    model: XResAttn
    opt: torch.optim.Optimizer
    tc: TrainConfig
    record: dict
    card: dict | None
    device: torch.device
    val_sets: dict
    best_key: str
    score_key: str
    snapshots: bool

    def validate(self) -> dict:
        """Evaluate on every validation set, append to the record, save the checkpoint (and the
        best weights, and a per-step snapshot if asked); returns the record entry."""
        rec = self.record
        entry = {
            "step": rec["step"],
            "samples_seen": rec["samples_seen"],
            "wall_time_s": rec["wall_time_s"],
        }
        for prefix, (pos, truth) in self.val_sets.items():
            for k, v in evaluate(self.model, pos, truth, self.device).items():
                entry[f"{prefix}_{k}"] = v
        rec["validation"].append(entry)
        best = rec[self.best_key]
        is_best = best is None or entry[self.score_key] < best
        if is_best:
            rec[self.best_key] = entry[self.score_key]
        save_checkpoint(self.out_path, self.model, rec, self.card, optimizer=self.opt)
        if is_best:
            save_checkpoint(self.out_path.with_suffix(".best.pt"), self.model, rec, self.card)
        if self.snapshots:
            save_checkpoint(
                self.out_path.with_suffix(f".step{rec['step']}.pt"), self.model, rec, self.card
            )
        _train_mode(self.model, self.tc)
        return entry

    def step(self, x: torch.Tensor, y: torch.Tensor, sched, use_amp: bool) -> float:
        """One optimisation step (L1 loss, gradient clipping at 1); returns the loss.

        A batch whose loss or gradient is not finite is skipped (counted in the record's
        ``skipped_batches``): one bad batch must not turn every weight into NaN.
        """
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
            pred = self.model(x)
        loss = (pred.float() - y).abs().mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        if torch.isfinite(loss) and torch.isfinite(norm):
            self.opt.step()
        else:
            self.record["skipped_batches"] = self.record.get("skipped_batches", 0) + 1
        sched.step()
        self.record["step"] += 1
        self.record["samples_seen"] += len(x)
        return float(loss.detach())


def _batches(tc: TrainConfig, config: ModelConfig, step0: int, workers: int):
    loader = torch.utils.data.DataLoader(
        _SimulatedBatches(tc, config.dim, [tc.seed, step0], config.target),  # new data on resume
        batch_size=None,
        num_workers=workers,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    return iter(loader)


def _describe(entry: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in entry.items() if k.startswith(("val_", "clean_")))


def _fit_schedule(tc: TrainConfig, record: dict, done: int, t20: float, seconds_left: float):
    """Size the schedule so it ends within the time left, from the pace of steps 20..120 (8 %
    kept for validation)."""
    per_step = (time.time() - t20) / (done - 20)
    tc.total_steps = int(done + seconds_left / per_step * 0.92)
    record["train_config"]["total_steps"] = tc.total_steps


def _train_mode(model: nn.Module, tc) -> None:
    """Training mode; with ``tc.freeze_batchnorm`` the batch-norm layers keep their running
    statistics (eval mode; their scale and shift still train). A fine-tune on batches of very
    different lengths (10 to 400 frames) otherwise drags those statistics to whatever the last
    few batches were, and the model validates (and ships) with statistics of short tracks."""
    model.train()
    if tc.freeze_batchnorm:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def _loop(run: _Run, batches, sched, max_steps, max_minutes: float, fit: bool, progress: bool):
    """Optimise until ``max_steps`` of this session, the schedule's end or the time budget;
    validate every ``val_every`` steps; ``fit``: size the schedule after 120 steps."""
    tc, record = run.tc, run.record
    last_steps = max_steps if max_steps is not None else tc.total_steps - record["step"]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=last_steps, desc="training", unit="batch")
    t_start, wall0, done, t20 = time.time(), record["wall_time_s"], 0, 0.0
    _train_mode(run.model, tc)
    while done < last_steps and record["step"] < tc.total_steps:
        if time.time() - t_start > max_minutes * 60:
            break
        x, y = (t.to(run.device, non_blocking=True) for t in next(batches))
        loss = run.step(x, y, sched, use_amp=run.device.type == "cuda")
        record["wall_time_s"] = wall0 + time.time() - t_start
        done += 1
        if fit and done == 20:
            t20 = time.time()  # after worker start-up
        elif fit and done == 120:
            _fit_schedule(tc, record, done, t20, max_minutes * 60 - (time.time() - t_start))
            last_steps = tc.total_steps if max_steps is None else last_steps
            if bar is not None:
                bar.total = last_steps
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
        if record["step"] % tc.val_every == 0:
            entry = run.validate()
            if bar is not None:
                bar.write(f"step {record['step']}: {_describe(entry)}")
    if bar is not None:
        bar.close()


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
    """Train (or resume) a model, saving a checkpoint at every validation.

    Parameters
    ----------
    out_path : str or Path
        Checkpoint with weights, optimiser state and training record (samples seen, wall time,
        device, validation errors); resumed from if it exists and ``resume``. The best weights by
        validation go to ``<out_path>.best.pt``; ``snapshots`` also keeps ``<out>.step<N>.pt``.
    model_config, train_config : optional
        Architecture/target and data/optimisation; ignored when resuming (the checkpoint's) and
        ``model_config`` when fine-tuning (the source's).
    max_minutes, max_steps : stop after this wall time / this many steps of this session.
    device : "auto", "cpu", "cuda", ... (:func:`napari_step.predict.resolve_device`).
    progress : bool
        A progress bar with validation lines.
    card : dict, optional
        Model card stored in every checkpoint; its ``frame_convention`` is the run's
        (``TrainConfig.frame_convention``; a fine-tune's is its source weights').
    workers : int, optional
        DataLoader processes simulating data (default none on the CPU, 6 on a GPU).
    fit_schedule : bool
        Fresh runs: time the first batches and size the schedule to end within ``max_minutes``.
    init_weights : str or Path, optional
        Fresh runs: start from this checkpoint's weights and architecture (fine-tuning).

    Returns
    -------
    dict
        The training record (``validation`` entries hold ``val_*`` and, in the acquired world,
        ``clean_*`` errors; ``best_<score>`` the best score).
    """
    out_path, device = Path(out_path), resolve_device(device)
    config, tc, state, init_state = _configs(
        out_path, model_config, train_config, resume, init_weights
    )
    score_key = _score_key(tc, config)
    model, opt, record = _build(
        config, tc, device, state, init_state, init_weights, "best_" + score_key
    )
    step0 = record["step"]
    card = {**(card or {}), "frame_convention": tc.frame_convention}
    workers = (6 if device.type == "cuda" else 0) if workers is None else workers
    batches = _batches(tc, config, step0, workers)
    record["sessions"].append(
        {"device": str(device), "start_step": step0, "torch": str(torch.__version__)}
    )
    run = _Run(
        out_path,
        model,
        opt,
        tc,
        record,
        card,
        device,
        _validation_sets(tc, config),
        "best_" + score_key,
        score_key,
        snapshots,
    )
    sched = _scheduler(opt, tc, step0)
    _loop(run, batches, sched, max_steps, max_minutes, fit_schedule and step0 == 0, progress)
    if not record["validation"] or record["validation"][-1]["step"] != record["step"]:
        run.validate()
    return record
