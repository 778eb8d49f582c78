"""Per-frame diffusive state (AnDi-2 classes) from a small convolutional network.

Classes, as in the AnDi-2 challenge: 0 immobile, 1 confined, 2 free, 3 directed. The model reads
scale-free per-frame features of a track (so it answers the same for a track scaled by any
factor, in any unit) and gives a probability per class and frame:

- log squared step size relative to the track's median step;
- the cosine of the angle between consecutive steps;
- over sliding windows (half-widths 3, 10 and 30 frames): the mean of both, the local MSD ratios
  MSD(k) / (k MSD(1)) at lags 2, 4, 8, 16 (log), the radius of gyration relative to the step size
  (log) and the straightness (end-to-end distance squared over the sum of squared steps, log).

Convention: the value at frame t describes the motion from frame t to t+1 (the last frame
repeats the one before it), as everywhere in napari-step. The network (:class:`StateNet`) is a
stack of dilated residual 1-D convolutions (receptive field ~130 frames); it is trained on the
project's own simulators of the AnDi-2 phenomenological models (:mod:`napari_step.simulate`),
with localisation noise and motion blur, by :func:`napari_step.states_train.train_state_model`
(minutes on two CPU cores).
The shipped weights are ``weights/state_2d.pt``: a dict with ``config``, ``state_dict`` and a
``card`` (training world and record), loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = [
    "STATE_NAMES",
    "state_features",
    "StateNet",
    "load_state_model",
    "predict_state",
    "N_FEATURES",
    "DEFAULT_WEIGHTS",
]

STATE_NAMES = ("immobile", "confined", "free", "directed")  # index = AnDi-2 class number
DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "state_2d.pt"
WINDOWS = (3, 10, 30)  # half-widths (frames) of the sliding windows
LAGS = (2, 4, 8, 16)
CLIP = 8.0
MIN_FRAMES = 3
N_FEATURES = 2 + len(WINDOWS) * (2 + len(LAGS) + 2)


# --------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------


def _pad_end(v: np.ndarray, n: int) -> np.ndarray:
    """Extend (N, m) per-start values to (N, n) frames by repeating the last column."""
    if v.shape[1] >= n:
        return v[:, :n]
    return np.concatenate([v, np.repeat(v[:, -1:], n - v.shape[1], axis=1)], axis=1)


def _window_mean(v: np.ndarray, n_frames: int, half: int) -> np.ndarray:
    """Mean of (N, m) values indexed by start frame i over i in [t - half, t + half] for each
    frame t (N, n_frames); windows are clipped to the valid starts (at least one)."""
    m = v.shape[1]
    cs = np.concatenate([np.zeros((v.shape[0], 1)), np.cumsum(v, axis=1)], axis=1)
    t = np.arange(n_frames)
    lo = np.clip(t - half, 0, m - 1)
    hi = np.clip(t + half, lo, m - 1) + 1
    return (cs[:, hi] - cs[:, lo]) / (hi - lo)


def _log_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    tiny = 1e-300
    return np.clip(np.log(np.maximum(a, tiny) / np.maximum(b, tiny)), -CLIP, CLIP)


def _window_features(x: np.ndarray, r: np.ndarray, cos: np.ndarray, half: int) -> list:
    """The sliding-window features of one half-width for (N, T, dim) positions."""
    n, t_len, _ = x.shape
    m1 = _window_mean(r, t_len, half)
    scale = np.median(r, axis=1, keepdims=True)
    out = [_window_mean(_log_ratio(r, scale), t_len, half), _window_mean(cos, t_len, half)]
    for k in LAGS:
        if t_len > k:
            mk = _window_mean(np.sum((x[:, k:] - x[:, :-k]) ** 2, axis=2), t_len, half)
            out.append(_log_ratio(mk, k * m1))
        else:
            out.append(np.zeros((n, t_len)))
    # radius of gyration and straightness over positions [t - half, t + half + 1]
    cs = np.concatenate([np.zeros((n, 1, x.shape[2])), np.cumsum(x, axis=1)], axis=1)
    cs2 = np.concatenate([np.zeros((n, 1)), np.cumsum(np.sum(x**2, axis=2), axis=1)], axis=1)
    tt = np.arange(t_len)
    lo = np.clip(tt - half, 0, t_len - 2)
    hi = np.clip(tt + half + 2, lo + 2, t_len)
    cnt = (hi - lo)[None, :]
    mean = (cs[:, hi] - cs[:, lo]) / cnt[..., None]
    rg2 = (cs2[:, hi] - cs2[:, lo]) / cnt - np.sum(mean**2, axis=2)
    out.append(_log_ratio(rg2, m1 * cnt))
    csr = np.concatenate([np.zeros((n, 1)), np.cumsum(r, axis=1)], axis=1)
    end2 = np.sum((x[:, hi - 1] - x[:, lo]) ** 2, axis=2)
    out.append(_log_ratio(end2, csr[:, hi - 1] - csr[:, lo]))
    return out


def state_features(tracks: np.ndarray) -> np.ndarray:
    """Scale-free per-frame features (N, N_FEATURES, T) of equal-length tracks (N, T, dim).

    Parameters
    ----------
    tracks : ndarray, shape (N, T, dim)
        Positions in any length unit, T >= 3, finite.

    Returns
    -------
    ndarray, shape (N, N_FEATURES, T), float32
        Features in the forward convention (frame t: the motion t -> t+1), clipped to +-8.
    """
    x = np.asarray(tracks, dtype=float)
    if x.ndim != 3 or x.shape[1] < MIN_FRAMES:
        raise ValueError(f"tracks must be (N, T >= {MIN_FRAMES}, dim), got {x.shape}")
    x = x - x[:, :1]
    steps = np.diff(x, axis=1)
    r = np.sum(steps**2, axis=2)  # r[:, t]: the step t -> t+1
    scale = np.median(r, axis=1, keepdims=True)
    scale = np.where(scale > 0, scale, np.mean(r, axis=1, keepdims=True))
    norm = np.sqrt(r)
    dot = np.sum(steps[:, 1:] * steps[:, :-1], axis=2)
    den = norm[:, 1:] * norm[:, :-1]
    cos = np.where(den > 0, dot / np.where(den > 0, den, 1.0), 0.0)  # cos[:, t-1] at frame t
    t_len = x.shape[1]
    feats = [_pad_end(_log_ratio(r, scale), t_len)]
    cos_t = np.concatenate([cos[:, :1], cos], axis=1)  # frame 0 repeats frame 1
    feats.append(_pad_end(cos_t, t_len))
    for half in WINDOWS:
        feats += [_pad_end(f, t_len) for f in _window_features(x, r, cos_t, half)]
    out = np.stack(feats, axis=1)
    out[~np.isfinite(out)] = 0.0
    return np.clip(out, -CLIP, CLIP).astype(np.float32)


# --------------------------------------------------------------------------------------------
# network
# --------------------------------------------------------------------------------------------


class StateNet(nn.Module):
    """Dilated residual 1-D convolutions: (B, N_FEATURES, T) features -> (B, 4, T) logits.

    Parameters
    ----------
    n_features : int
        Input channels (``N_FEATURES``).
    hidden : int
        Channels of the residual stack.
    dilations : sequence of int
        One residual block per dilation (kernel ``kernel``, replicate padding).
    kernel : int
        Odd kernel size.
    n_classes : int
        Output classes (4: immobile, confined, free, directed).
    """

    def __init__(
        self,
        n_features: int = N_FEATURES,
        hidden: int = 48,
        dilations=(1, 2, 4, 8, 16, 1),
        kernel: int = 5,
        n_classes: int = 4,
    ):
        super().__init__()
        self.inp = nn.Conv1d(n_features, hidden, 1)
        self.convs = nn.ModuleList(
            nn.Conv1d(
                hidden,
                hidden,
                kernel,
                dilation=d,
                padding=d * (kernel - 1) // 2,
                padding_mode="replicate",
            )
            for d in dilations
        )
        self.norms = nn.ModuleList(nn.GroupNorm(1, hidden) for _ in dilations)
        self.out = nn.Conv1d(hidden, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for conv, norm in zip(self.convs, self.norms):
            h = h + torch.nn.functional.gelu(norm(conv(h)))
        return self.out(h)


def load_state_model(path: str | Path | None = None) -> tuple[StateNet, dict]:
    """The state network and its card from a weights file (default: the shipped one).

    Parameters
    ----------
    path : str or Path, optional
        A file written by :func:`train_state_model` (``torch.save`` of a dict with ``config``,
        ``state_dict`` and ``card``); default ``weights/state_2d.pt``.

    Returns
    -------
    (StateNet, dict)
        The network in eval mode on the CPU and the card (training world and record).
    """
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"no state model at {path}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or not {"config", "state_dict"} <= set(blob):
        raise ValueError(f"{path} is not a napari-step state model")
    net = StateNet(**blob["config"])
    net.load_state_dict(blob["state_dict"])
    net.eval()
    return net, dict(blob.get("card", {}))


_CACHE: dict = {}
_PLANES = ((0, 1), (0, 2), (1, 2))


def _probabilities(net: StateNet, x: np.ndarray) -> np.ndarray:
    """(N, 4, T) class probabilities of equal-length 2-D or 3-D tracks (N, T, dim)."""
    planes = [x] if x.shape[2] == 2 else [x[:, :, list(p)] for p in _PLANES]
    prob = 0.0
    for xy in planes:
        with torch.no_grad():
            prob = prob + torch.softmax(net(torch.from_numpy(state_features(xy))), dim=1).numpy()
    return np.asarray(prob, dtype=float) / len(planes)


def _cached(path) -> StateNet:
    key = str(Path(path) if path is not None else DEFAULT_WEIGHTS)
    if key not in _CACHE:
        _CACHE[key] = load_state_model(key)[0]
    return _CACHE[key]


def predict_state(
    tracks, model: str | Path | StateNet | None = None, batch_size: int = 256
) -> list[np.ndarray]:
    """Per-frame probabilities of the AnDi-2 diffusive states for each track.

    Parameters
    ----------
    tracks : ndarray or list of ndarray
        An (N, T, dim) array or a list of (T_i, dim) positions (any length unit, one row per
        frame, no gaps); dim 2, or 3 (the mean over the three planar projections, as for D).
    model : str, Path or StateNet, optional
        Weights file or network; default: the shipped 2-D model.
    batch_size : int
        Tracks per network call.

    Returns
    -------
    list of ndarray
        Per track a float64 (T_i, 4) array: probabilities of immobile, confined, free, directed
        (``STATE_NAMES``) at each frame; the value at frame t describes the motion t -> t+1.
        Tracks shorter than 3 frames get NaN.

    Raises
    ------
    ValueError
        Positions that are not finite or not (T, 2) / (T, 3) (the model is trained on 2-D tracks).
    """
    if isinstance(tracks, np.ndarray) and tracks.ndim == 3:
        tracks = list(tracks)
    arrs = [np.asarray(t, dtype=float) for t in tracks]
    for i, a in enumerate(arrs):
        if a.ndim != 2 or a.shape[1] not in (2, 3) or not np.isfinite(a).all():
            raise ValueError(
                f"track {i}: positions must be finite (T, 2) or (T, 3), got shape {a.shape}"
            )
    net = model if isinstance(model, StateNet) else _cached(model)
    out: list = [None] * len(arrs)
    by_len: dict = {}
    for i, a in enumerate(arrs):
        by_len.setdefault(len(a), []).append(i)
    for n_frames, idx in by_len.items():
        if n_frames < MIN_FRAMES:
            for i in idx:
                out[i] = np.full((n_frames, len(STATE_NAMES)), np.nan)
            continue
        for s in range(0, len(idx), batch_size):
            part = idx[s : s + batch_size]
            prob = _probabilities(net, np.stack([arrs[i] for i in part]))
            for j, i in enumerate(part):
                out[i] = prob[j].T
    return out
