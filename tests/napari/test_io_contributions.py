"""Reader and writer through the manifest, and the results export the STEP widget calls."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from napari.layers import Tracks

from napari_step._napari._colour import COLOUR_FEATURE
from napari_step._napari.step_widget import AUTO_MODEL
from napari_step.analysis import RESULT_COLUMNS

DATA = Path(__file__).parents[1] / "data"
PX, DT = 0.1, 0.05


@pytest.fixture
def analysed(viewer, truth_tracks, wait_worker):
    """A Tracks layer (scaled like the sample) with STEP results on some of its tracks."""
    from napari_step._napari.step_widget import StepAnalysisWidget

    data, feats = truth_tracks
    layer = viewer.add_tracks(
        data,
        features=feats.copy(),
        name="truth",
        scale=(DT, PX, PX),
        metadata={"pixel_size_um": PX, "frame_interval_s": DT},
    )
    step = StepAnalysisWidget(viewer)
    step.tracks.value = layer
    step.mode.value = "ids"
    step.track_ids.value = "0-5"
    step.run()
    wait_worker(step)
    return step, layer


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_writer_reader_round_trip_through_the_manifest(suffix, viewer, analysed, tmp_path):
    _, layer = analysed
    path = tmp_path / f"results{suffix}"
    viewer.layers.selection = {layer}
    written = viewer.layers.save(str(path), selected=True, plugin="napari-step")
    assert [Path(p) for p in written] == [path] and path.exists()
    assert Path(str(path) + ".json").exists()

    new = viewer.open(str(path), plugin="napari-step")
    assert len(new) == 1 and isinstance(new[0], Tracks)
    back = new[0]
    np.testing.assert_allclose(back.data, layer.data)
    np.testing.assert_allclose(back.scale, layer.scale)  # lies where it was
    for c in RESULT_COLUMNS + ["d_true"]:
        np.testing.assert_allclose(
            back.features[c].to_numpy(float), layer.features[c].to_numpy(float), equal_nan=True
        )
    assert back.metadata["napari_step"]["units"] == "um^2/s"
    # the widget's "auto" model, and what it chose for these exact simulated positions
    assert back.metadata["napari_step"]["model"] == f"{AUTO_MODEL}: default"
    assert back.metadata["pixel_size_um"] == PX
    # coloured like the original, unanalysed tracks grey and visible
    assert back.color_by == COLOUR_FEATURE
    np.testing.assert_allclose(back._track_colors, layer._track_colors)
    assert np.all(np.asarray(back._track_colors)[:, 3] == 1)


def test_export_results_table(analysed, tmp_path, notes):
    from napari_step.io import read_tracks

    step, layer = analysed
    path = tmp_path / "export.csv"
    written = step.export(path)
    assert written == [str(path)]
    table = read_tracks(path)
    assert list(table.columns[:4]) == ["track_id", "frame", "y", "x"]
    assert set(RESULT_COLUMNS) <= set(table.columns)
    assert COLOUR_FEATURE not in table.columns  # a display detail, not a result
    assert len(table) == len(layer.data)
    ref = layer.features["step_d"].to_numpy(float)
    np.testing.assert_allclose(table["step_d"].to_numpy(float), ref, equal_nan=True)
    meta = json.loads(Path(str(path) + ".json").read_text())
    assert meta["units"] == "um^2/s"
    assert meta["model"] == f"{AUTO_MODEL}: default"
    assert meta["pixel_size_um"] == PX and meta["frame_interval_s"] == DT
    assert meta["column_units"]["step_d"] == "um^2/s"
    assert meta["column_units"]["x"] == "px"
    assert table.attrs["napari_step"]["units"] == "um^2/s"
    assert any(lvl == "info" and "export.csv" in m for lvl, m in notes)
    # a bad file name is a notification, not an exception
    assert step.export(tmp_path / "export.txt") is None
    assert notes[-1][0] == "error"


def test_reader_opens_trackpy_and_trackmate_files(viewer):
    from napari_step._napari._io import get_reader

    csv = DATA / "trackpy_linked.csv"  # committed fixtures: a missing one is a failure
    layers = viewer.open(str(csv), plugin="napari-step")
    assert len(layers) == 1 and isinstance(layers[0], Tracks)
    assert {"mass", "ecc", "signal"} <= set(layers[0].features.columns)
    assert COLOUR_FEATURE not in layers[0].features.columns  # no results, no D colouring
    for name in ("trackmate_session.xml", "trackmate_spots.csv", "trackmate_tracks.xml"):
        path = DATA / name
        assert get_reader(str(path)) is not None, name
        out = viewer.open(str(path), plugin="napari-step")
        assert isinstance(out[0], Tracks) and len(out[0].data) > 0, name


def test_reader_declines_other_files_and_reports_broken_ones(viewer, tmp_path, notes):
    from napari_step._napari._io import get_reader, read_tracks_file

    other = tmp_path / "spectrum.csv"
    other.write_text("wavelength,intensity\n500,1\n510,2\n")
    assert get_reader(str(other)) is None  # left to other readers
    assert get_reader(str(tmp_path / "movie.tif")) is None
    broken = tmp_path / "broken.csv"
    broken.write_text("track_id,frame,x,y\n0,0,1.0,abc\n")
    reader = get_reader(str(broken))
    assert reader is not None
    assert reader(str(broken)) == [(None,)]  # napari's "nothing to add"
    assert notes and notes[-1][0] == "error" and "broken.csv" in notes[-1][1]
    assert read_tracks_file(str(tmp_path / "gone.parquet")) == [(None,)]


@pytest.fixture
def fresh_settings(monkeypatch):
    """napari settings that are never written to the user's settings file."""
    import napari.plugins.utils as plugin_utils
    import napari.settings
    from napari.settings import NapariSettings

    settings = NapariSettings(config_path=None)
    monkeypatch.setattr(napari.settings, "get_settings", lambda *a, **k: settings)
    monkeypatch.setattr(plugin_utils, "get_settings", lambda *a, **k: settings)
    return settings


