"""scikit-learn estimators and pipelines, stored with joblib as ``saved_model.joblib``."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any

from ..models import Model, check_installed, save
from ..settings import Settings
from ..tag import Tag
from . import get_for, method_table

MODULE = "mlpack.sklearn"
FILENAME = "saved_model.joblib"


def save_model(
    name: str,
    model: Any,
    *,
    signatures: Mapping[str, Mapping[str, Any]] | None = None,
    labels: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    custom_objects: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
) -> Model:
    """Save a fitted estimator or pipeline under ``name`` and return the stored Model."""
    check_installed("sklearn", "scikit-learn", "sklearn")
    import joblib

    def write(path: Path) -> None:
        joblib.dump(model, path / FILENAME)

    return save(
        MODULE,
        name,
        write,
        signatures=signatures,
        labels=labels,
        metadata=metadata,
        custom_objects=custom_objects,
        options={"model_class": f"{type(model).__module__}.{type(model).__qualname__}"},
        framework_name="sklearn",
        framework_versions={"scikit-learn": _metadata.version("scikit-learn")},
        settings=settings,
    )


def get(tag: Tag | str, settings: Settings | None = None) -> Model:
    return get_for(MODULE, tag, settings)


def load_model(tag: Tag | str | Model, settings: Settings | None = None) -> Any:
    """The estimator, after checking the sha256 of its file."""
    model = get_for(MODULE, tag, settings)
    check_installed("sklearn", "scikit-learn", "sklearn")
    import joblib

    return joblib.load(model.file(FILENAME))


def load_runnable(model: Model) -> dict[str, Any]:
    return method_table(load_model(model), model)


# ---------------------------------------------------------------- BentoML 0.x class style


from ..legacy import ModelArtifact  # noqa: E402 - the 0.x layer is light: no cycle, no heavy imports


class SklearnModelArtifact(ModelArtifact):
    """0.x ``SklearnModelArtifact("model")``: a scikit-learn slot of a ``BentoService``,
    stored with ``mlpack.sklearn.save_model`` (``predict`` and ``predict_proba`` batchable)."""

    module = MODULE
