from __future__ import annotations

from mlpack.cli import main

main()