@pytest.fixture
def results_files(tmp_path):
    """A napari-step results table as CSV and Parquet (written by the core writer)."""
    from napari_step.io import write_tracks

    table = pd.DataFrame(
        {
            "track_id": np.repeat([0, 1], 5),
            "frame": np.tile(np.arange(5), 2),
            "y": np.arange(10.0),
            "x": np.arange(10.0) * 2,
            "step_d": 0.3,
        }
    )
    return write_tracks(table, tmp_path / "a.results.csv"), write_tracks(
        table, tmp_path / "a.results.parquet"
    )


def test_xml_and_parquet_open_without_a_reader_choice(viewer, results_files, fresh_settings):
    """What a drop or File > Open does first: open with no plugin named. Only napari-step reads
    TrackMate XML and Parquet, so napari opens them at once (no dialog)."""
    for path in (DATA / "trackmate_session.xml", results_files[1]):
        layers = viewer.open(str(path), plugin=None)
        assert len(layers) == 1 and isinstance(layers[0], Tracks), path.name
        assert len(layers[0].data) > 0


def test_csv_opens_without_a_dialog_once_napari_step_is_the_preferred_reader(
    viewer, results_files, fresh_settings, tmp_path
):
    from napari.errors import MultipleReaderError

    from napari_step._napari._io import set_default_reader

    csv = str(results_files[0])
    # napari's built-in reader also claims every CSV: napari must ask (the dialog on a drop)
    with pytest.raises(MultipleReaderError, match="napari-step"):
        viewer.open(csv, plugin=None)
    assert set_default_reader() == {"*.csv": "napari-step"}
    layers = viewer.open(csv, plugin=None)  # drop / File > Open: no dialog now
    assert len(layers) == 1 and isinstance(layers[0], Tracks)
    np.testing.assert_allclose(layers[0].features["step_d"], 0.3)
    # AnDi-2 trajectory files are track files too
    andi = DATA / "andi2" / "challenge" / "ref" / "track_2" / "exp_1" / "trajs_fov_0.csv"
    assert isinstance(viewer.open(str(andi), plugin=None)[0], Tracks)
    with pytest.raises(ValueError, match="patterns"):
        set_default_reader(["csv"])


def test_reader_declines_napari_step_tables_that_are_not_tracks(results_files, tmp_path):
    from napari_step._napari._io import get_reader
    from napari_step.batch import write_segments

    per_track = tmp_path / "a.tracks.csv"
    pd.DataFrame({"track_id": [0], "n_points": [5], "first_frame": [0]}).to_csv(per_track)
    segments = write_segments(
        pd.DataFrame(
            {
                "track_id": [0],
                "segment": [0],
                "start_frame": [0],
                "stop_frame": [5],
                "n_frames": [5],
                "d": [0.3],
            }
        ),
        tmp_path / "a.segments.csv",
    )
    assert get_reader(str(per_track)) is None and get_reader(str(segments)) is None
    assert get_reader(str(results_files[0])) is not None
