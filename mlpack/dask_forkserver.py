"""Imported first by the fork server of a local Dask cluster's workers, before its other preloads.

The server imports some 1,700 modules (distributed, pandas, scipy through sklearn...) and then
only forks. With the cyclic garbage collector off, those imports take ~15% less CPU: its
passes over the growing heap find nothing to free, and they run on the start-up's critical
path. Before each fork everything is frozen (``gc.freeze``): the workers' collections skip
the imported objects and their pages stay shared, and the server's collection as it exits
(0.15-0.3 s after the client ends, with nothing to free) skips them too. The server and each
worker collect as usual from the fork on. Worker processes end with ``os._exit``
(``multiprocessing``'s fork server), so they have no collection at exit.
"""

from __future__ import annotations

import gc
import os

gc.disable()
os.register_at_fork(before=gc.freeze, after_in_parent=gc.enable, after_in_child=gc.enable)
