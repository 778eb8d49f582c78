"""Many-file analysis, in this process or on Dask (a local cluster or an existing scheduler).

Each input file (a track table or a movie) becomes, in the output folder, a per-point results
table ``<name>.results.csv``, a per-track table ``<name>.tracks.csv`` (:mod:`napari_step.
track_summary`), optionally a segments table and an AnDi-2 prediction, plus a row in
``summary.csv``. Finished outputs are skipped on a re-run, a failing file is recorded and does
not stop the others, and every output is written atomically (:func:`napari_step.io.write_table`),
so a crash never leaves a half-written result that a re-run would mistake for a finished one.
"""

from __future__ import annotations

import glob
import os
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .io import read_tracks, write_table, write_tracks
from .pipeline import DetectionParams, LinkingParams

__all__ = [
    "BatchParams",
    "analyze",
    "expand_inputs",
    "analyze_file",
    "read_movie",
    "write_segments",
]

TRACK_SUFFIXES = {".csv", ".tsv", ".txt", ".xml", ".parquet"}
MOVIE_SUFFIXES = {".tif", ".tiff", ".npy", ".npz", ".mov", ".avi", ".mp4"}
_ROW = {
    "input": "",
    "output": "",
    "status": "",
    "n_tracks": np.nan,
    "n_points": np.nan,
    "seconds": 0.0,
    "error": "",
}


@dataclass
class BatchParams:
    """Everything a worker needs to analyse one file (plain data, cheap to ship to workers).

    Attributes
    ----------
    pixel_size : float
        um per pixel (D in um^2/s; 1 with ``frame_interval`` 1 keeps px^2/frame).
    frame_interval : float
        Seconds per frame.
    model, device, window, min_length
        As for :func:`napari_step.analysis.analyse_tracks`.
    output_format : str
        "csv" or "parquet" (results, per-track and segments tables).
    segments : bool
        Also find change points and write ``<name>.segments.csv``.
    detection, linking : dict
        :class:`DetectionParams` / :class:`LinkingParams` fields for movie inputs.
    alpha : bool
        Also predict the per-frame anomalous exponent (``step_alpha``).
    andi2_dir : str, optional
        AnDi-2 submission folder: ``track_2/exp_<e>/fov_<f>.txt`` per challenge trajectory
        file ``exp_<e>/trajs_fov_<f>.csv`` and ``ensemble_labels.txt`` per experiment
        (:func:`analyze` turns on ``segments``, ``alpha`` and ``states`` with it).
    immobile_d : float
        Immobile threshold of the per-track tables (D units), used when there are no states.
    states : bool
        Also predict the per-frame AnDi-2 diffusive state (``step_state``: 0 immobile,
        1 confined, 2 free, 3 directed); the per-track tables then give the time in each state.
    frame_step : int or "auto"
        Frames per step D is read at; "auto": the acquisition check of each input's tracks
        (:func:`napari_step.acquisition.check_frame_step`; its finding is in the sidecar).
    subtract_drift : bool
        Subtract each input's common drift (:func:`napari_step.drift.ensemble_drift` over all
        its tracks) from the positions D is read from; the written positions are the input's.
    """

    pixel_size: float = 1.0
    frame_interval: float = 1.0
    model: str = "auto"
    device: str | None = None
    window: int = 20
    min_length: int = 1
    output_format: str = "csv"
    segments: bool = False
    detection: dict = field(default_factory=lambda: asdict(DetectionParams()))
    linking: dict = field(default_factory=lambda: asdict(LinkingParams()))
    alpha: bool = False
    andi2_dir: str | None = None
    immobile_d: float = 0.01
    states: bool = False
    frame_step: int | str = "auto"
    subtract_drift: bool = False

    def __post_init__(self):
        if self.andi2_dir is not None:  # a submission needs segments, alpha and states
            self.andi2_dir = str(self.andi2_dir)
            self.segments = self.alpha = self.states = True


