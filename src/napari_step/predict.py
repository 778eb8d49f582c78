"""STEP inference: per-frame D and alpha for any number of tracks of any lengths.

One core serves every head: a registry of the shipped checkpoints by (target, dimension), one
loader, one engine (:mod:`napari_step._inference`: length buckets, memory-sized batches, windows
for long tracks, rescaling on the device, overlapped transfers, autocast) and thin entries,
:func:`predict_d`, :func:`predict_log10_d` and :func:`predict_alpha`. A new head (a per-frame state
classifier) adds a :class:`napari_step._inference.Head`, a registry entry and an entry function.

Frame convention (every entry): the value at frame t describes the motion from frame t to t+1;
the last frame of a track repeats the value before it. Legacy checkpoints (the shipped ones,
trained with the step t-1 -> t stored at frame t; their card has no ``frame_convention``) are
shifted by one frame to follow it.

Units: positions in pixels, frames; D in px^2/frame.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import torch

from . import _inference
from ._input import as_track_list
from .model import CheckpointError, XResAttn, load_checkpoint

__all__ = [
    "predict_d",
    "predict_log10_d",
    "predict_alpha",
    "predict_per_frame",
    "load_model",
    "model_path",
    "resolve_device",
    "resolve_precision",
    "available_models",
    "BUILTIN_MODELS",
    "NAMED_MODELS",
    "PRECISIONS",
    "WEIGHTS_DIR",
]

WEIGHTS_DIR = Path(__file__).parent / "weights"
# Shipped checkpoints by (target, track dimension); the name "default" picks them.
BUILTIN_MODELS = {
    ("log10_d", 2): "step_d_2d.pt",
    ("log10_d", 1): "step_d_1d.pt",
    ("alpha", 2): "step_alpha_2d.pt",
}
# Further shipped checkpoints by name: "acquired" is the 2-D D model fine-tuned on tracks as a
# camera records them (motion blur, localisation noise, fast switching, immobile periods; its
# card lists the training world): closer to the true D on real movies and switching tracks,
# a little less precise on clean simulated change-point tracks (README, "The shipped model").
NAMED_MODELS = {"acquired": {("log10_d", 2): "step_d_2d_acquired.pt"}}
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def available_models(target: str = "log10_d") -> dict[str, Path]:
    """Built-in models of one target whose weights ship with this installation.

    Parameters
    ----------
    target : str
        "log10_d" (D models) or "alpha".

    Returns
    -------
    dict
        ``{"default (2-D)": path, ...}``.
    """
    out = {
        f"default ({d}-D)": WEIGHTS_DIR / f
        for (t, d), f in BUILTIN_MODELS.items()
        if t == target and (WEIGHTS_DIR / f).exists()
    }
    for name, files in NAMED_MODELS.items():
        for (t, d), f in files.items():
            if t == target and (WEIGHTS_DIR / f).exists():
                out[f"{name} ({d}-D, blur + noise)"] = WEIGHTS_DIR / f
    return out


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device to run on.

    Parameters
    ----------
    device : str, torch.device or None
        None or "auto": CUDA when available, else the CPU; "gpu" means "cuda". A GPU asked for
        where none exists falls back to the CPU with a warning instead of failing.

    Returns
    -------
    torch.device
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device("cuda" if device == "gpu" else device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(
            "CUDA was requested but no GPU is available: running on the CPU", stacklevel=3
        )
        return torch.device("cpu")
    return dev


def resolve_precision(precision: str | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision name (None: plain float32).

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16", "fp16"} or None
        "auto" (or None): bf16 on a CUDA device that supports it (outputs within the tolerance
        stated in ``tests/test_predict.py``: validation error within 0.003 of fp32), float32 on
        the CPU, where bf16 is slower on most processors.
    device : torch.device

    Returns
    -------
    torch.dtype or None
    """
    if precision in (None, "auto"):
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else None
    if precision not in _AMP_DTYPES:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    return _AMP_DTYPES[precision]


