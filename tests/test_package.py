"""Packaging contracts: a Qt-free, napari-free core and a discoverable plugin manifest."""

import subprocess
import sys


def test_core_imports_without_qt_or_napari():
    code = (
        "import sys, napari_step, napari_step.simulate, napari_step.tamsd, napari_step.model, "
        "napari_step.predict, napari_step.train, napari_step.tracks, napari_step.io, "
        "napari_step.analysis, napari_step.batch, napari_step.cli, napari_step.segment; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'qtpy', 'magicgui')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_plain_import_does_not_load_torch():
    code = "import sys, napari_step; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_public_api_names():
    import napari_step

    for name in (
        "predict_d",
        "predict_alpha",
        "predict_state",
        "tamsd_d",
        "tamsd_alpha",
        "analyse_tracks",
        "read_tracks",
        "write_tracks",
    ):
        assert callable(getattr(napari_step, name))
