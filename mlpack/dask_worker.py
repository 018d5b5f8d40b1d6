"""The worker side of ``mlpack run --engine dask``: the shipment plugin and the partition task.

A local cluster's worker processes fork from a server that imported this module (with
distributed, numpy, pandas and the service's frameworks) once; see ``mlpack.dask_engine``.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin, get_worker

from .exceptions import MlpackError
from .offline import get_api, run_chunks
from .partitions import Partition, read
from .parts import PartWriter
from .shipping import Shipment, unpack_and_load


class ShipmentPlugin(WorkerPlugin):
    """Carries a shipment to every worker; loads its service once per worker process."""

    def __init__(self, shipment: Shipment) -> None:
        self.shipment = shipment
        self.name = shipment.key

    def setup(self, worker: Any) -> None:
        self._lock = threading.Lock()
        self._loaded: Any = None
        self.root = Path(tempfile.mkdtemp(prefix="mlpack-shipment-", dir=worker.local_directory))

    def teardown(self, worker: Any) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def loaded(self) -> Any:
        with self._lock:
            if self._loaded is None:
                self._loaded = unpack_and_load(self.shipment, self.root / "entry")
            return self._loaded


def run_partition(key: str, api_name: str, part: Partition, out_fmt: str, batch_size: int) -> dict[str, Any]:
    """One partition through the API on this worker: its encoded results and counts, or its error."""
    plugin = get_worker().plugins[key]
    newlines = prefix = 0
    try:
        service = plugin.loaded().service
        api = get_api(service, api_name)
        scratch = Path(tempfile.mkdtemp(dir=plugin.root))
        try:
            opened = read(part, scratch)
            newlines, prefix = opened.newlines, opened.prefix_lines
            writer = PartWriter(out_fmt)
            rows, _ = run_chunks(service, api, api.input._iter(opened.source, part.fmt, batch_size, part.name), writer.write)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    except MlpackError as exc:  # sent back as a value: our exceptions need not survive pickling
        return {"error": str(exc), "type": type(exc).__name__, "newlines": newlines, "prefix": prefix}
    return {"part": writer.result(), "rows": rows, "newlines": newlines}