def model_path(model: str | Path, target: str = "log10_d", dim: int = 2) -> Path:
    """The checkpoint file for a built-in name or a path.

    Parameters
    ----------
    model : str or Path
        "default" (the shipped model for ``target`` and ``dim``), "acquired" (2-D D: the
        fine-tune on blurred, noisy, switching tracks) or a path to a .pt file.
    target : str
        "log10_d" or "alpha".
    dim : int
        Track dimension the model is for (1 or 2).

    Raises
    ------
    ValueError
        An unknown name.
    CheckpointError
        No shipped model for that target and dimension (the message says how to train one).
    """
    p = Path(str(model))
    if p.suffix == ".pt" or p.exists():
        return p
    name = _inference.HEADS[target].name
    names = ["default"] + [n for n, files in NAMED_MODELS.items() if (target, dim) in files]
    if str(model) in NAMED_MODELS and str(model) not in names:
        have = ", ".join(f"{d}-D {_inference.HEADS[t].name}" for t, d in NAMED_MODELS[str(model)])
        raise CheckpointError(
            f"the built-in model {str(model)!r} is a {have} model; for {dim}-D {name} use "
            f"model='default' or a checkpoint path"
        )
    if str(model) not in names:
        raise ValueError(
            f"unknown {name} model {model!r}: use one of {names} or a path to a .pt file"
        )
    table = BUILTIN_MODELS if str(model) == "default" else NAMED_MODELS[str(model)]
    fname = table.get((target, dim))
    if fname is None or not (WEIGHTS_DIR / fname).exists():
        flag = "" if target == "log10_d" else f" --target {target}"
        raise CheckpointError(
            f"no built-in {dim}-D {name} model ships with this version of napari-step "
            f"(train one with `napari-step train{flag} --dim {dim} --out model.pt` and pass "
            f"model='model.pt')"
        )
    return WEIGHTS_DIR / fname


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, device: str) -> XResAttn:
    model, _ = load_checkpoint(path)
    return model.to(device).eval()


def load_model(
    model: str | Path | XResAttn = "default",
    dim: int = 2,
    device: str | torch.device | None = None,
    target: str = "log10_d",
) -> XResAttn:
    """A ready model (eval mode, on ``device``), cached by file and modification time.

    Parameters
    ----------
    model : str, Path or XResAttn
        A built-in name, a checkpoint path or a model object.
    dim : int
        Track dimension, to pick a built-in model.
    device : str, torch.device or None
        See :func:`resolve_device`.
    target : str
        "log10_d" or "alpha": picks the built-in model and is checked against the model's own.

    Raises
    ------
    ValueError
        The model predicts another target (e.g. an alpha model given for D).
    """
    if target not in _inference.HEADS:
        raise ValueError(f"unknown target {target!r}: use one of {list(_inference.HEADS)}")
    dev = resolve_device(device)
    if isinstance(model, XResAttn):
        net = model.to(dev).eval()
    else:
        path = model_path(model, target, dim)
        mtime = path.stat().st_mtime_ns if path.is_file() else -1
        net = _load_cached(str(path), mtime, str(dev))
    if net.config.target != target:
        name = _inference.HEADS[target].name
        how = (
            "" if target == "log10_d" else f" (trained with `napari-step train --target {target}`)"
        )
        raise ValueError(
            f"the model predicts {net.config.target!r}, not {name}: give a {name} model{how}"
        )
    return net


def _compiled(net: XResAttn, backend: str):
    cache = net.__dict__.setdefault("_napari_step_compiled", {})
    if backend not in cache:
        cache[backend] = torch.compile(net, backend=backend)
    return cache[backend]


def predict_per_frame(
    tracks,
    target: str,
    model: str | Path | XResAttn = "default",
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    progress=None,
    precision: str = "auto",
    compile_model: bool | str = False,
) -> list[np.ndarray]:
    """The common body of every per-frame entry: validate, load, run the engine.

    Parameters
    ----------
    tracks : ndarray or list of ndarray
        (N, T, dim) or a list of (T_i, dim) positions (px), one row per frame, no gaps.
    target : str
        The head: "log10_d" or "alpha".
    model, device, batch_size, progress, precision, compile_model
        See :func:`predict_d`.

    Returns
    -------
    list of ndarray
        One float64 (T_i,) array per track, in input order, forward frame convention.
    """
    tracks = as_track_list(tracks, allow_nan=False)
    if not tracks:
        return []
    dim = tracks[0].shape[1]
    dev = resolve_device(device)
    net = load_model(model, dim if dim != 3 else 2, dev, target)
    backend = "inductor" if compile_model is True else compile_model
    engine = _inference.Engine(
        net,
        _inference.HEADS[target],
        dev,
        amp_dtype=resolve_precision(precision, dev),
        batch_size=batch_size,
        legacy=getattr(net, "frame_convention", "forward") == "backward",
        module=_compiled(net, backend) if backend else None,
    )
    return _inference.run(tracks, engine, progress)


