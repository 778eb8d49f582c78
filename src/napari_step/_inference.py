"""The per-frame inference engine behind every STEP head (D, alpha; a state head later).

One :class:`Engine` holds what is fixed for a call (network, head, device, precision, batch size,
frame convention); :func:`run` feeds it any number of tracks of any lengths:

* tracks are bucketed by exact length, so every model call is one dense batch (no padding);
* batches are sized to a memory budget (the free GPU memory on CUDA); a batch that still runs
  out of device memory is split in halves rather than failing;
* on CUDA the next batch is copied host -> device from pinned memory on a side stream while the
  current one computes, and results come back the same way (non-blocking, synchronised one batch
  later), so transfers overlap compute;
* centring, rescaling to the trained range and adding the scale back all run on the device in
  float64 (long tracks far from the origin or with D of 1e-8 px^2/frame lose nothing), only the
  network itself runs in float32 or, under autocast, bf16/fp16;
* very long tracks are cut into overlapping windows; 3-D tracks with a 2-D model get the mean over
  the three planar projections;
* outputs of legacy checkpoints (frame convention "backward", the step t-1 -> t at frame t) are
  shifted by one frame so every head returns the value of the step t -> t+1 at frame t, the last
  frame repeating the one before it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ._input import group_by_length
from .model import XResAttn

MAX_WINDOW = 1000  # frames per model call for very long tracks
WINDOW_OVERLAP = 100  # frames either side of a window that are computed but not kept
CPU_BATCH_BUDGET = 4e6  # attention elements per batch on the CPU (~ cache-friendly)
GPU_MEMORY_FRACTION = 0.3  # of the free device memory one batch may use
MAX_BATCH = {"cpu": 4096, "cuda": 16384}


@dataclass(frozen=True)
class Head:
    """What one model target returns.

    ``name``: what messages call it. ``still``: the value for a track (window) that never moves.
    ``log_scale``: the output is log10 of a quantity in px^2/frame, so rescaling the positions
    by s shifts it by log10 s^2 (D); otherwise it is scale-free (alpha).
    """

    target: str
    name: str
    still: float
    log_scale: bool


HEADS = {
    "log10_d": Head("log10_d", "D", -np.inf, True),
    "alpha": Head("alpha", "alpha", np.nan, False),
}


def windows(n_frames: int) -> list[tuple[int, int, int, int]]:
    """(start, stop, keep_from, keep_to) windows covering a track of ``n_frames`` frames.

    The kept parts tile the track exactly and stay ``WINDOW_OVERLAP`` frames away from window
    edges where possible; tracks up to ``MAX_WINDOW`` frames are one window.
    """
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


@dataclass
class Engine:
    """Everything fixed for one inference call.

    ``module``: what is called on the scaled float32 positions (the network, or its
    ``torch.compile`` d version). ``amp_dtype``: autocast dtype (None: float32). ``legacy``: the
    network stores the step t-1 -> t at frame t (shift its output by one frame).
    """

    net: XResAttn
    head: Head
    device: torch.device
    amp_dtype: torch.dtype | None = None
    batch_size: int | None = None
    legacy: bool = False
    module: Callable | None = None

    def __post_init__(self):
        if self.module is None:
            self.module = self.net

    def projections(self, dim: int) -> list[tuple[int, ...]]:
        """Axes fed to the network: all of them, or the three planes of a 3-D track."""
        if self.net.config.dim not in (dim, 2 if dim == 3 else dim):
            raise ValueError(
                f"the model is for {self.net.config.dim}-D tracks, these tracks are {dim}-D"
            )
        if dim == 3 and self.net.config.dim == 2:
            return [(0, 1), (0, 2), (1, 2)]
        return [tuple(range(dim))]

    def batch_rows(self, n_frames: int) -> int:
        """Tracks per batch for tracks of ``n_frames`` frames."""
        if self.batch_size:
            return int(self.batch_size)
        t = min(n_frames, MAX_WINDOW)
        c = self.net.config
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            width = max([*c.stem, *c.blocks])
            per_track = 4.0 * t * (12 * width + 3 * c.n_heads * t + 2 * c.dim_ff)
            return int(np.clip(GPU_MEMORY_FRACTION * free // per_track, 1, MAX_BATCH["cuda"]))
        return int(np.clip(CPU_BATCH_BUDGET // (t * max(t, 256)), 1, MAX_BATCH["cpu"]))

    def _log10_scale2(self, dx2: torch.Tensor, moving: torch.Tensor, dim: int) -> torch.Tensor:
        """log10 s^2 per track (B,) so that positions times s sit in the trained range.

        Scale-free heads and scale-equivariant D models get unit mean squared step per axis
        (alpha) or unit D; absolute D models (the paper configuration) are scaled only as far as
        needed to bring the track's local D range (10-frame means) inside the trained range.
        """
        mean_d = torch.where(moving, dx2.mean(1), 1.0) / (2 * dim)
        if not self.head.log_scale:
            return -torch.log10(2 * mean_d)
        if self.net.config.normalise:
            return -torch.log10(mean_d)
        k = min(10, dx2.shape[1])
        local = F.avg_pool1d(dx2[:, None], k, stride=1)[:, 0] / (2 * dim)
        lo = torch.log10(local.amin(1) + 1e-300)
        hi = torch.log10(torch.where(moving, local.amax(1), 1.0))
        lim_lo, lim_hi = self.net.config.y_range[0] + 0.6, self.net.config.y_range[1] - 0.6
        shift_up = (lim_lo - lo).clamp_min(0)  # log10 s^2 needed to lift the slow end
        shift_down = (lim_hi - hi).clamp_max(0)  # ... or to bring the fast end down
        log_s2 = torch.where(shift_up > 0, torch.minimum(shift_up, lim_hi - hi), shift_down)
        return torch.where(moving, log_s2, 0.0)

    def window_values(self, seg: torch.Tensor) -> torch.Tensor:
        """Head output (B, W, ...) float64 for positions (B, W, dim) float64 on the device."""
        seg = seg - seg[:, :1]
        dx2 = (torch.diff(seg, dim=1) ** 2).sum(-1)
        moving = (dx2 > 0).any(1)
        log_s2 = self._log10_scale2(dx2, moving, seg.shape[2])
        x = (seg * torch.pow(10.0, log_s2 / 2)[:, None, None]).float()
        with torch.autocast(self.device.type, self.amp_dtype, enabled=self.amp_dtype is not None):
            y = self.module(x)
        y = y.double()
        per_track = (-1,) + (1,) * (y.ndim - 1)  # broadcast a (B,) value over (B, W, ...)
        if self.head.log_scale:
            y = y - log_s2.view(per_track)
        return torch.where(moving.view(per_track), y, torch.full_like(y, self.head.still))

    def batch_values(self, pos: torch.Tensor) -> torch.Tensor:
        """Head output (B, T, ...) float64 for equal-length tracks (B, T, dim) float64 on the
        device, in the forward frame convention (the value at frame t describes t -> t+1)."""
        n_frames, dim = pos.shape[1:]
        axes_list = self.projections(dim)
        out = None
        for axes in axes_list:
            p = pos[..., list(axes)]
            for start, stop, keep_from, keep_to in windows(n_frames):
                vals = self.window_values(p[:, start:stop])
                if out is None:
                    out = vals.new_zeros((pos.shape[0], n_frames, *vals.shape[2:]))
                out[:, keep_from:keep_to] += vals[:, keep_from - start : keep_to - start]
        out /= len(axes_list)
        if self.legacy:  # value of the step t -> t+1 at frame t; the last frame repeats
            out = torch.cat([out[:, 1:], out[:, -1:]], dim=1)
        return out


class _Transfers:
    """Host <-> device copies: pinned, non-blocking and on a side stream on CUDA (overlapping the
    compute of the previous batch); plain tensors sharing NumPy memory on the CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if self.cuda else None

    def upload(self, arr: np.ndarray):
        host = torch.from_numpy(arr)
        if not self.cuda:
            return host, None
        host = host.pin_memory()
        with torch.cuda.stream(self.stream):
            dev = host.to(self.device, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self.stream)
        return dev, (done, host)

    def ready(self, dev: torch.Tensor, token) -> torch.Tensor:
        """Make the compute stream wait for an upload (no host synchronisation)."""
        if token is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(token[0])
            dev.record_stream(current)
        return dev

    def download(self, out: torch.Tensor):
        if not self.cuda:
            return out, None
        host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
        host.copy_(out, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return host, done

    @staticmethod
    def collect(host: torch.Tensor, done) -> np.ndarray:
        if done is None:
            return host.numpy()
        done.synchronize()
        return host.numpy().copy()  # the pinned buffer goes back to the caching allocator


def _progress_callback(progress, total: int):
    if callable(progress):
        return progress, None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="STEP", unit="track")
        return (lambda done, tot: bar.update(done - bar.n)), bar
    return None, None


