"""The Dask cluster of a run: an existing scheduler, or a local cluster started for the run.

A local cluster's worker processes fork from a server that imports distributed, numpy,
pandas, ``mlpack.dask_worker`` and the service's frameworks once. The client starts that
server as soon as it knows the service (``start_fork_server``), so those imports run on one
core while the client plans the partitions and starts the scheduler on the other; spawning
each worker from scratch would make every one of them import the same modules again
(seconds of CPU per worker on a small machine) after the cluster starts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .exceptions import BadInput, MlpackError

if TYPE_CHECKING:
    from distributed import Client

START_METHOD = "distributed.worker.multiprocessing-method"
# what a worker imports whatever the service: the task, and the libraries it reads and writes with;
# first the module that turns the collector off for the server's imports (mlpack.dask_forkserver)
WORKER_MODULES = ("mlpack.dask_forkserver", "distributed", "numpy", "pandas", "mlpack.dask_worker")
_LIBRARIES = {"mlpack.sklearn": "sklearn", "mlpack.xgboost": "xgboost"}


def preload_for(service: Any) -> tuple[str, ...]:
    """Modules a worker imports to run ``service``: ``WORKER_MODULES``, its models' adapters and libraries."""
    from .models import FRAMEWORKS

    found: list[str] = list(WORKER_MODULES)
    for model in service.models:
        module = model.info.module  # only known frameworks: model.yaml does not choose what gets imported
        if module in FRAMEWORKS:
            found += [FRAMEWORKS[module], _LIBRARIES[module]]
    return tuple(dict.fromkeys(found))


def forks(method: str | None) -> bool:
    """Whether local-cluster workers fork from our server: the start method dask is configured
    with (``DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD``...) is its default, spawn."""
    return (method or "spawn") == "spawn"


def start_fork_server(preload: tuple[str, ...]) -> None:
    """Start, in the background, the server a local cluster's workers will fork from.

    It does not wait for the imports: the first worker's start does. The server lives until
    this process exits (``multiprocessing`` keeps one per process), so later runs fork from it
    too. Only the environment is checked for another start method here: importing dask to
    read its configuration files would delay the start; ``local_cluster`` reads them, and does
    not use the server if they choose another method.
    """
    if not forks(os.environ.get("DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD")):
        return
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(list(preload))
    forkserver.ensure_running()


@dataclass(frozen=True)
class Cluster:
    """A connected client, the number of worker threads to keep busy, and whether the cluster is ours."""

    client: Client
    threads: int
    local: bool = False  # started for this run, stopped after it


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int | None) -> Iterator[Cluster]:
    """A client of ``scheduler``, or of a local cluster of ``workers`` processes started (and stopped) here."""
    from distributed import Client

    if scheduler is not None:
        if workers is not None:
            raise BadInput("--workers starts a local cluster; it cannot be combined with a scheduler")
        try:
            client = Client(scheduler)  # waits distributed.comm.timeouts.connect (DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT)
        except (OSError, TimeoutError) as exc:
            raise MlpackError(f"cannot reach the Dask scheduler at {scheduler}: {exc}; is it running?") from exc
        with client:
            yield Cluster(client, sum(client.nthreads().values()))
        return
    with local_cluster(workers or os.cpu_count() or 1) as cluster:
        yield cluster


@contextlib.contextmanager
def local_cluster(n: int) -> Iterator[Cluster]:
    """A ``LocalCluster`` of ``n`` single-threaded worker processes on 127.0.0.1, without a dashboard.

    Nothing shows a dashboard's data, so none is collected: its processes run without the
    sampling profiler (a few % of a core per worker), without the GIL contention monitor (a
    thread that polls the GIL every millisecond, when ``gilknocker`` is installed) and without
    HTTP routes (the metrics route imports prometheus_client in each worker as it starts: 0.03 s
    of its start-up). Its workers fork from the server of ``start_fork_server`` when it runs.
    """
    import logging

    import dask
    from distributed import Client, LocalCluster

    config: dict[str, Any] = {
        "distributed.worker.profile.enabled": False,
        "distributed.admin.system-monitor.gil.enabled": False,
        "distributed.worker.http.routes": [],
        "distributed.scheduler.http.routes": [],
    }
    if forks(dask.config.get(START_METHOD, None)):
        config[START_METHOD] = "forkserver"
        import distributed.utils

        # its first use would import numpy and pandas here, to choose the preloads of a
        # fork server that start_fork_server has started already
        distributed.utils._forkserver_preload_set = True
    with contextlib.ExitStack() as stack:
        stack.enter_context(dask.config.set(config))
        try:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            )
        except (RuntimeError, OSError, TimeoutError) as exc:  # distributed logs the workers' own errors
            raise MlpackError(f"cannot start a local Dask cluster of {n} workers: {exc}") from exc
        client = stack.enter_context(Client(cluster))
        yield Cluster(client, n, local=True)
