"""Many-file analysis, in this process or on Dask (a local cluster or an existing scheduler).

Each input file (a track table or a movie) becomes one results table in the output folder plus a
row in ``summary.csv``. Finished outputs are skipped on a re-run, a failing file is recorded and
does not stop the others, and every output is written atomically (temp file + rename), so a crash
never leaves a half-written result that a re-run would mistake for a finished one.
"""

from __future__ import annotations

import glob
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .io import read_tracks, write_table, write_tracks
from .pipeline import DetectionParams, LinkingParams

__all__ = ["BatchParams", "analyze", "expand_inputs", "analyze_file", "read_movie"]

TRACK_SUFFIXES = {".csv", ".tsv", ".txt", ".xml", ".parquet"}
MOVIE_SUFFIXES = {".tif", ".tiff", ".npy", ".npz", ".mov", ".avi", ".mp4"}


@dataclass
class BatchParams:
    """Everything a worker needs to analyse one file (plain data, cheap to ship to workers)."""

    pixel_size: float = 1.0
    frame_interval: float = 1.0
    model: str = "default"
    device: str | None = None
    window: int = 20
    min_length: int = 1
    output_format: str = "csv"
    segments: bool = False
    detection: dict = field(default_factory=lambda: asdict(DetectionParams()))
    linking: dict = field(default_factory=lambda: asdict(LinkingParams()))


def expand_inputs(paths) -> list[Path]:
    """Files and glob patterns -> sorted unique existing files; a pattern matching nothing or
    a missing file raises FileNotFoundError naming it."""
    out = []
    for p in paths:
        p = str(p)
        if any(ch in p for ch in "*?["):
            hits = sorted(glob.glob(p, recursive=True))
            if not hits:
                raise FileNotFoundError(f"no file matches {p!r}")
            out.extend(Path(h) for h in hits if Path(h).is_file())
        elif Path(p).is_dir():
            out.extend(
                sorted(
                    q
                    for q in Path(p).iterdir()
                    if q.suffix.lower() in TRACK_SUFFIXES | MOVIE_SUFFIXES
                )
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
    return unique


def read_movie(path) -> np.ndarray:
    """A (T, Y, X) movie from TIFF, NumPy (.npy/.npz) or a video file (grey)."""
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


def _output_path(src: Path, out_dir: Path, fmt: str) -> Path:
    return out_dir / f"{src.stem}.results.{'parquet' if fmt == 'parquet' else 'csv'}"


def analyze_file(src, dst, params: BatchParams) -> dict:
    """Analyse one file and write its results atomically; never raises (errors are recorded)."""
    from .analysis import analyse_tracks
    from .pipeline import run_movie

    src, dst = Path(src), Path(dst)
    t0 = time.time()
    row = {
        "input": str(src),
        "output": str(dst),
        "status": "done",
        "n_tracks": 0,
        "n_points": 0,
        "seconds": 0.0,
        "error": "",
    }
    try:
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
                segments=params.segments,
            )
        meta = dict(results.attrs.get("napari_step", {}), source=str(src))
        if params.segments and summary.segments is not None:
            seg_path = dst.with_name(dst.name.replace(".results.", ".segments."))
            write_segments(summary.segments, seg_path, meta)
        write_tracks(results, dst, meta)  # last: its presence marks the file as finished
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


def _worker_setup():
    """One torch thread per Dask worker process: workers already use every core together."""
    import torch

    torch.set_num_threads(1)


def analyze(
    paths,
    out_dir,
    pixel_size=1.0,
    frame_interval=1.0,
    model="default",
    device=None,
    window=20,
    min_length=1,
    output_format="csv",
    scheduler=None,
    workers=None,
    overwrite=False,
    progress=False,
    detection=None,
    linking=None,
    segments=False,
) -> pd.DataFrame:
    """Analyse many files; returns (and writes to ``out_dir/summary.csv``) one row per input.

    ``scheduler``: None (default) starts a local Dask cluster of ``workers`` processes (default:
    one per core) when there is more than one file to do and Dask is installed, else runs here;
    "sync" always runs in this process; "processes" always starts a local cluster; any other
    string is the address of a running Dask scheduler ("tcp://host:8786"). The model is loaded
    once per worker process. ``detection`` / ``linking`` (:class:`DetectionParams`,
    :class:`LinkingParams`) apply to movie inputs.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
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
    )
    inputs = expand_inputs(paths)
    rows, todo = [], []
    for src in inputs:
        dst = _output_path(src, out_dir, output_format)
        if dst.exists() and not overwrite:
            rows.append(
                {
                    "input": str(src),
                    "output": str(dst),
                    "status": "skipped",
                    "n_tracks": np.nan,
                    "n_points": np.nan,
                    "seconds": 0.0,
                    "error": "",
                }
            )
        else:
            todo.append((src, dst))
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
    if scheduler == "sync" or not todo:
        for src, dst in todo:
            rows.append(analyze_file(src, dst, params))
            if bar is not None:
                bar.update(1)
    else:
        rows.extend(_run_dask(todo, params, scheduler, workers, bar))
    if bar is not None:
        bar.close()
    summary = pd.DataFrame(rows).sort_values("input", kind="stable").reset_index(drop=True)
    write_table(summary, out_dir / "summary.csv")
    return summary


def _run_dask(todo, params, scheduler, workers, bar):
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ValueError(
            "parallel batch runs need Dask: pip install 'napari-step[batch]'"
        ) from None
    cluster = None
    if scheduler in ("processes", "local", "threads"):
        n = workers or os.cpu_count() or 1
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=scheduler != "threads",
            dashboard_address=None,
        )
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        client.register_plugin(_TorchThreads())
        futures = {
            client.submit(analyze_file, src, dst, params, pure=False, retries=2): (src, dst)
            for src, dst in todo
        }
        rows = []
        for fut in as_completed(futures):
            src, dst = futures[fut]
            try:
                rows.append(fut.result())
            except Exception as e:  # noqa: BLE001 - e.g. a worker died on every retry
                rows.append(
                    {
                        "input": str(src),
                        "output": str(dst),
                        "status": "failed",
                        "n_tracks": np.nan,
                        "n_points": np.nan,
                        "seconds": np.nan,
                        "error": f"{type(e).__name__}: {e}",
                    }
                )
            if bar is not None:
                bar.update(1)
        return rows
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


try:  # a worker plugin so each Dask worker process uses one torch thread
    from distributed.diagnostics.plugin import WorkerPlugin

    class _TorchThreads(WorkerPlugin):
        name = "napari-step-torch-threads"

        def setup(self, worker):
            _worker_setup()

except ImportError:  # pragma: no cover - dask is optional
    _TorchThreads = None
