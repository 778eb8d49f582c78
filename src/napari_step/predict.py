"""Batched STEP inference: per-frame D for any number of tracks of any lengths.

Tracks are grouped by length so each model call is one dense batch (no padding, no per-track
loop), batches are sized to a memory budget, very long tracks are cut into overlapping windows,
and every track is centred and rescaled in float64 before it reaches the float32 network, so tracks
with D far outside the trained range (1e-8 or 1e8 px^2/frame) or huge coordinates are predicted as
well as tracks with D = 1.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import torch

from ._input import as_track_list, group_by_length
from .model import CheckpointError, XResAttn, load_checkpoint

__all__ = ["predict_d", "load_model", "resolve_device", "available_models", "WEIGHTS_DIR"]

WEIGHTS_DIR = Path(__file__).parent / "weights"
_BUILTIN = {("default", 2): "step_d_2d.pt", ("default", 1): "step_d_1d.pt"}
MAX_WINDOW = 1000  # frames per model call for very long tracks
WINDOW_OVERLAP = 100


def available_models() -> dict:
    """Built-in model names and dims whose weights ship with this installation."""
    return {f"{n} ({d}-D)": WEIGHTS_DIR / f for (n, d), f in _BUILTIN.items() if (WEIGHTS_DIR / f).exists()}


def resolve_device(device=None) -> torch.device:
    """'auto'/None -> CUDA when available else CPU; a GPU asked for where none exists falls back
    to the CPU with a warning instead of failing."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device("cuda" if device == "gpu" else device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        warnings.warn("CUDA was requested but no GPU is available: running on the CPU", stacklevel=3)
        return torch.device("cpu")
    return dev


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, device: str) -> XResAttn:
    model, _ = load_checkpoint(path)
    return model.to(device).eval()


def _model_path(model, dim: int) -> Path:
    p = Path(str(model))
    if p.suffix == ".pt" or p.exists():
        return p
    key = (str(model), dim)
    if key not in _BUILTIN:
        names = sorted({n for n, _ in _BUILTIN})
        raise ValueError(f"unknown model {model!r}: use one of {names} or a path to a .pt file")
    path = WEIGHTS_DIR / _BUILTIN[key]
    if not path.exists():
        raise CheckpointError(
            f"no built-in {dim}-D model named {model!r} ships with this version "
            f"(train one with `napari-step train --dim {dim}`)"
        )
    return path


def load_model(model="default", dim: int = 2, device=None) -> XResAttn:
    """A ready model: a built-in name (with the track dimension) or a checkpoint path; cached."""
    if isinstance(model, XResAttn):
        return model.to(resolve_device(device)).eval()
    return _load_cached(str(_model_path(model, dim)), str(resolve_device(device)))


