"""XGBoost Boosters and sklearn wrappers, stored in XGBoost's native ``saved_model.ubj``."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from ..contract import InputContract
from ..exceptions import IntegrityError
from ..models import Model, check_installed, save
from ..settings import Settings
from ..tag import Tag
from . import get_for, method_table

MODULE = "mlpack.xgboost"
FILENAME = "saved_model.ubj"
# classes load_model may instantiate; model.yaml is data, never an import path
_CLASSES = ("Booster", "XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor")


def _xgb() -> Any:
    return check_installed("xgboost", "xgboost", "xgboost")


def input_contract(model: Any) -> InputContract | None:
    """The booster's feature count, names and types; XGBoost computes in float32 and takes NaN as missing."""
    try:
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        n = int(booster.num_features())
        names, types = booster.feature_names, booster.feature_types
        return InputContract(
            n_features=n,
            feature_names=tuple(names) if names else None,
            feature_types=tuple(types) if types else None,
            dtype="float32",
            allow_nan=True,
        )
    except Exception:  # noqa: BLE001 - e.g. an unfitted estimator: saved without a contract
        return None


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
    """Save a Booster or an XGBoost sklearn estimator under ``name``."""
    xgb = _xgb()
    cls = type(model).__name__
    if cls not in _CLASSES or not isinstance(model, (xgb.Booster, xgb.XGBModel)):
        raise TypeError(f"mlpack.xgboost saves xgboost.Booster or XGBoost sklearn estimators, not {type(model).__name__}")

    def write(path: Path) -> None:
        model.save_model(str(path / FILENAME))

    return save(
        MODULE,
        name,
        write,
        signatures=signatures,
        labels=labels,
        metadata=metadata,
        custom_objects=custom_objects,
        options={"model_class": cls},
        framework_name="xgboost",
        framework_versions={"xgboost": xgb.__version__},
        input_contract=input_contract(model),
        settings=settings,
    )


def get(tag: Tag | str, settings: Settings | None = None) -> Model:
    return get_for(MODULE, tag, settings)


def load_model(tag: Tag | str | Model, settings: Settings | None = None) -> Any:
    """The Booster or estimator, after checking the sha256 of its file."""
    model = get_for(MODULE, tag, settings)
    xgb = _xgb()
    cls = model.info.options.get("model_class", "Booster")
    if cls not in _CLASSES:
        raise IntegrityError(f"model {model.tag} names unknown XGBoost class {cls!r}")
    obj = getattr(xgb, cls)()
    obj.load_model(str(model.file(FILENAME)))
    return obj


def _booster_predict(booster: Any, xgb: Any) -> Any:
    names = booster.feature_names

    def predict(data: Any) -> Any:
        if not isinstance(data, xgb.DMatrix):
            is_frame = hasattr(data, "columns")
            ncols = data.shape[1] if getattr(data, "ndim", 2) == 2 else None
            if names and not is_frame and ncols == len(names):
                # e.g. DictVectorizer output: same columns as training, just no names attached
                data = xgb.DMatrix(data, feature_names=names)
            else:
                data = xgb.DMatrix(data)
        return booster.predict(data)

    return predict


def load_runnable(model: Model, *, checked: Collection[str] = ()) -> dict[str, Any]:
    """One callable per signature (``checked``, the methods whose input the caller checks first,
    changes nothing here: XGBoost has no scan to skip)."""
    obj = load_model(model)
    xgb = _xgb()
    if isinstance(obj, xgb.Booster):
        table = {m: getattr(obj, m) for m in model.info.signatures if m != "predict" and hasattr(obj, m)}
        if "predict" in model.info.signatures:
            table["predict"] = _booster_predict(obj, xgb)
        return table
    return method_table(obj, model)


# ---------------------------------------------------------------- BentoML 0.x class style


from ..legacy import ModelArtifact  # noqa: E402 - the 0.x layer is light: no cycle, no heavy imports


class XgboostModelArtifact(ModelArtifact):
    """0.x ``XgboostModelArtifact("model")``: an XGBoost slot of a ``BentoService``, stored in
    XGBoost's native format with ``mlpack.xgboost.save_model`` (``predict`` batchable)."""

    module = MODULE

    def __init__(self, name: str, model_extension: str = ".model") -> None:  # noqa: ARG002 - 0.x file suffix
        super().__init__(name)
