"""What every background job of the widgets shares (no Qt): the error value a job returns and a
driver that runs a job generator to the end without a GUI (the demo, tests and benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["JobError", "run_job"]


@dataclass
class JobError:
    """A job's failure, to be shown to the user as a notification."""

    message: str


def run_job(gen, progress=None):
    """Drive a job generator to the end (``progress(done)`` after each step); returns its value.

    Parameters
    ----------
    gen : generator
        A job: each ``yield`` is one step, its ``return`` value the result.
    progress : callable, optional
        Called with each yielded value.

    Returns
    -------
    object
        The job's return value (its result or a :class:`JobError`).
    """
    while True:
        try:
            done = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(done)