def predict_log10_d(
    tracks,
    model: str | Path | XResAttn = "auto",
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    progress=None,
    precision: str = "auto",
    compile_model: bool | str = False,
    frame_step: int = 1,
) -> list[np.ndarray]:
    """Like :func:`predict_d` but returns log10 D (D in px^2/frame); -inf where a track does not
    move."""
    frame_step = check_frame_step_value(frame_step)
    if isinstance(model, str) and model == "auto":
        from .acquisition import choose_d_model  # (acquisition reads predict's chaining)

        tracks = as_track_list(tracks, allow_nan=False)
        model = choose_d_model(tracks, frame_step).model
    if frame_step == 1:
        return predict_per_frame(
            tracks, "log10_d", model, device, batch_size, progress, precision, compile_model
        )
    tracks = as_track_list(tracks, allow_nan=False)
    if not tracks:
        return []
    chains, lengths = zip(*(_chained_phases(tr, frame_step) for tr in tracks))
    with warnings.catch_warnings():  # short chains are handled below, not the user's
        warnings.simplefilter("ignore", UserWarning)
        logs = predict_per_frame(
            list(chains), "log10_d", model, device, batch_size, progress, precision, compile_model
        )
    out = [
        _per_frame_from_phases(_split_chain(v, n), len(tr), frame_step)
        for tr, v, n in zip(tracks, logs, lengths)
    ]
    # tracks too short for a chain of k-frame steps keep their one-frame reading (not NaN)
    short = [i for i, v in enumerate(out) if np.isnan(v).all()]
    if short:
        redo = predict_per_frame(
            [tracks[i] for i in short],
            "log10_d",
            model,
            device,
            batch_size,
            None,
            precision,
            compile_model,
        )
        for i, v in zip(short, redo):
            out[i] = v
    return out


def check_frame_step_value(frame_step) -> int:
    """A frame step given by the user as an int >= 1 (ValueError naming it otherwise)."""
    if isinstance(frame_step, bool) or not isinstance(frame_step, (int, np.integer)):
        raise ValueError(f"frame_step must be a whole number of frames >= 1, got {frame_step!r}")
    if frame_step < 1:
        raise ValueError(f"frame_step must be >= 1 frame, got {frame_step}")
    return int(frame_step)


def _chained_phases(track: np.ndarray, k: int) -> tuple[np.ndarray, list[int]]:
    """The k sub-tracks ``track[phase::k]`` chained into one track of k-frame steps, and the
    sub-tracks' lengths.

    The steps of phase 0 come first, then those of phase 1, and so on, so STEP reads one input
    about k times longer than each sub-track (an 18-frame sub-track is too short for STEP to
    read D without bias; the 52-step chain of a 54-frame track is not). Within a phase the steps
    keep their order in time; the k - 1 joins put the end of the track next to its start.
    """
    steps, lengths = [], []
    for phase in range(k):
        sub = track[phase::k]
        lengths.append(len(sub))
        steps.append(np.diff(sub, axis=0))
    walk = np.concatenate(steps)
    return np.vstack([np.zeros((1, track.shape[1])), np.cumsum(walk, axis=0)]), lengths


def _split_chain(values: np.ndarray, lengths: list[int]) -> list[np.ndarray]:
    """Per-step values of a chain (:func:`_chained_phases`) back to one array per sub-track
    (forward convention: value j is sub-track step j; its last frame repeats the one before)."""
    out, offset = [], 0
    values = np.asarray(values, float)
    for n in lengths:
        seg = values[offset : offset + n - 1] if n > 1 else values[:0]
        offset += max(n - 1, 0)
        out.append(np.r_[seg, seg[-1:]] if len(seg) else seg)
    return out


