"""The npe2 manifest: valid, discoverable, every command importable, contributions usable."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MANIFEST = Path(__file__).parents[2] / "src" / "napari_step" / "napari.yaml"


def test_manifest_validates_with_imports():
    from npe2 import PluginManager, PluginManifest

    mf = PluginManifest.from_file(MANIFEST)  # schema validation
    mf.validate_imports()  # every python_name imports and exists
    ids = {c.id for c in mf.contributions.commands}
    assert ids == {
        "napari-step.get_reader",
        "napari-step.write_tracks",
        "napari-step.sample_data",
        "napari-step.detect_link_widget",
        "napari-step.step_widget",
        "napari-step.plot_widget",
    }
    pm = PluginManager.instance()
    pm.discover()
    assert pm.get_manifest("napari-step").name == "napari-step"  # found via the entry point


@pytest.mark.skipif(
    shutil.which("npe2") is None and not (Path(sys.executable).parent / "npe2").exists(),
    reason="npe2 command not installed",
)
def test_npe2_validate_command():
    exe = shutil.which("npe2") or str(Path(sys.executable).parent / "npe2")
    for target in ("napari-step", str(MANIFEST)):
        out = subprocess.run([exe, "validate", target], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "valid" in out.stdout.lower()


def test_widgets_and_sample_through_napari(viewer):
    """Widgets docked through the plugin menu path get the viewer; the sample has both layers."""
    from napari.layers import Image, Tracks

    from napari_step._napari.detect_widget import DetectLinkWidget
    from napari_step._napari.plot_widget import DPlotWidget
    from napari_step._napari.step_widget import StepAnalysisWidget

    for name, cls in (
        ("Detect & link", DetectLinkWidget),
        ("STEP analysis", StepAnalysisWidget),
        ("D(t) plot", DPlotWidget),
    ):
        _, widget = viewer.window.add_plugin_dock_widget("napari-step", name)
        assert isinstance(widget, cls)
        assert widget._viewer is viewer  # the real viewer, not napari's plugin proxy

    layers = viewer.open_sample("napari-step", "step_sample")
    movie, truth = layers
    assert isinstance(movie, Image) and isinstance(truth, Tracks)
    assert movie.data.shape == (200, 256, 256)
    np.testing.assert_allclose(movie.scale, [0.05, 0.1, 0.1])
    np.testing.assert_allclose(truth.scale, movie.scale)
    assert movie.metadata["pixel_size_um"] == 0.1
    assert movie.metadata["frame_interval_s"] == 0.05
    assert {"d_true", "d_true_um2_s"} <= set(truth.features.columns)
    assert set(np.unique(truth.features["d_true"])) == {0.05, 0.8}
    assert len(np.unique(truth.data[:, 0])) == 30
