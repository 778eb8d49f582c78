"""Running independent jobs on Dask: a local cluster or an existing scheduler (batch runs)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

__all__ = ["run_on_dask"]


def _one_torch_thread() -> None:
    """One torch thread per Dask worker process: workers already use every core together."""
    import torch

    torch.set_num_threads(1)


try:  # a worker plugin so each Dask worker process uses one torch thread
    from distributed.diagnostics.plugin import WorkerPlugin

    class _TorchThreads(WorkerPlugin):
        name = "napari-step-torch-threads"

        def setup(self, worker):
            _one_torch_thread()

except ImportError:  # pragma: no cover - dask is optional
    _TorchThreads = None


def run_on_dask(
    fn: Callable,
    jobs: Sequence[tuple],
    scheduler: str,
    workers: int | None = None,
    on_done: Callable[[], None] | None = None,
) -> list[tuple[tuple, object, BaseException | None]]:
    """Run ``fn(*job)`` for every job on Dask, each retried twice if its worker dies.

    Parameters
    ----------
    fn : callable
        Picklable function (module level).
    jobs : sequence of tuple
        Arguments of each call.
    scheduler : str
        "processes" or "local" (a local cluster of processes), "threads" (a local cluster of
        threads), or the address of a running scheduler ("tcp://host:8786").
    workers : int, optional
        Workers of a local cluster (default: one per core).
    on_done : callable, optional
        Called once per finished job (progress bars).

    Returns
    -------
    list of (job, result, error)
        In completion order; ``error`` is the exception when a job failed on every retry.
    """
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ValueError(
            "parallel batch runs need Dask: pip install 'napari-step[batch]'"
        ) from None
    cluster = None
    if scheduler in ("processes", "local", "threads"):
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=scheduler != "threads",
            dashboard_address=None,
        )
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        client.register_plugin(_TorchThreads())
        futures = {client.submit(fn, *job, pure=False, retries=2): job for job in jobs}
        done = []
        for fut in as_completed(futures):
            try:
                done.append((futures[fut], fut.result(), None))
            except Exception as e:  # noqa: BLE001 - e.g. a worker died on every retry
                done.append((futures[fut], None, e))
            if on_done is not None:
                on_done()
        return done
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
