"""``mlpack.sklearn``: save and load scikit-learn models (see ``mlpack.frameworks.sklearn``)."""

from __future__ import annotations

from .frameworks.sklearn import get, load_model, load_runnable, save_model

__all__ = ["get", "load_model", "load_runnable", "save_model"]
