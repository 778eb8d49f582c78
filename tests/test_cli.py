"""The `napari-step` command, run for real (in-process through its main function)."""

import numpy as np
import pandas as pd

from napari_step.cli import main


def test_demo_headless_writes_table_and_picture(tmp_path, capsys):
    assert main(["demo", "--headless", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "sample_results.csv")
    assert {"track_id", "frame", "y", "x", "step_d", "tamsd_d", "step_log10_d"} <= set(
        table.columns
    )
    assert table.track_id.nunique() >= 25 and table.step_d.notna().mean() > 0.8
    # D of the sample lies between its slow and fast truth (0.01 and 0.16 um^2/s)
    d = table.step_d.dropna()
    assert 0.005 < d.quantile(0.1) and d.quantile(0.9) < 0.4
    png = tmp_path / "sample_tracks.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20000
    assert "wrote" in capsys.readouterr().out


def test_analyze_cli_reports_failures_with_exit_code(tmp_path, capsys):
    rng = np.random.default_rng(0)
    pos = rng.standard_normal((3, 50, 2)).cumsum(1)
    pd.DataFrame(
        {
            "particle": np.repeat(np.arange(3), 50),
            "frame": np.tile(np.arange(50), 3),
            "y": pos[..., 0].ravel(),
            "x": pos[..., 1].ravel(),
        }
    ).to_csv(tmp_path / "a.csv", index=False)
    (tmp_path / "b.csv").write_text("nothing useful\n")
    rc = main(
        [
            "analyze",
            str(tmp_path / "*.csv"),
            "--out",
            str(tmp_path / "out"),
            "--pixel-size",
            "0.1",
            "--frame-interval",
            "0.05",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 1 and "1 done" in captured.out and "b.csv" in captured.err
    assert (tmp_path / "out" / "a.results.csv").exists()
    # one row per analysed track, D in um^2/s (true D 0.5 px^2/frame = 0.1 um^2/s)
    per_track = pd.read_csv(tmp_path / "out" / "a.tracks.csv")
    assert per_track.track_id.tolist() == [0, 1, 2] and (per_track.n_points == 50).all()
    assert 0.05 < per_track.median_d.median() < 0.2
    assert main(["analyze", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o2")]) == 2
    # with segments: a segments table per input, in physical units
    assert (
        main(
            [
                "analyze",
                str(tmp_path / "a.csv"),
                "--out",
                str(tmp_path / "o3"),
                "--segments",
                "--states",
                "--pixel-size",
                "0.1",
                "--frame-interval",
                "0.05",
            ]
        )
        == 0
    )
    seg = pd.read_csv(tmp_path / "o3" / "a.segments.csv")
    assert list(seg.columns) == [
        "track_id",
        "segment",
        "start_frame",
        "stop_frame",
        "n_frames",
        "d",
        "duration",  # s (calibrated)
        "state",
        "confinement_radius",
    ]
    assert set(seg.track_id) == {0, 1, 2} and np.allclose(
        seg.d.median(), 0.5 * 0.01 / 0.05, rtol=0.5
    )
    res = pd.read_csv(tmp_path / "o3" / "a.results.csv")
    # with states: per-frame AnDi-2 state, and the per-track time in each state (free tracks)
    assert set(res.step_state.dropna().unique()) <= {0, 1, 2, 3}
    per_track = pd.read_csv(tmp_path / "o3" / "a.tracks.csv")
    times = per_track[["time_immobile", "time_confined", "time_free", "time_directed"]]
    assert np.allclose(times.sum(axis=1), per_track.n_analysed * 0.05)
    assert (per_track.time_free > per_track.time_immobile).all()
    assert "segment_d" in res and "changepoint" in res


def test_reproduce_sbm_slopes(tmp_path):
    """The seed tutorial's analysis on fewer tracks: slopes of mean D(t) follow alpha - 1."""
    assert main(["reproduce", "sbm", "--out", str(tmp_path), "--n-tracks", "400"]) == 0
    slopes = pd.read_csv(tmp_path / "sbm_slopes.csv")
    assert slopes.alpha.tolist() == [0.1, 0.5]
    assert (np.abs(slopes.tamsd_slope - slopes.expected_slope) < 0.15).all()
    # 400 tracks per alpha (3000 in the full analysis) leave about +-0.03 of sampling noise; the
    # model trained on piecewise-constant D only gave -1.07 here for alpha = 0.1
    assert (np.abs(slopes.step_slope - slopes.expected_slope) < 0.14).all()
    assert (tmp_path / "sbm_mean_d.png").stat().st_size > 10000
