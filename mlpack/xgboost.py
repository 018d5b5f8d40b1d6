"""``mlpack.xgboost``: save and load XGBoost models (see ``mlpack.frameworks.xgboost``)."""

from __future__ import annotations

from .frameworks.xgboost import get, load_model, load_runnable, save_model

__all__ = ["get", "load_model", "load_runnable", "save_model"]
