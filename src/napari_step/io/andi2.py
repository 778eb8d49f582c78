"""AnDi-2 challenge files: trajectories in, single-trajectory and ensemble predictions out.

Formats (andi-datasets 2.1, track 2; positions in px, time in frames, K in px^2/frame):

* trajectories ``trajs_fov_<f>.csv`` (also ``traj_fov_<f>.csv``): ``traj_idx,frame,x,y`` (index
  and frame may be written as floats), optionally the per-frame truth ``alpha,D,state``;
* single-trajectory labels/predictions ``fov_<f>.txt`` (truth: ``traj_labs_fov_<f>.txt``): one
  line per trajectory, ``idx, K_1, alpha_1, state_1, CP_1, ..., K_n, alpha_n, state_n, T``, change
  points relative to the track's first frame, ``T`` the track length, states 0 immobile,
  1 confined, 2 free, 3 directed;
* ensemble labels ``ensemble_labels.txt``: a header ``model: <name>; num_state: <n>`` then a
  5 x n matrix (``;``-separated): mean and variance of alpha, mean and variance of K, weight.

A submission folder is ``<out>/track_2/exp_<e>/fov_<f>.txt`` plus one ``ensemble_labels.txt``
per experiment.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..tracks import position_columns, validate_table
from ._andi2_estimates import (
    andi2_alpha,
    piecewise_alpha,
    pool_segment_k,
    segment_mle_k,
    table_piecewise_alpha,
    tracks_pooled_k,
)
from ._common import (
    META_KEY,
    TrackFileError,
    _existing,
    _numeric_track_columns,
    _track_columns,
    _validated,
)
from ._decode import _INDEX, _load_csv, _sniff_csv
from ._write import atomic_write

__all__ = [
    "ANDI2_STATES",
    "ANDI2_MODELS",
    "read_andi2_trajectories",
    "read_andi2_labels",
    "write_andi2_labels",
    "andi2_segments",
    "andi2_alpha",
    "piecewise_alpha",
    "segment_mle_k",
    "pool_segment_k",
    "andi2_ensemble",
    "write_andi2_ensemble",
    "read_andi2_ensemble",
    "andi2_submission_path",
]

ANDI2_STATES = {0: "immobile", 1: "confined", 2: "free", 3: "directed"}
ANDI2_MODELS = ("single_state", "multi_state", "immobile_traps", "dimerization", "confinement")
_TRUTH_COLUMNS = {"alpha": "alpha_true", "D": "d_true", "state": "state_true"}
_FOV = re.compile(r"^(?:trajs?_)?fov_(\d+)\.\w+$")
_EXP = re.compile(r"^exp_(\d+)$")
_MIN_VAR = 1e-4  # variance written for a state whose segments all share one value


def read_andi2_trajectories(path: str | os.PathLike) -> pd.DataFrame:
    """Read an AnDi-2 trajectory file (``trajs_fov_<f>.csv``) as a track table.

    Parameters
    ----------
    path : str or path-like
        CSV with ``traj_idx, frame, x, y`` (px, frames); optional per-frame truth columns
        ``alpha``, ``D`` (px^2/frame) and ``state`` are kept as ``alpha_true``, ``d_true`` and
        ``state_true``.

    Returns
    -------
    pandas.DataFrame
        Track table (``track_id`` = ``traj_idx``, ``frame``, ``y``, ``x`` in px, ...) with
        ``attrs["napari_step"]`` = ``{"source_format": "andi2", "space_units": "px",
        "time_units": "frame"}``.
    """
    p = _existing(path)
    layout = _sniff_csv(p)
    name = layout.name
    names = [n for n in layout.names if n != _INDEX]
    aliases = {"track_id": ["traj_idx"], "frame": ["frame"], "y": ["y"], "x": ["x"]}
    needs = "; an AnDi-2 trajectory file needs traj_idx, frame, x, y"
    found = _track_columns(names, name, aliases, needs)
    df, label = _load_csv(p, layout, layout.header_line)
    if len(df) == 0:
        raise TrackFileError(f"{name}: the file has a header but no data rows")
    df = _numeric_track_columns(df, name, found, label)
    df = df.rename(columns={k: v for k, v in _TRUTH_COLUMNS.items() if k in df.columns})
    table = _validated(df, name)
    table.attrs[META_KEY] = {"source_format": "andi2", "space_units": "px", "time_units": "frame"}
    return table


def _parse_label_line(line: str, line_no: int, name: str) -> list[float]:
    try:
        values = [float(v) for v in line.split(",")]
    except ValueError:
        raise TrackFileError(
            f"{name}: line {line_no} holds a value that is not a number: {line[:80]!r}"
        ) from None
    if len(values) < 5 or len(values) % 4 != 1:
        raise TrackFileError(
            f"{name}: line {line_no} has {len(values)} values; an AnDi-2 line is idx, then "
            "K, alpha, state, change point per segment, ending with the track length "
            "(1 + 4 n values)"
        )
    return values


def read_andi2_labels(path: str | os.PathLike) -> pd.DataFrame:
    """Read a single-trajectory label or prediction file into a segments table.

    Parameters
    ----------
    path : str or path-like
        ``traj_labs_fov_<f>.txt`` (truth) or ``fov_<f>.txt`` (prediction).

    Returns
    -------
    pandas.DataFrame
        One row per segment: ``track_id``, ``segment`` (0, 1, ...), ``start``, ``stop``
        (frames relative to the track's first frame, stop exclusive), ``k`` (px^2/frame),
        ``alpha``, ``state`` (int) and ``length`` (the track's length T, frames).
    """
    p = _existing(path)
    rows = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        v = _parse_label_line(line, i, p.name)
        n_seg = (len(v) - 1) // 4
        bounds = [0] + [int(v[4 + 4 * s]) for s in range(n_seg)]
        for s in range(n_seg):
            rows.append(
                (
                    int(v[0]),
                    s,
                    bounds[s],
                    bounds[s + 1],
                    v[1 + 4 * s],
                    v[2 + 4 * s],
                    int(v[3 + 4 * s]),
                    bounds[-1],
                )
            )
    if not rows:
        raise TrackFileError(f"{p.name}: holds no trajectory lines")
    return pd.DataFrame(
        rows, columns=["track_id", "segment", "start", "stop", "k", "alpha", "state", "length"]
    )


def _fmt(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)


def write_andi2_labels(segments: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a segments table in the single-trajectory format, atomically.

    Parameters
    ----------
    segments : pandas.DataFrame
        As :func:`andi2_segments` or :func:`read_andi2_labels` return: ``track_id``, ``start``,
        ``stop`` (frames from the track start), ``k`` (px^2/frame), ``alpha``, ``state``,
        ``length``; rows of a track consecutive, in segment order.
    path : str or path-like
        Target file (``fov_<f>.txt``); its folder must exist.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    seg = segments.sort_values(["track_id", "start"], kind="stable")
    bad = ~np.isfinite(seg[["k", "alpha", "state"]].to_numpy(dtype=float)).all(axis=1)
    if bad.any():
        raise ValueError(
            f"AnDi-2 predictions need finite K, alpha and state; track "
            f"{int(seg.track_id[bad].iloc[0])} has a missing value"
        )
    lines = []
    for tid, g in seg.groupby("track_id", sort=False):
        out = [int(tid)]
        for j, r in enumerate(g.itertuples(index=False)):
            if j:
                out.append(int(r.start))
            out += [r.k, r.alpha, int(r.state)]
        out.append(int(g["length"].iloc[-1]))
        lines.append(",".join(_fmt(x) for x in out))
    text = "\n".join(lines) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _to_px_frame(results: pd.DataFrame, pixel_size, frame_interval) -> float:
    """Factor from the table's D units to px^2/frame."""
    md = results.attrs.get(META_KEY) if isinstance(results.attrs.get(META_KEY), dict) else {}
    px = float(pixel_size if pixel_size is not None else md.get("pixel_size_um", 1.0))
    dt = float(frame_interval if frame_interval is not None else md.get("frame_interval_s", 1.0))
    if not (px > 0 and dt > 0):
        raise ValueError(f"pixel size and frame interval must be positive, got {px}, {dt}")
    return dt / px**2


def _per_frame_k(table: pd.DataFrame, codes: np.ndarray) -> np.ndarray:
    """K per frame (table units): segment D, else the track's median STEP D, else lag-1 MSD."""
    k = np.full(len(table), np.nan)
    for col in ("segment_d", "step_d"):
        if col in table.columns:
            k = np.where(np.isfinite(k), k, table[col].to_numpy(dtype=float))
    med = pd.Series(k).groupby(codes).transform("median").to_numpy()
    k = np.where(np.isfinite(k), k, med)
    pos = table[position_columns(table)].to_numpy(dtype=float)
    same = np.r_[False, codes[1:] == codes[:-1]]
    sq = np.where(same, np.r_[np.nan, ((pos[1:] - pos[:-1]) ** 2).sum(axis=1)], np.nan)
    msd1 = pd.Series(sq).groupby(codes).transform("mean").to_numpy() / (2 * pos.shape[1])
    return np.where(np.isfinite(k), k, msd1)


def andi2_segments(
    results: pd.DataFrame,
    *,
    pixel_size: float | None = None,
    frame_interval: float | None = None,
    default_alpha: float = 1.0,
    default_state: int = 2,
    piecewise: bool = True,
    device: str | None = None,
    experiment: bool = False,
) -> pd.DataFrame:
    """Segments of every track in the AnDi-2 sense, from a per-point results table.

    Parameters
    ----------
    results : pandas.DataFrame
        Per-point results (``track_id``, ``frame``, positions in px, ``step_d`` and, with
        segments, ``segment_d`` and ``changepoint`` in the table's D units; optionally per-frame
        ``step_alpha`` and ``state``/``step_state``).
    pixel_size, frame_interval : float, optional
        um per px and s per frame of the D values (default: the table's metadata, else 1), used
        to give K in px^2/frame.
    default_alpha : float
        alpha of segments without a per-frame alpha (1: Brownian).
    default_state : int
        State of segments without a per-frame state (2: free).
    piecewise : bool
        With ``step_alpha``, predict STEP's alpha (default model) again on each gap-free
        segment of at least ``PIECE_MIN_FRAMES`` frames of a track with several segments
        (:func:`piecewise_alpha`: a slow segment read within a track that also moves fast reads
        low); False: the mean of ``step_alpha`` over every segment.
    device : str, optional
        Torch device of that prediction (default: the package's choice).
    experiment : bool
        Decide the states per field of view, as the challenge labels them. The table is one FOV.
        :mod:`napari_step.experiment` gives the probability of each AnDi-2 model from the
        FOV's segments and the state model's probabilities on its gap-free tracks. Slow segments
        then take that model's state (immobile with traps, confined in compartments, else free);
        see :func:`napari_step.experiment.states_from_model`. The probabilities are kept in
        ``attrs["andi2_model_probabilities"]``. False: each segment's majority state.

    Returns
    -------
    pandas.DataFrame
        Columns of :func:`read_andi2_labels`: ``track_id``, ``segment``, ``start``, ``stop``
        (frames from the track's first frame), ``k`` (px^2/frame: the maximum-likelihood K of
        the segment's steps pooled with the track's segments of the same state,
        :func:`segment_mle_k`; the median of the per-frame D where the segment has no step),
        ``alpha`` (:func:`andi2_alpha`: the segment mean shrunk toward the state's prior by
        length, with the shares of the segment's frames in each state as its probabilities: 0
        when more than half are immobile, as the challenge labels immobile segments),
        ``state`` (segment majority) and ``length`` (last - first frame + 1). Immobile
        segments' K stays the measured one (K = 0 would cost much when a mobile segment is
        taken for immobile).
    """
    factor = _to_px_frame(results, pixel_size, frame_interval)
    table = validate_table(results, "results table")
    codes, ids = pd.factorize(table["track_id"], sort=True)
    frames = table["frame"].to_numpy(dtype=np.int64)
    first = pd.Series(frames).groupby(codes).transform("min").to_numpy()
    last = pd.Series(frames).groupby(codes).transform("max").to_numpy()
    new_track = np.r_[True, codes[1:] != codes[:-1]]
    cp = table["changepoint"].to_numpy(bool) if "changepoint" in table.columns else False
    seg_id = np.cumsum(new_track | cp) - 1
    k = _per_frame_k(table, codes) * factor
    alpha = (
        table["step_alpha"].to_numpy(float)
        if "step_alpha" in table.columns
        else np.full(len(table), np.nan)
    )
    state_col = next((c for c in ("state", "step_state") if c in table.columns), None)
    state = table[state_col].to_numpy(float) if state_col else np.full(len(table), np.nan)
    pos = table[position_columns(table)].to_numpy(dtype=float)
    nxt = np.r_[codes[1:] == codes[:-1], False] & np.r_[np.diff(frames) == 1, False]
    fwd = np.r_[((pos[1:] - pos[:-1]) ** 2).sum(axis=1), np.nan]  # the step t -> t+1 (px^2)
    g = pd.DataFrame(
        {
            "seg": seg_id,
            "track": codes,
            "start": frames - first,
            "length": last - first + 1,
            "k": k,
            "step": np.where(nxt, fwd, np.nan),
            "alpha": alpha,
        }
    ).groupby("seg")
    n_steps, sums = g["step"].count().to_numpy(), g["step"].sum().to_numpy()
    mle = tracks_pooled_k(n_steps, sums, g["track"].first(), pos.shape[1])  # segment_mle_k, pooled
    out = pd.DataFrame(
        {
            "track_id": np.asarray(ids)[g["track"].first().to_numpy()],
            "start": g["start"].min().to_numpy(),
            "k": np.where(np.isfinite(mle), mle, g["k"].median().to_numpy()),
            "alpha": g["alpha"].mean().to_numpy(),
            "length": g["length"].first().to_numpy(),
        }
    )
    out["segment"] = out.groupby("track_id").cumcount()
    out["stop"] = out.groupby("track_id")["start"].shift(-1).fillna(out["length"]).astype(int)
    if piecewise and "step_alpha" in table.columns:
        out["alpha"] = table_piecewise_alpha(out, codes, frames - first, pos, device)
    counts = _state_counts(seg_id, state, len(out))
    out["state"] = _majority(counts, default_state)
    shares = counts / counts.sum(axis=1, keepdims=True).clip(min=1)  # all 0: no state known
    model_p = None
    if experiment:
        model_p = _experiment_states(out, table, codes, pos, default_alpha)
        shares = np.eye(4)[out["state"].to_numpy(int)]
    out["alpha"] = andi2_alpha(
        out["alpha"].fillna(default_alpha), out["stop"] - out["start"], out["state"], shares
    )
    out = out[["track_id", "segment", "start", "stop", "k", "alpha", "state", "length"]]
    if model_p is not None:
        out.attrs["andi2_model_probabilities"] = dict(zip(ANDI2_MODELS, map(float, model_p)))
    return out


def _experiment_states(out, table, codes, pos, default_alpha) -> np.ndarray:
    """Set ``out["state"]`` from the FOV's model probabilities (returned)."""
    from ..experiment import fov_features, model_probabilities, slow_segments, states_from_model
    from ..states import predict_state

    cuts = np.flatnonzero(np.diff(codes)) + 1  # rows of a track are contiguous
    tracks = np.split(pos, cuts)
    probs = [np.full((len(xy), 4), np.nan) for xy in tracks]
    gap_free = [np.all(np.diff(fr) == 1) for fr in np.split(table["frame"].to_numpy(), cuts)]
    ok = [i for i, g in enumerate(gap_free) if g and np.isfinite(tracks[i]).all()]
    for i, p in zip(ok, predict_state([tracks[i] for i in ok]) if ok else []):
        probs[i] = p
    per = list(out.groupby("track_id", sort=False).indices.values())
    start, stop = out["start"].to_numpy(), out["stop"].to_numpy()
    bounds = [list(zip(start[ix], stop[ix])) for ix in per]
    ks = [out["k"].to_numpy(float)[ix] for ix in per]
    alpha = out["alpha"].fillna(default_alpha).to_numpy(float)
    model_p = model_probabilities(fov_features(bounds, ks, probs))
    state = out["state"].to_numpy().copy()
    for ix, st in zip(
        per, states_from_model(slow_segments(ks), [alpha[ix] for ix in per], model_p)
    ):
        state[ix] = st
    out["state"] = state
    return model_p


def _state_counts(seg_id: np.ndarray, state: np.ndarray, n_seg: int) -> np.ndarray:
    """(n_seg, 4) frames of each segment in each AnDi-2 state (0-3)."""
    known = np.isin(state, list(ANDI2_STATES))
    counts = np.bincount(seg_id[known] * 4 + state[known].astype(int), minlength=n_seg * 4)
    return counts.reshape(n_seg, 4).astype(float)


def _majority(counts: np.ndarray, default: int) -> np.ndarray:
    """The most frequent AnDi-2 state of each segment; ``default`` where none is known."""
    return np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1), default).astype(int)


