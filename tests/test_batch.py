"""Batch analysis: single process vs a real Dask LocalCluster, failures, resumability."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_step.batch import analyze, expand_inputs
from napari_step.simulate import brownian_changepoints


def write_inputs(folder, n_files=4, n_tracks=6):
    paths = []
    for i in range(n_files):
        sim = brownian_changepoints(
            n_tracks, 60, 2, 1, d_range=(0.1, 10), rng=np.random.default_rng(i)
        )
        n, t, _ = sim.positions.shape
        table = pd.DataFrame(
            {
                "particle": np.repeat(np.arange(n), t),
                "frame": np.tile(np.arange(t), n),
                "y": sim.positions[..., 0].ravel(),
                "x": sim.positions[..., 1].ravel(),
            }
        )
        p = folder / f"tracks_{i}.csv"
        table.to_csv(p, index=False)
        paths.append(p)
    return paths


def read_result(path):
    return pd.read_csv(path)


def test_single_process_resumable_and_failure_isolated(tmp_path):
    (tmp_path / "in").mkdir()
    write_inputs(tmp_path / "in", n_files=3)
    bad = tmp_path / "in" / "broken.csv"
    bad.write_bytes(b"\x00\x01\x02 binary junk")
    out = tmp_path / "out"
    summary = analyze(
        [str(tmp_path / "in" / "*.csv")], out, pixel_size=0.1, frame_interval=0.02, scheduler="sync"
    )
    assert set(summary.status) == {"done", "failed"}
    failed = summary[summary.status == "failed"]
    assert failed.input.str.endswith("broken.csv").all() and len(failed) == 1
    assert "broken.csv" in failed.error.iloc[0]
    done = summary[summary.status == "done"]
    assert len(done) == 3 and (done.n_points > 0).all()
    res = read_result(done.output.iloc[0])
    assert {"track_id", "frame", "y", "x", "step_d", "tamsd_d"} <= set(res.columns)
    assert (out / "summary.csv").exists()
    # a re-run skips finished work and retries only the failure
    again = analyze([str(tmp_path / "in" / "*.csv")], out, scheduler="sync")
    assert sorted(again.status) == ["failed", "skipped", "skipped", "skipped"]
    # no temp files left behind
    assert not list(out.glob("*.tmp*"))


def test_missing_input_is_reported():
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        expand_inputs(["/nonexistent/nothing_here.csv"])


@pytest.mark.slow
def test_local_dask_cluster_matches_single_process(tmp_path):
    pytest.importorskip("distributed")
    (tmp_path / "in").mkdir()
    inputs = write_inputs(tmp_path / "in", n_files=4)
    corrupt = tmp_path / "in" / "corrupt.csv"
    corrupt.write_text("particle,frame,x\n1,oops,3\n")
    single = analyze(inputs + [corrupt], tmp_path / "single", scheduler="sync")
    dask = analyze(inputs + [corrupt], tmp_path / "dask", scheduler="processes", workers=2)
    assert (single.status == dask.status).all()
    assert (dask.status == "failed").sum() == 1
    for a, b in zip(single.output[single.status == "done"], dask.output[dask.status == "done"]):
        ra, rb = read_result(a), read_result(b)
        pd.testing.assert_frame_equal(ra, rb, rtol=1e-5)


@pytest.mark.slow
def test_killed_worker_does_not_lose_results(tmp_path):
    """SIGKILL one of two Dask workers mid-run: its files are redone elsewhere, nothing is lost."""
    import os
    import signal
    import threading
    import time

    distributed = pytest.importorskip("distributed")
    (tmp_path / "in").mkdir()
    inputs = write_inputs(tmp_path / "in", n_files=8, n_tracks=20)
    out = tmp_path / "out"
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    killed = []
    try:
        with distributed.Client(cluster.scheduler_address) as spy:
            pids = list(spy.run(os.getpid).values())

        def killer():  # once work is flowing (first output written), kill a busy worker
            t0 = time.time()
            while time.time() - t0 < 120:
                done = len(list(out.glob("*.results.csv")))
                if 1 <= done < len(inputs) - 2:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                    return
                time.sleep(0.02)

        th = threading.Thread(target=killer)
        th.start()
        summary = analyze(inputs, out, scheduler=cluster.scheduler_address)
        th.join()
    finally:
        cluster.close()
    assert killed, "no worker was busy to kill: the run finished too fast"
    assert (summary.status == "done").all(), summary.error.tolist()
    assert sorted(p.name for p in out.glob("*.results.csv")) == sorted(
        f"{p.stem}.results.csv" for p in inputs
    )
    for p in out.glob("*.results.csv"):
        assert len(read_result(p)) == 20 * 60


def test_movie_inputs_are_detected_linked_and_analysed(tmp_path):
    from napari_step.pipeline import DetectionParams, LinkingParams
    from napari_step.sample import make_sample

    movie, truth = make_sample(n_particles=6, n_frames=40, shape=(96, 96), seed=2)
    np.save(tmp_path / "movie.npy", movie)
    summary = analyze(
        [tmp_path / "movie.npy"],
        tmp_path / "out",
        pixel_size=0.1,
        frame_interval=0.05,
        detection=DetectionParams(diameter=7, minmass=400),
        linking=LinkingParams(search_range=6, memory=2, min_length=15),
    )
    assert summary.status.tolist() == ["done"] and summary.n_tracks.iloc[0] >= 5
    res = read_result(tmp_path / "out" / "movie.results.csv")
    assert res.step_d.notna().mean() > 0.8


def test_folders_matched_by_a_pattern_are_reported(tmp_path):
    """A folder whose name matches the input glob is listed as ignored, with the reason."""
    (tmp_path / "in").mkdir()
    write_inputs(tmp_path / "in", n_files=1)
    (tmp_path / "in" / "old.csv").mkdir()  # a folder named like a track file
    summary = analyze([str(tmp_path / "in" / "*.csv")], tmp_path / "out", scheduler="sync")
    by_name = {Path(p).name: row for p, (_, row) in zip(summary.input, summary.iterrows())}
    assert by_name["tracks_0.csv"].status == "done"
    assert by_name["old.csv"].status == "ignored"
    assert "a folder matched by" in by_name["old.csv"].error
    written = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert "ignored" in set(written.status)
    assert expand_inputs([str(tmp_path / "in" / "*.csv")]) == [tmp_path / "in" / "tracks_0.csv"]


def test_same_file_names_in_different_folders_get_their_own_outputs(tmp_path):
    """Two inputs called tracks_0.csv must not share (or skip into) one results file."""
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    write_inputs(tmp_path / "a", n_files=1)
    other = write_inputs(tmp_path / "b", n_files=2)[1]
    other.replace(tmp_path / "b" / "tracks_0.csv")
    summary = analyze(
        [str(tmp_path / "*" / "tracks_0.csv")],
        tmp_path / "out",
        scheduler="sync",
        pixel_size=0.1,
        frame_interval=0.02,
    )
    assert summary.status.tolist() == ["done", "done"]
    names = sorted(Path(p).name for p in summary.output)
    assert names == ["a_tracks_0.results.csv", "b_tracks_0.results.csv"]
    ra, rb = (read_result(tmp_path / "out" / n) for n in names)
    assert not np.allclose(ra.x, rb.x)  # each output holds its own input


def test_per_track_tables_are_written_beside_the_results(tmp_path):
    (tmp_path / "in").mkdir()
    write_inputs(tmp_path / "in", n_files=1, n_tracks=5)
    analyze(
        [tmp_path / "in"],
        tmp_path / "out",
        pixel_size=0.1,
        frame_interval=0.02,
        scheduler="sync",
        output_format="parquet",
    )
    per_track = pd.read_parquet(tmp_path / "out" / "tracks_0.tracks.parquet")
    assert per_track.track_id.tolist() == [0, 1, 2, 3, 4]
    assert (per_track.n_points == 60).all() and (per_track.median_d > 0).all()
    import json

    meta = json.loads((tmp_path / "out" / "tracks_0.tracks.parquet.json").read_text())
    assert meta["column_units"]["median_d"] == "um^2/s" and meta["source"].endswith("csv")
