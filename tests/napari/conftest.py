"""Fixtures for the napari tests: small rendered movies, the real viewer, worker helpers.

Without an OpenGL context (``QT_QPA_PLATFORM=offscreen``) napari's Image visual cannot query the
GL extensions or texture sizes; nothing is drawn in these tests, so vispy answers those queries
with safe defaults. Rendering tests (``-m render``, ``NAPARI_STEP_RENDER_TESTS=1``, run under
``xvfb-run``) use the real context.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

RENDER = os.environ.get("NAPARI_STEP_RENDER_TESTS") == "1"


def pytest_collection_modifyitems(config, items):
    if RENDER:
        return
    skip = pytest.mark.skip(reason="rendering test: set NAPARI_STEP_RENDER_TESTS=1 (xvfb-run)")
    for item in items:
        if "render" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _gl_queries_without_context(monkeypatch):
    """Let napari build Image visuals where no OpenGL context exists (offscreen; nothing is
    drawn): vispy's public ``gloo.gl.glGetParameter`` answers the GL queries napari makes
    (extensions, texture sizes) with safe defaults when it has no context to ask. napari
    offers no public switch for this; under Xvfb (the render tests) nothing is patched."""
    if os.environ.get("QT_QPA_PLATFORM", "") != "offscreen":
        return
    from vispy.gloo import gl

    real = gl.glGetParameter
    gl_max_3d_texture_size = 32883  # not among vispy's constants
    defaults = {gl.GL_EXTENSIONS: "", gl.GL_MAX_TEXTURE_SIZE: 4096, gl_max_3d_texture_size: 2048}

    def get_parameter(pname):
        try:
            value = real(pname)
        except AttributeError:  # no context: the driver answered nothing
            value = None
        return value if value else defaults.get(pname, value)

    monkeypatch.setattr(gl, "glGetParameter", get_parameter)


@pytest.fixture(scope="session")
def small_sample():
    """A rendered movie (60 frames, 128 x 128, 12 particles) and its ground truth."""
    from napari_step.sample import make_sample

    movie, truth = make_sample(n_particles=12, n_frames=60, shape=(128, 128), seed=3)
    movie.setflags(write=False)  # any attempt to modify the movie fails loudly
    return movie, truth


@pytest.fixture(scope="session")
def truth_tracks(small_sample):
    """napari Tracks data + features of the small sample's ground truth."""
    from napari_step.tracks import to_napari

    return to_napari(small_sample[1])


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def step(viewer):
    """The STEP analysis widget docked in the viewer (as the Plugins menu does), on the CPU."""
    from napari_step._napari.step_widget import StepAnalysisWidget

    widget = StepAnalysisWidget(viewer)
    viewer.window.add_dock_widget(widget, name="STEP analysis")
    widget.device.value = "CPU"
    return widget


@pytest.fixture
def wait_worker(qtbot):
    """Wait until a widget's worker is done (its ``running`` turns False)."""

    def _wait(widget, timeout=60_000):
        qtbot.waitUntil(lambda: not widget.running, timeout=timeout)
        qtbot.wait(10)  # let queued signals (returned -> finished) land

    return _wait


@pytest.fixture
def notes(monkeypatch):
    """Capture napari notifications: a list of (level, message)."""
    from napari.utils import notifications

    got = []
    for level in ("info", "warning", "error"):
        monkeypatch.setattr(
            notifications, f"show_{level}", lambda msg, _lvl=level: got.append((_lvl, str(msg)))
        )
    return got
