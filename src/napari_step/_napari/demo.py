"""``open_demo(viewer)``: the whole workflow on the sample movie, through the widgets' own code.

Loads the sample (movie + hidden ground truth), docks the Detect & link, STEP analysis and D(t)
plot widgets, and chains detect -> link -> STEP on all tracks through the widgets' ``detect``
and ``run`` methods (the same code the buttons call), in worker threads: the function returns at
once and the viewer fills in as the jobs finish. ``napari-step demo`` calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["open_demo", "DemoHandles"]


@dataclass
class DemoHandles:
    """What :func:`open_demo` set up; ``tracks_layer`` is set once linking is done and
    ``done`` once the analysis results are in the layer."""

    viewer: object
    movie_layer: object
    truth_layer: object
    detect_widget: object
    step_widget: object
    plot_widget: object
    tracks_layer: object = None
    done: bool = False
    errors: list = field(default_factory=list)


def open_demo(
    viewer=None,
    *,
    n_particles: int = 30,
    n_frames: int = 200,
    shape=(256, 256),
    seed: int = 0,
    min_length: int = 20,
) -> DemoHandles:
    """Load the sample into ``viewer`` (a new one if None) and run the whole analysis in it."""
    import napari

    from ._sample_data import sample_data
    from .detect_widget import DetectLinkWidget
    from .step_widget import StepAnalysisWidget

    if viewer is None:
        viewer = napari.Viewer(title="napari-step demo")
    layers = []
    for data, kwargs, kind in sample_data(
        n_particles=n_particles, n_frames=n_frames, shape=shape, seed=seed
    ):
        layers.append(getattr(viewer, f"add_{kind}")(data, **kwargs))
    movie, truth = layers
    truth.visible = False

    detect = DetectLinkWidget(viewer)
    step = StepAnalysisWidget(viewer)
    viewer.window.add_dock_widget(detect, name="Detect & link", area="right")
    viewer.window.add_dock_widget(step, name="STEP analysis", area="right")
    plot = step.open_plot_dock()
    handles = DemoHandles(viewer, movie, truth, detect, step, plot)

    detect.image.value = movie
    detect.min_length.value = min_length
    step.mode.value = "all"
    step.min_length.value = min_length

    def on_tracks(layer):
        handles.tracks_layer = layer
        step.reset_choices()
        step.tracks.value = layer  # pre-fills pixel size and frame interval from the movie
        if step.run(layer=layer) is None:
            handles.errors.append("the STEP analysis did not start")

    def on_done(layer):
        if layer is handles.tracks_layer:
            handles.done = True
            viewer.layers.selection.active = layer

    detect.tracks_added.connect(on_tracks)
    step.analysis_done.connect(on_done)
    if detect.detect() is None:
        handles.errors.append("detection did not start")
    return handles