def _plan(tracks: list[np.ndarray], engine: Engine, out: list) -> list[np.ndarray]:
    """Index arrays of the batches to run (equal lengths each); tracks shorter than the model's
    minimum get NaN in ``out`` right away, with one warning."""
    min_len = engine.net.config.min_length
    groups = group_by_length(tracks)
    short = sum(idx.size for n, idx in groups.items() if n < min_len)
    if short:
        warnings.warn(
            f"{short} track(s) shorter than {min_len} frames cannot be analysed by the model: "
            f"their {engine.head.name} is NaN",
            stacklevel=4,
        )
    batches = []
    for n_frames, idx in groups.items():
        if n_frames < min_len:
            for i in idx:
                out[i] = np.full(n_frames, np.nan)
            continue
        rows = engine.batch_rows(n_frames)
        batches.extend(idx[b : b + rows] for b in range(0, idx.size, rows))
    return batches


def run(tracks: list[np.ndarray], engine: Engine, progress=None) -> list[np.ndarray]:
    """Per-frame head output (float64 (T_i,) each, input order) for validated tracks.

    ``progress``: True for a tqdm bar or a callable ``(done, total)`` called after each batch.
    """
    out: list = [None] * len(tracks)
    if not tracks:
        return out
    engine.projections(tracks[0].shape[1])  # a dimension mismatch fails before any work
    batches = _plan(tracks, engine, out)
    report, bar = _progress_callback(progress, len(tracks))
    done = len(tracks) - sum(b.size for b in batches)
    io = _Transfers(engine.device)
    pending = None
    upload = io.upload(np.stack([tracks[i] for i in batches[0]])) if batches else None
    with torch.inference_mode():
        for k, sel in enumerate(batches):
            current = upload
            if k + 1 < len(batches):  # the next copy runs while this batch computes
                upload = io.upload(np.stack([tracks[i] for i in batches[k + 1]]))
            result = io.download(_values_within_memory(engine, io.ready(*current)))
            if pending is not None:
                done = _scatter(out, *pending, io, done, report, len(tracks))
            pending = (sel, result)
        if pending is not None:
            _scatter(out, *pending, io, done, report, len(tracks))
    if bar is not None:
        bar.close()
    return out


def _values_within_memory(engine: Engine, pos: torch.Tensor) -> torch.Tensor:
    """``engine.batch_values(pos)``; a batch the device has no memory for is split in halves
    (recursively) instead of failing: the memory estimate of :meth:`Engine.batch_rows` is a
    guess for devices it was not measured on."""
    try:
        return engine.batch_values(pos)
    except torch.OutOfMemoryError:
        if len(pos) < 2:
            raise
        if pos.device.type == "cuda":
            torch.cuda.empty_cache()
        half = len(pos) // 2
        parts = [_values_within_memory(engine, p) for p in (pos[:half], pos[half:])]
        return torch.cat(parts)


def _scatter(out, sel, result, io, done, report, total) -> int:
    values = io.collect(*result)
    for row, i in enumerate(sel):
        out[i] = values[row]
    done += sel.size
    if report:
        report(done, total)
    return done