def _batch_size(n_frames: int, device: torch.device, requested) -> int:
    if requested:
        return int(requested)
    budget = 3e7 if device.type == "cuda" else 4e6  # ~ attention elements per batch
    return int(np.clip(budget // (n_frames * max(n_frames, 256)), 1, 4096))


def _rescale(pos: np.ndarray, model: XResAttn) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale tracks (B, T, dim) in float64; returns (scaled, log10 D factor per track).

    Scale-equivariant models get every track at unit RMS step. Absolute models (the paper
    configuration) get a track scaled only as far as needed to bring its local D range inside the
    trained range.
    """
    pos = pos - pos[:, :1]
    dx2 = (np.diff(pos, axis=1) ** 2).sum(-1)
    dim = pos.shape[2]
    mean_d = dx2.mean(axis=1) / (2 * dim)
    if model.config.normalise:
        log_s2 = -np.log10(mean_d)
    else:
        k = min(10, dx2.shape[1])
        kernel = np.ones(k) / k
        local = np.array([np.convolve(r, kernel, mode="valid") for r in dx2]) / (2 * dim)
        lo = np.log10(local.min(axis=1) + 1e-300)
        hi = np.log10(local.max(axis=1))
        lim_lo, lim_hi = np.asarray(model.config.y_range) + np.array([0.6, -0.6])
        shift_up = np.clip(lim_lo - lo, 0, None)  # log10 s^2 needed to lift the slow end
        shift_down = np.clip(lim_hi - hi, None, 0)  # ... or to bring the fast end down
        log_s2 = np.where(shift_up > 0, np.minimum(shift_up, lim_hi - hi), shift_down)
    return pos * 10 ** (log_s2 / 2)[:, None, None], log_s2


def _windows(n_frames: int):
    """(start, stop, keep_from, keep_to) windows covering a long track with overlaps; the kept
    parts tile the track exactly and stay away from window edges where possible."""
    if n_frames <= MAX_WINDOW:
        return [(0, n_frames, 0, n_frames)]
    stride = MAX_WINDOW - 2 * WINDOW_OVERLAP
    out, start, kept = [], 0, 0
    while True:
        start = min(start, n_frames - MAX_WINDOW)
        stop = start + MAX_WINDOW
        keep_to = n_frames if stop == n_frames else stop - WINDOW_OVERLAP
        out.append((start, stop, kept, keep_to))
        if stop == n_frames:
            return out
        kept, start = keep_to, start + stride


def _progress_callback(progress, total):
    if callable(progress):
        return progress, None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="STEP", unit="track")
        return (lambda done, tot: bar.update(done - bar.n)), bar
    return None, None


def run_per_frame(tracks, net: XResAttn, dev, batch_size, progress, block, what: str):
    """The shared inference driver behind predict_d and predict_alpha.

    ``tracks``: validated list of (T_i, dim) arrays. Groups tracks by length, batches each group
    to the memory budget, calls ``block(net, positions (B, T, dim), dev) -> (B, T)`` per batch,
    averages the three planar projections for 3-D tracks with a 2-D model, gives tracks shorter
    than the model's minimum NaN (one warning naming ``what``) and reports progress.
    """
    out: list = [None] * len(tracks)
    if not tracks:
        return out
    dim = tracks[0].shape[1]
    if net.config.dim not in (dim, 2 if dim == 3 else dim):
        raise ValueError(f"the model is for {net.config.dim}-D tracks, these tracks are {dim}-D")
    # 3-D tracks with a 2-D model: average the three planar projections (isotropic diffusion).
    projections = [(0, 1), (0, 2), (1, 2)] if dim == 3 and net.config.dim == 2 else [tuple(range(dim))]
    min_len = net.config.min_length
    groups = group_by_length(tracks)
    short = sum(idx.size for n, idx in groups.items() if n < min_len)
    if short:
        warnings.warn(
            f"{short} track(s) shorter than {min_len} frames cannot be analysed by the model: "
            f"their {what} is NaN",
            stacklevel=4,
        )
    total, done = len(tracks), short
    report, bar = _progress_callback(progress, total)
    with torch.inference_mode():
        for n_frames, idx in groups.items():
            if n_frames < min_len:
                for i in idx:
                    out[i] = np.full(n_frames, np.nan)
                continue
            bs = _batch_size(min(n_frames, MAX_WINDOW), dev, batch_size)
            for b0 in range(0, idx.size, bs):
                sel = idx[b0 : b0 + bs]
                pos = np.stack([tracks[i] for i in sel])
                res = np.zeros((sel.size, n_frames))
                for axes in projections:
                    res += block(net, pos[:, :, axes], dev) / len(projections)
                for row, i in enumerate(sel):
                    out[i] = res[row]
                done += sel.size
                if report:
                    report(done, total)
    if bar is not None:
        bar.close()
    return out


def predict_per_frame(tracks, load, block, what: str, device=None, batch_size=None, progress=None):
    """Validate ``tracks``, load the model with ``load(model_dim, device)`` (3-D tracks use the
    2-D model) and run :func:`run_per_frame`: the common body of predict_log10_d and
    predict_alpha."""
    tracks = as_track_list(tracks, allow_nan=False)
    if not tracks:
        return []
    dim = tracks[0].shape[1]
    dev = resolve_device(device)
    net = load(dim if dim != 3 else 2, dev)
    return run_per_frame(tracks, net, dev, batch_size, progress, block, what)


def _load_d_model(model, dim: int, dev) -> XResAttn:
    net = load_model(model, dim, dev)
    if net.config.target != "log10_d":
        raise ValueError(f"the model predicts {net.config.target!r}, not D: give a D model")
    return net


def predict_log10_d(tracks, model="default", device=None, batch_size=None, progress=None):
    """Like :func:`predict_d` but returns log10 D (px^2/frame); -inf where a track does not move."""
    return predict_per_frame(tracks, functools.partial(_load_d_model, model), _predict_block, "D",
                             device, batch_size, progress)


def _predict_block(net, pos, dev) -> np.ndarray:
    """log10 D (B, T) for equal-length tracks; windows for long tracks; -inf for still tracks."""
    n_frames = pos.shape[1]
    res = np.empty(pos.shape[:2])
    for start, stop, keep_from, keep_to in _windows(n_frames):
        seg = pos[:, start:stop]
        still = ~(np.diff(seg, axis=1) != 0).any(axis=(1, 2))
        scaled, log_s2 = _rescale(seg[~still], net) if (~still).any() else (None, None)
        vals = np.full(seg.shape[:2], -np.inf)
        if scaled is not None:
            x = torch.as_tensor(scaled, dtype=torch.float32, device=dev)
            vals[~still] = net(x).float().cpu().numpy() - log_s2[:, None]
        res[:, keep_from:keep_to] = vals[:, keep_from - start : keep_to - start]
    return res


def predict_d(tracks, model="default", device=None, batch_size=None, progress=None) -> list[np.ndarray]:
    """Per-frame diffusion coefficient (px^2/frame, linear) predicted by STEP for each track.

    ``tracks``: an (N, T, dim) array or a list of (T_i, dim) arrays of positions in pixels, one
    row per frame (no gaps). ``device=None`` uses CUDA when available. Tracks shorter than the
    model's minimum get NaN with a warning; a track that never moves gets D = 0; non-finite
    positions raise ``ValueError`` naming the track. ``progress``: True for a progress bar or a
    callable ``(done, total)``.
    """
    logs = predict_log10_d(tracks, model, device, batch_size, progress)
    return [10.0**v for v in logs]
