"""A scheduler preload for tests/test_dask.py (``dask scheduler --preload``): a line per change
of how many partitions are processing on the workers, to the file ``$INFLIGHT_LOG``."""

from __future__ import annotations

import os
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin


class InFlight(SchedulerPlugin):
    name = "mlpack-test-inflight"

    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if not str(key).startswith("run_partition"):
            return
        change = (finish == "processing") - (start == "processing")
        if change:
            self.count += change
            with open(self.path, "a") as log:
                log.write(f"{self.count}\n")


def dask_setup(scheduler: Any) -> None:
    scheduler.add_plugin(InFlight(os.environ["INFLIGHT_LOG"]))
