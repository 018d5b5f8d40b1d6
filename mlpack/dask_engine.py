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
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import exceptions
from .dask_cluster import connect, preload_for, start_fork_server
from .exceptions import BadInput, MlpackError
from .offline import DEFAULT_BATCH_SIZE, Progress, RunStats, _atomic, _output_format, get_api
from .partitions import Partition, place, plan
from .parts import PART_EXTENSIONS, OrderedOutput, Part, atomic_folder
from .shipping import pack

if TYPE_CHECKING:
    from distributed import Client

SCHEDULER_ENV = "MLPACK_DASK_SCHEDULER"


@dataclass(frozen=True)
class DaskOptions:
    scheduler: str | None = None  # tcp://HOST:PORT; None: $MLPACK_DASK_SCHEDULER, else a LocalCluster
    workers: int | None = None  # LocalCluster size [default: one per CPU]
    partition_bytes: int | None = None  # target partition size [default: a few partitions per worker]

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
    expected_workers = options.workers or (None if scheduler else os.cpu_count())
    parts = plan(input_spec, fmt, api.input, options.partition_bytes, expected_workers or 2)
    out = _out_format(output, output_dir, out_fmt, parts[0].fmt)
    if scheduler is None:  # its workers' imports overlap what the client does until they start
        start_fork_server(preload_for(loaded.service))
    shipment = pack(loaded, spec, skip=tuple(p.url for p in parts if not _remote(p.url)))
    from .dask_worker import ShipmentPlugin

    with connect(scheduler, options.workers) as client, _destination(output, output_dir, out) as sink:
        client.register_plugin(ShipmentPlugin(shipment), name=shipment.key)
        try:
            window = max(2, 2 * len(client.scheduler_info(n_workers=-1).get("workers", {})))
            rows = _collect(client, shipment.key, api_name, parts, out, batch_size, window, sink, progress)
            sink.close()
        finally:
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
    client: Client,
    key: str,
    api_name: str,
    parts: list[Partition],
    fmt: str,
    batch_size: int,
    window: int,
    sink: OrderedOutput,
    progress: Progress | None,
) -> int:
    """Submit partitions a window at a time and hand their results to ``sink`` in order."""
    pending: deque[tuple[Partition, Any]] = deque()
    from .dask_worker import run_partition

    todo = iter(parts)
    rows = 0
    before = {"rows": 0, "lines": 0}  # in the current file, for placing a message

    def submit() -> None:
        part = next(todo, None)
        if part is not None:
            future = client.submit(
                run_partition, key, api_name, part, fmt, batch_size, pure=False, priority=-part.index, retries=1
            )
            pending.append((part, future))

    for _ in range(window):
        submit()
    try:
        while pending:
            part, future = pending.popleft()
            try:
                result = future.result()
            except Exception as exc:
                raise MlpackError(f"a Dask worker failed on {_where(part)}: {type(exc).__name__}: {exc}") from exc
            submit()
            if part.first:
                before = {"rows": 0, "lines": 0}
            if "error" in result:
                message = place(result["error"], before["rows"], before["lines"], result["prefix"])
                raise getattr(exceptions, result["type"], MlpackError)(message)
            done: Part = result["part"]
            sink.add(part.index, done)
            rows += result["rows"]
            before["rows"] += result["rows"]
            before["lines"] += result["newlines"]
            if progress is not None:
                progress(result["rows"])
    finally:
        for _, future in pending:
            future.cancel()
    return rows


def _where(part: Partition) -> str:
    if part.row_groups:
        return f"{part.name} (row groups {part.row_groups[0]}-{part.row_groups[-1]})"
    return f"{part.name} (bytes {part.lo}-{part.hi})" if part.hi >= 0 else part.name
