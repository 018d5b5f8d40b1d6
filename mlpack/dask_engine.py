"""``mlpack run --engine dask``: the partitions of the input on Dask workers, results in order.

- The cluster is an existing scheduler (``--scheduler tcp://HOST:PORT`` or
  ``MLPACK_DASK_SCHEDULER``), else a ``LocalCluster`` of single-threaded worker processes on
  127.0.0.1 without a dashboard (``mlpack.dask_cluster``).
- The service travels as a ``Shipment`` (``mlpack.shipping``) inside a worker plugin
  (``mlpack.dask_worker``): every
  worker, also one that joins later, gets it; each worker process unpacks it and imports the
  service once, on its first partition, and keeps it for the next ones.
- A partition is read on its worker (``mlpack.partitions``) and goes through
  ``mlpack.offline.run_chunks``, the same path as a local run; its encoded results
  (``mlpack.parts``) come back to the client, which writes them in input order. A bounded
  window of partitions is in flight, so the client holds only a few results at a time.
- An error in a partition comes back as a value naming rows and lines from the partition's
  start; the client places it in the file (all partitions before it have finished by then)
  and stops the run: the output file or folder is not written.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import exceptions
from .dask_cluster import Cluster, connect, preload_for, start_fork_server
from .exceptions import BadInput, MlpackError
from .offline import DEFAULT_BATCH_SIZE, Progress, RunStats, _atomic, _output_format, get_api
from .partitions import Partition, place, plan
from .parts import PART_EXTENSIONS, OrderedOutput, Part, atomic_folder
from .shipping import pack

SCHEDULER_ENV = "MLPACK_DASK_SCHEDULER"


@dataclass(frozen=True)
class DaskOptions:
    scheduler: str | None = None  # tcp://HOST:PORT; None: $MLPACK_DASK_SCHEDULER, else a LocalCluster
    workers: int | None = None  # LocalCluster size [default: one per CPU]
    partition_bytes: int | None = None  # target partition size [default: shrinking shares of the input]

    def resolved_scheduler(self) -> str | None:
        return self.scheduler or os.environ.get(SCHEDULER_ENV) or None


# ---------------------------------------------------------------- on the client


def run_dask(
    loaded: Any,
    spec: str,
    api_name: str,
    input_spec: str,
    output: str | Path | IO[str] | None,
    *,
    output_dir: str | Path | None = None,
    fmt: str | None = None,
    out_fmt: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    options: DaskOptions = DaskOptions(),
    progress: Progress | None = None,
) -> RunStats:
    """Run API ``api_name`` of ``loaded`` (a ``LoadedService`` named by ``spec``) over ``input_spec`` on Dask."""
    api = get_api(loaded.service, api_name)
    started = time.perf_counter()
    scheduler = options.resolved_scheduler()
    if scheduler is not None and options.workers is not None:
        raise BadInput("--workers starts a local cluster; it cannot be combined with a scheduler")
    local = scheduler is None
    if local:  # the input checked before any process starts; partitions for the workers to come
        parts = plan(input_spec, fmt, api.input, options.partition_bytes, options.workers or os.cpu_count() or 1)
        out = _out_format(output, output_dir, out_fmt, parts[0].fmt)
        start_fork_server(preload_for(loaded.service))  # its imports overlap what the client does until then
        # packed while the fork server imports (the client would only wait for it)
        shipment = pack(loaded, spec, skip=tuple(p.url for p in parts if not _remote(p.url)))
    from .dask_worker import ShipmentPlugin

    with connect(scheduler, options.workers) as cluster:
        if not local:  # partitions for the workers the cluster has
            parts = plan(input_spec, fmt, api.input, options.partition_bytes, max(cluster.threads, 1))
            out = _out_format(output, output_dir, out_fmt, parts[0].fmt)
            shipment = pack(loaded, spec, skip=tuple(p.url for p in parts if not _remote(p.url)))
        client = cluster.client
        with _destination(output, output_dir, out) as sink:
            client.register_plugin(ShipmentPlugin(shipment), name=shipment.key)
            try:
                rows = _collect(cluster, shipment.key, api_name, parts, out, batch_size, sink, progress)
                sink.close()
            finally:
                if not cluster.local:  # a local cluster's workers remove its files as they stop
                    with contextlib.suppress(Exception):  # removes the shipment's files from the workers
                        client.unregister_worker_plugin(shipment.key)
    return RunStats(rows, len(parts), time.perf_counter() - started)


def _remote(url: str) -> bool:
    return "://" in url


def _out_format(output: Any, output_dir: Any, out_fmt: str | None, input_fmt: str) -> str:
    if output_dir is not None:
        if output is not None:
            raise BadInput("give either --output-file or --output-dir, not both")
        if out_fmt is None:  # parts like the input: csv for csv, parquet for parquet, else jsonl
            out_fmt = input_fmt if input_fmt in ("csv", "parquet") else "jsonl"
        chosen = _output_format(Path(f"part{PART_EXTENSIONS.get(out_fmt, '')}"), out_fmt)
    else:
        chosen = _output_format(output, out_fmt)
    if chosen not in PART_EXTENSIONS:
        raise BadInput(f"--engine dask writes csv, json, jsonl or parquet, not {chosen}")
    if chosen == "parquet":
        from .offline import _parquet_modules

        _parquet_modules()
    return chosen


@contextlib.contextmanager
def _destination(output: Any, output_dir: Any, fmt: str) -> Iterator[OrderedOutput]:
    """Where the ordered parts go; nothing is left at the destination unless the run succeeds."""
    if output_dir is not None:
        with atomic_folder(Path(output_dir)) as folder:
            yield OrderedOutput(fmt, folder=folder)
        return
    if fmt == "parquet" and hasattr(output, "write"):
        raise BadInput("parquet output needs an output file")
    with _atomic(output, binary=fmt == "parquet") as stream:
        yield OrderedOutput(fmt, stream)


def _collect(
    cluster: Cluster,
    key: str,
    api_name: str,
    parts: list[Partition],
    fmt: str,
    batch_size: int,
    sink: OrderedOutput,
    progress: Progress | None,
) -> int:
    """Run the partitions, two per worker thread at a time, and hand their results to ``sink`` in order.

    Each worker thread has its next partition waiting when it finishes one: submitting only
    when one finished left it idle for the round trip (the result to the client, the next
    task through the scheduler: tens of ms per partition on a busy machine). A partition
    queued behind a busy worker can leave another one idle at the end, for at most one of
    the last, smallest partitions (``plan``'s sizes shrink). Results that wait for an
    earlier partition are held here, a bounded number.
    """
    from distributed import as_completed

    from .dask_worker import run_partition

    client = cluster.client
    running = 2 * max(1, cluster.threads)
    most_held = running + 4
    todo = iter(parts)
    futures = as_completed()
    flying: dict[str, tuple[Partition, Any]] = {}  # key -> partition, future
    ready: dict[int, tuple[Partition, dict[str, Any]]] = {}
    written = Written()

    def submit() -> None:
        while len(flying) < running and len(flying) + len(ready) < most_held:
            part = next(todo, None)
            if part is None:
                return
            future = client.submit(
                run_partition, key, api_name, part, fmt, batch_size, pure=False, priority=-part.index, retries=1
            )
            flying[future.key] = (part, future)
            futures.add(future)

    submit()
    try:
        for future in futures:
            part, _ = flying.pop(future.key)
            try:
                result = future.result()
            except Exception as exc:
                raise MlpackError(f"a Dask worker failed on {_where(part)}: {type(exc).__name__}: {exc}") from exc
            if progress is not None and "rows" in result:
                progress(result["rows"])
            ready[part.index] = (part, result)
            while written.next in ready:
                written.add(sink, *ready.pop(written.next))
            submit()
    finally:
        for _, future in flying.values():
            future.cancel()
    return written.rows


class Written:
    """The partitions written so far, in order, and where in its file the next one starts."""

    def __init__(self) -> None:
        self.next = 0  # index of the next partition to write
        self.rows = 0
        self.before = {"rows": 0, "lines": 0}  # in the current file, for placing a message

    def add(self, sink: OrderedOutput, part: Partition, result: dict[str, Any]) -> None:
        if part.first:
            self.before = {"rows": 0, "lines": 0}
        if "error" in result:
            message = place(result["error"], self.before["rows"], self.before["lines"], result["prefix"])
            raise getattr(exceptions, result["type"], MlpackError)(message)
        done: Part = result["part"]
        sink.add(part.index, done)
        self.rows += result["rows"]
        self.before["rows"] += result["rows"]
        self.before["lines"] += result["newlines"]
        self.next += 1


def _where(part: Partition) -> str:
    if part.row_groups:
        return f"{part.name} (row groups {part.row_groups[0]}-{part.row_groups[-1]})"
    return f"{part.name} (bytes {part.lo}-{part.hi})" if part.hi >= 0 else part.name