def _expand(paths) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(files, ignored): files and glob patterns -> sorted unique existing files, and the
    matches that are not files with the reason (reported in the batch summary)."""
    out, ignored = [], []
    for p in paths:
        p = str(p)
        if any(ch in p for ch in "*?["):
            hits = sorted(glob.glob(p, recursive=True))
            if not hits:
                raise FileNotFoundError(f"no file matches {p!r}")
            for h in map(Path, hits):
                if h.is_file():
                    out.append(h)
                else:
                    kind = "a folder" if h.is_dir() else "not a regular file"
                    ignored.append(
                        (
                            h,
                            f"{kind} matched by {p!r}, not analysed (give the "
                            "folder itself to analyse the files in it)",
                        )
                    )
        elif Path(p).is_dir():
            suffixes = TRACK_SUFFIXES | MOVIE_SUFFIXES
            out.extend(
                sorted(q for q in Path(p).iterdir() if q.suffix.lower() in suffixes and q.is_file())
            )
        elif Path(p).is_file():
            out.append(Path(p))
        else:
            raise FileNotFoundError(f"input not found: {p}")
    seen, unique = set(), []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, ignored


def expand_inputs(paths) -> list[Path]:
    """Files, folders and glob patterns -> sorted unique existing files.

    Parameters
    ----------
    paths : iterable of str or path-like
        Files, folders (their track and movie files) or glob patterns (``**`` recursive).

    Returns
    -------
    list of pathlib.Path
        The files, each once. A pattern matching nothing or a missing file raises
        FileNotFoundError naming it; folders matched by a pattern are left out (:func:`analyze`
        lists them in its summary as "ignored").
    """
    return _expand(paths)[0]


def read_movie(path: str | os.PathLike) -> np.ndarray:
    """Read a movie for detection.

    Parameters
    ----------
    path : str or path-like
        TIFF stack, NumPy ``.npy`` / ``.npz`` (array ``movie`` or the first array) or a video
        file (``.mov``, ``.avi``, ``.mp4``; needs PyAV, read as grey).

    Returns
    -------
    numpy.ndarray
        (T, Y, X) frames; ValueError for any other shape.
    """
    path = Path(path)
    s = path.suffix.lower()
    if s == ".npy":
        movie = np.load(path, allow_pickle=False)
    elif s == ".npz":
        with np.load(path, allow_pickle=False) as z:
            movie = z["movie"] if "movie" in z.files else z[z.files[0]]
    elif s in (".tif", ".tiff"):
        import tifffile

        movie = tifffile.imread(path)
    else:
        try:
            import av
        except ImportError:
            raise ValueError(f"{path.name}: reading video needs PyAV (pip install av)") from None
        with av.open(str(path)) as c:
            movie = np.stack([f.to_ndarray(format="gray") for f in c.decode(video=0)])
    movie = np.squeeze(movie)
    if movie.ndim != 3:
        raise ValueError(f"{path.name}: expected a (T, Y, X) movie, got shape {movie.shape}")
    return movie


def _output_paths(inputs: list[Path], out_dir: Path, fmt: str) -> list[Path]:
    """``<stem>.results.<fmt>`` per input; inputs sharing a stem (same file name in different
    folders) are prefixed with their folder names until the names differ."""
    ext = "parquet" if fmt == "parquet" else "csv"
    names = [p.stem for p in inputs]
    depth = 0
    while True:
        dup = {n for n, c in Counter(names).items() if c > 1}
        if not dup or depth > 32:
            break
        depth += 1
        names = [
            ("_".join(p.parent.parts[-depth:] + (p.stem,)) if n in dup else n)
            for p, n in zip(inputs, names)
        ]
    return [out_dir / f"{n}.results.{ext}" for n in names]


def _sibling(dst: Path, kind: str) -> Path:
    """``x.results.csv`` -> ``x.<kind>.csv`` (segments, tracks)."""
    return dst.with_name(dst.name.replace(".results.", f".{kind}.", 1))


def _analyse(src: Path, params: BatchParams):
    from .analysis import analyse_tracks
    from .pipeline import run_movie

    options = {"segments": params.segments, "frame_step": params.frame_step}
    if params.subtract_drift:
        options["drift"] = "ensemble"
    if params.alpha:
        options["alpha"] = True
    if params.states:
        options["states"] = True
    if src.suffix.lower() in MOVIE_SUFFIXES:
        results, summary, _ = run_movie(
            read_movie(src),
            params.pixel_size,
            params.frame_interval,
            DetectionParams(**params.detection),
            LinkingParams(**params.linking),
            params.model,
            params.device,
            params.window,
            **options,
        )
    else:
        results, summary = analyse_tracks(
            read_tracks(src),
            params.pixel_size,
            params.frame_interval,
            model=params.model,
            device=params.device,
            window=params.window,
            min_length=params.min_length,
            **options,
        )
    return results, summary


def _write_outputs(src: Path, dst: Path, results, summary, params: BatchParams) -> None:
    """Segments, per-track table, AnDi-2 prediction, then the results table (last: its
    presence marks the file as finished)."""
    from .io.andi2 import andi2_segments, andi2_submission_path, write_andi2_labels
    from .track_summary import track_summary

    meta = dict(results.attrs.get("napari_step", {}), source=str(src))
    if params.segments and summary.segments is not None:
        write_segments(summary.segments, _sibling(dst, "segments"), meta)
    per_track = track_summary(results, immobile_d=params.immobile_d)
    write_table(per_track, _sibling(dst, "tracks"), {"source": str(src)})
    if params.andi2_dir:
        target = andi2_submission_path(src, params.andi2_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_andi2_labels(andi2_segments(results, experiment=True), target)
    write_tracks(results, dst, meta)


def analyze_file(src, dst, params: BatchParams) -> dict:
    """Analyse one file and write its outputs atomically; never raises (errors are recorded).

    Parameters
    ----------
    src : str or path-like
        A track file or a movie.
    dst : str or path-like
        The results table; the per-track table (and segments) go beside it.
    params : BatchParams
        Analysis options.

    Returns
    -------
    dict
        The file's summary row: input, output, status ("done" or "failed"), n_tracks,
        n_points, seconds, error.
    """
    src, dst = Path(src), Path(dst)
    t0 = time.time()
    row = dict(_ROW, input=str(src), output=str(dst), status="done")
    try:
        if params.andi2_dir:
            from .io.andi2 import andi2_submission_path

            andi2_submission_path(src, params.andi2_dir)  # a misnamed file fails before work
        results, summary = _analyse(src, params)
        _write_outputs(src, dst, results, summary, params)
        row.update(n_tracks=int(summary.n_tracks), n_points=int(summary.n_points))
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
        row.update(status="failed", error=f"{type(e).__name__}: {e}")
        if not isinstance(e, (ValueError, FileNotFoundError)):
            row["error"] += " | " + traceback.format_exc(limit=2).replace("\n", " ")
    row["seconds"] = round(time.time() - t0, 3)
    return row


def write_segments(
    segments: pd.DataFrame, path: str | os.PathLike, metadata: dict | None = None
) -> Path:
    """Write a segments table (track_id, segment, start/stop frame, n_frames, d) atomically.

    Parameters
    ----------
    segments : pandas.DataFrame
        One row per segment, ``d`` in the units of the analysis (um^2/s when calibrated).
    path : str or path-like
        ``.csv`` or ``.parquet``.
    metadata : dict, optional
        Written to the JSON sidecar ``<path>.json``.

    Returns
    -------
    pathlib.Path
        The path written (by :func:`napari_step.io.write_table`).
    """
    return write_table(segments, path, metadata)


def _finished(dst: Path, src: Path, params: BatchParams) -> bool:
    if not dst.exists():
        return False
    if params.andi2_dir:
        from .io.andi2 import andi2_submission_path

        try:
            return andi2_submission_path(src, params.andi2_dir).exists()
        except ValueError:
            return True  # recorded as failed when it runs; nothing to redo here
    return True


def _run(todo, params, scheduler, workers, progress) -> list[dict]:
    """Run ``analyze_file`` on every (src, dst) here or on Dask; one summary row each."""
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="files", unit="file")
    if scheduler is None:
        n_workers = workers or os.cpu_count() or 1
        try:
            import distributed  # noqa: F401
        except ImportError:
            n_workers = 1
        scheduler = "processes" if len(todo) > 1 and n_workers > 1 else "sync"
    rows = []
    if scheduler == "sync" or not todo:
        for src, dst in todo:
            rows.append(analyze_file(src, dst, params))
            if bar is not None:
                bar.update(1)
    else:
        from ._dask_runner import run_on_dask

        jobs = [(src, dst, params) for src, dst in todo]
        for (src, dst, _), row, err in run_on_dask(
            analyze_file, jobs, scheduler, workers, bar.update if bar is not None else None
        ):
            rows.append(
                row
                if err is None
                else dict(
                    _ROW,
                    input=str(src),
                    output=str(dst),
                    status="failed",
                    seconds=np.nan,
                    error=f"{type(err).__name__}: {err}",
                )
            )
    if bar is not None:
        bar.close()
    return rows


def _plan(paths, out_dir: Path, params: BatchParams, overwrite: bool):
    """(summary rows of ignored and finished inputs, [(src, dst)] still to do)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs, ignored = _expand(paths)
    rows = [dict(_ROW, input=str(p), status="ignored", error=why) for p, why in ignored]
    todo = []
    for src, dst in zip(inputs, _output_paths(inputs, out_dir, params.output_format)):
        if not overwrite and _finished(dst, src, params):
            rows.append(dict(_ROW, input=str(src), output=str(dst), status="skipped"))
        else:
            todo.append((src, dst))
    return rows, todo