def _per_frame_from_phases(phase_logs: list, n: int, k: int) -> np.ndarray:
    """Per-frame log10 D (px^2/frame) from STEP's values on the k sub-tracks
    ``track[phase::k]``.

    Sub-track value j (motion from frame phase + j k to phase + (j + 1) k, px^2 per k frames)
    covers those k frames; each frame takes the mean over the phases that cover it.
    """
    acc = np.zeros(n)
    cnt = np.zeros(n)
    for phase, v in enumerate(phase_logs):
        v = np.asarray(v, float)
        if not len(v) or np.isnan(v).all():
            continue
        frames = np.arange(phase, n)
        j = np.minimum((frames - phase) // k, len(v) - 1)
        val = v[j] - np.log10(k)
        ok = ~np.isnan(val)
        np.add.at(acc, frames[ok], val[ok])
        np.add.at(cnt, frames[ok], 1)
    with np.errstate(invalid="ignore"):
        out = np.where(cnt > 0, acc / np.maximum(cnt, 1), np.nan)
    # frames before the first covered frame (only when phase 0 is too short): the first value
    first = np.flatnonzero(cnt > 0)
    if len(first):
        out[: first[0]] = out[first[0]]
    return out


def predict_d(
    tracks,
    model: str | Path | XResAttn = "auto",
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    progress=None,
    precision: str = "auto",
    compile_model: bool | str = False,
    frame_step: int = 1,
) -> list[np.ndarray]:
    """Per-frame diffusion coefficient predicted by STEP for each track.

    Parameters
    ----------
    tracks : ndarray or list of ndarray
        An (N, T, dim) array or a list of (T_i, dim) arrays of real positions in pixels, one row
        per frame, no gaps; dim 1, 2 or 3 (3-D tracks: mean over the three planar projections
        with the 2-D model).
    model : str, Path or XResAttn
        "auto" (default): the shipped model the tracks' steps call for, decided once over all
        of them (:func:`napari_step.acquisition.choose_d_model`: "acquired" where the steps
        carry motion blur or localisation noise, else "default"; pass tracks of one acquisition
        together). "default" (the shipped model for the tracks' dimension, trained on exact,
        instantaneous positions), "acquired" (2-D: trained on blurred, noisy tracks), a
        checkpoint path or a model.
    device : str or None
        None/"auto": CUDA when available; "cpu", "cuda", "cuda:1", ...
    batch_size : int, optional
        Tracks per model call; default: sized to the memory of the device.
    progress : bool or callable, optional
        True for a progress bar or a callable ``(done, total)`` (tracks).
    precision : {"auto", "fp32", "bf16", "fp16"}
        Autocast precision of the network (rescaling stays float64); "auto" is bf16 on CUDA and
        float32 on the CPU (see :func:`resolve_precision`).
    compile_model : bool or str
        ``torch.compile`` the network (True: the inductor backend; a string names the backend).
        Pays on a GPU for large runs; the first call of each track length compiles.
    frame_step : int
        Read the motion on k-frame steps (default 1: every frame): STEP reads the k sub-tracks
        ``track[phase::k]`` chained into one input of k-frame steps (:func:`_chained_phases`),
        and each frame gets the mean log10 D of the sub-track steps covering it, still in
        px^2/frame. For movies whose one-frame steps are damped (compressed video, smoothed
        localisations; :func:`napari_step.acquisition.check_frame_step` finds k). The time
        resolution becomes k frames; a track whose chain is shorter than the model's minimum
        length keeps its one-frame reading.

    Returns
    -------
    list of ndarray
        D (px^2/frame, linear) per frame, float64 (T_i,) per track, in input order. The value at
        frame t is the D of the motion from frame t to t+1; the last frame repeats the one before.
        Tracks shorter than the model's minimum get NaN (one warning); a track that never moves
        gets D = 0.

    Raises
    ------
    ValueError
        Non-finite, complex or badly shaped positions (naming the track), an alpha model, an
        unknown model name or precision.
    napari_step.model.CheckpointError
        A model file that is missing, corrupt, foreign or unsafe.
    """
    logs = predict_log10_d(
        tracks, model, device, batch_size, progress, precision, compile_model, frame_step
    )
    return [10.0**v for v in logs]


def predict_alpha(
    tracks,
    model: str | Path | XResAttn = "default",
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    progress=None,
    precision: str = "auto",
    compile_model: bool | str = False,
) -> list[np.ndarray]:
    """Per-frame anomalous-diffusion exponent alpha predicted by a STEP alpha model.

    Parameters
    ----------
    tracks : ndarray or list of ndarray
        As for :func:`predict_d`; any length unit (alpha is scale-free).
    model : str, Path or XResAttn
        A checkpoint trained with ``target="alpha"`` or "default" (the shipped 2-D model
        ``weights/step_alpha_2d.pt``; other dimensions have no built-in model and raise
        :class:`napari_step.model.CheckpointError`, a ValueError, saying how to train one).
    device, batch_size, progress, precision, compile_model
        As for :func:`predict_d`.

    Returns
    -------
    list of ndarray
        alpha (dimensionless) per frame, float64 (T_i,) per track, in input order; the value at
        frame t describes the motion from t to t+1, the last frame repeats the one before. NaN for
        tracks shorter than the model's minimum (one warning) and tracks that never move.
    """
    return predict_per_frame(
        tracks, "alpha", model, device, batch_size, progress, precision, compile_model
    )
