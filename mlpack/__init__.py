"""mlpack: save, serve, run and containerize ML models.

Submodules load on first use (``mlpack.sklearn``, ``mlpack.Service``...), so that
``import mlpack`` and the CLI stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {"sklearn", "xgboost", "models", "bundles", "io", "adapters", "frameworks", "exceptions", "runner"}
_ATTRIBUTES = {
    "Service": "mlpack.service",
    "Runner": "mlpack.runner",
    "Tag": "mlpack.tag",
    "Model": "mlpack.models",
    "MlpackError": "mlpack.exceptions",
    "BentoService": "mlpack.legacy",
    "env": "mlpack.legacy",
    "artifacts": "mlpack.legacy",
    "api": "mlpack.legacy",
    "load": "mlpack.legacy",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"mlpack.{name}")
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'mlpack' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES, *_ATTRIBUTES])
