from __future__ import annotations

from mlpack.cli import main

if __name__ == "__main__":  # not when a spawned worker process (Dask, multiprocessing) imports it
    main()