def analyze(
    paths,
    out_dir,
    pixel_size: float = 1.0,
    frame_interval: float = 1.0,
    model="auto",
    device: str | None = None,
    window: int = 20,
    min_length: int = 1,
    output_format: str = "csv",
    scheduler: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    detection: DetectionParams | None = None,
    linking: LinkingParams | None = None,
    segments: bool = False,
    alpha: bool = False,
    andi2_dir: str | os.PathLike | None = None,
    immobile_d: float = 0.01,
    states: bool = False,
    frame_step: int | str = "auto",
    subtract_drift: bool = False,
) -> pd.DataFrame:
    """Analyse many files; one row per input in the returned table and ``out_dir/summary.csv``.

    Parameters
    ----------
    paths : iterable of str or path-like
        Track files, movies, folders or glob patterns (see :func:`expand_inputs`).
    out_dir : str or path-like
        Output folder (created): per input ``<name>.results.csv`` (per point) and
        ``<name>.tracks.csv`` (per track), with ``segments``  ``<name>.segments.csv``
        (``.parquet`` for ``output_format="parquet"``); inputs sharing a file name get their
        folder names as prefix.
    pixel_size, frame_interval, model, device, window, min_length, output_format, segments,
    alpha, andi2_dir, immobile_d, states, frame_step, subtract_drift
        Analysis and output options: see :class:`BatchParams` (``andi2_dir`` turns on
        ``segments``, ``alpha`` and ``states``).
    scheduler : str, optional
        None: a local Dask cluster of ``workers`` processes (default: one per core) when there
        is more than one file to do and Dask is installed, else this process; "sync": always
        this process; "processes": always a local cluster; else a Dask scheduler address.
    workers : int, optional
        Worker processes of a local cluster.
    overwrite : bool
        Redo finished outputs (default: skip them).
    progress : bool
        Show a progress bar.
    detection, linking : DetectionParams, LinkingParams, optional
        Detection and linking of movie inputs.

    Returns
    -------
    pandas.DataFrame
        input, output, status ("done", "skipped", "failed" or "ignored" for folders matched by
        a pattern), n_tracks, n_points, seconds, error.
    """
    out_dir = Path(out_dir)
    params = BatchParams(
        pixel_size,
        frame_interval,
        str(model),
        device,
        window,
        min_length,
        output_format,
        segments,
        asdict(detection or DetectionParams()),
        asdict(linking or LinkingParams()),
        alpha,
        andi2_dir,
        immobile_d,
        states,
        frame_step,
        subtract_drift,
    )
    rows, todo = _plan(paths, out_dir, params, overwrite)
    rows += _run(todo, params, scheduler, workers, progress)
    if andi2_dir is not None:
        _write_andi2_ensembles(Path(andi2_dir))
    summary = pd.DataFrame(rows).sort_values("input", kind="stable").reset_index(drop=True)
    write_table(summary, out_dir / "summary.csv")
    return summary


def _write_andi2_ensembles(andi2_dir: Path) -> None:
    """``ensemble_labels.txt`` of every experiment folder, from all its FOV predictions."""
    from .io.andi2 import andi2_ensemble, read_andi2_labels, write_andi2_ensemble

    for exp in sorted((andi2_dir / "track_2").glob("exp_*")):
        fovs = sorted(exp.glob("fov_*.txt"))
        if fovs:
            segs = pd.concat([read_andi2_labels(f) for f in fovs], ignore_index=True)
            write_andi2_ensemble(exp / "ensemble_labels.txt", *andi2_ensemble(segs))