def _two_groups(log_k: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    """Split segments into a slow and a fast group when log10 K is clearly bimodal.

    One-dimensional weighted 2-means; accepted when the group means are more than half a decade
    apart and each group holds at least 10 % of the weight. Returns the labels (0 slow) or None.
    """
    if len(log_k) < 2 or np.ptp(log_k) < 0.5:
        return None
    order = np.argsort(log_k)
    lk, ww = log_k[order], w[order]
    cw, cwx = np.cumsum(ww), np.cumsum(ww * lk)
    best, cut = np.inf, None
    for i in range(1, len(lk)):  # split between i-1 and i: exact optimum of 1-D 2-means
        m1, m2 = cwx[i - 1] / cw[i - 1], (cwx[-1] - cwx[i - 1]) / (cw[-1] - cw[i - 1])
        cost = (ww[:i] * (lk[:i] - m1) ** 2).sum() + (ww[i:] * (lk[i:] - m2) ** 2).sum()
        if cost < best:
            best, cut, means = cost, i, (m1, m2)
    share = cw[cut - 1] / cw[-1]
    if means[1] - means[0] < 0.5 or not 0.1 <= share <= 0.9:
        return None
    labels = np.empty(len(lk), dtype=int)
    labels[order] = (np.arange(len(lk)) >= cut).astype(int)
    return labels


def andi2_ensemble(segments: pd.DataFrame) -> tuple[str, np.ndarray]:
    """Ensemble labels of one experiment from its segments (all FOVs together).

    Segments are grouped by predicted state; when every segment has the same state, a clearly
    bimodal K splits them into a slow and a fast group. Weights are segment durations.

    Parameters
    ----------
    segments : pandas.DataFrame
        As :func:`andi2_segments` / :func:`read_andi2_labels` (``start``, ``stop``, ``k`` in
        px^2/frame, ``alpha``, ``state``).

    Returns
    -------
    model : str
        The guessed phenomenological model: ``immobile_traps`` when immobile segments exist,
        ``confinement`` when confined ones do, ``multi_state`` for two diffusive groups,
        else ``single_state``.
    matrix : numpy.ndarray
        (5, n_states): mean alpha, variance of alpha, mean K, variance of K (px^2/frame),
        weight (fractions summing to 1).
    """
    w = (segments["stop"] - segments["start"]).to_numpy(float).clip(min=1)
    k = segments["k"].to_numpy(float)
    alpha = segments["alpha"].to_numpy(float)
    state = segments["state"].to_numpy(int)
    groups = state.copy()
    if len(np.unique(state)) == 1:
        split = _two_groups(np.log10(np.clip(k, 1e-12, None)), w)
        if split is not None:
            groups = split
    model = (
        "immobile_traps"
        if (state == 0).any()
        else "confinement"
        if (state == 1).any()
        else "multi_state"
        if len(np.unique(groups)) > 1
        else "single_state"
    )
    cols = []
    for gid in np.unique(groups):
        m = groups == gid
        wa = w[m] / w[m].sum()
        mu_a, mu_k = (wa * alpha[m]).sum(), (wa * k[m]).sum()
        var_a = max((wa * (alpha[m] - mu_a) ** 2).sum(), _MIN_VAR)
        var_k = max((wa * (k[m] - mu_k) ** 2).sum(), _MIN_VAR * mu_k**2, 1e-12)
        cols.append([mu_a, var_a, mu_k, var_k, w[m].sum() / w.sum()])
    return model, np.asarray(cols).T


def write_andi2_ensemble(path: str | os.PathLike, model: str, matrix: np.ndarray) -> Path:
    """Write ``ensemble_labels.txt`` (header, then the 5 x n matrix), atomically.

    Parameters
    ----------
    path : str or path-like
        Target file; its folder must exist.
    model : str
        One of :data:`ANDI2_MODELS`.
    matrix : numpy.ndarray
        (5, n_states) as :func:`andi2_ensemble` returns (K in px^2/frame).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    matrix = np.asarray(matrix, dtype=float).reshape(5, -1)
    if model not in ANDI2_MODELS:
        raise ValueError(f"unknown AnDi-2 model {model!r}; use one of {list(ANDI2_MODELS)}")
    buf = io.StringIO()
    buf.write(f"model: {model}; num_state: {matrix.shape[1]} \n")
    np.savetxt(buf, matrix, delimiter=";")
    text = buf.getvalue()
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_andi2_ensemble(path: str | os.PathLike) -> tuple[str, np.ndarray]:
    """Read ``ensemble_labels.txt``: (model name, (5, n_states) matrix, K in px^2/frame)."""
    p = _existing(path)
    lines = p.read_text(encoding="utf-8").splitlines()
    m = re.match(r"\s*model:\s*(\w+);\s*num_state:\s*(\d+)", lines[0] if lines else "")
    if not m:
        raise TrackFileError(f"{p.name}: the first line must read 'model: <name>; num_state: <n>'")
    try:
        matrix = np.loadtxt(io.StringIO("\n".join(lines[1:])), delimiter=";", ndmin=2)
    except ValueError as e:
        raise TrackFileError(f"{p.name}: the ensemble matrix is not numeric ({e})") from None
    if matrix.shape != (5, int(m.group(2))):
        raise TrackFileError(
            f"{p.name}: expected a 5 x {m.group(2)} matrix, got "
            f"{matrix.shape[0]} x {matrix.shape[1]}"
        )
    return m.group(1), matrix


def andi2_submission_path(trajectory_file: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Where the prediction for a challenge trajectory file goes in a submission folder.

    ``.../exp_<e>/trajs_fov_<f>.csv`` -> ``<out_dir>/track_2/exp_<e>/fov_<f>.txt`` (experiment
    0 when the file's folder is not named ``exp_<e>``).

    Parameters
    ----------
    trajectory_file : str or path-like
        An AnDi-2 trajectory file named ``trajs_fov_<f>.csv`` (or ``traj_fov_<f>.csv``).
    out_dir : str or path-like
        The submission folder.

    Returns
    -------
    pathlib.Path
        The prediction file's path (its folder is not created).
    """
    src = Path(os.fspath(trajectory_file))
    m = _FOV.match(src.name)
    if not m:
        raise ValueError(
            f"{src.name}: an AnDi-2 trajectory file is named trajs_fov_<n>.csv "
            "(inside an exp_<e> folder)"
        )
    e = _EXP.match(src.parent.name)
    exp = int(e.group(1)) if e else 0
    return Path(os.fspath(out_dir)) / "track_2" / f"exp_{exp}" / f"fov_{int(m.group(1))}.txt"
