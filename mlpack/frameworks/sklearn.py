"""scikit-learn estimators and pipelines, stored with joblib as ``saved_model.joblib``."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from ..contract import InputContract
from ..models import Model, check_installed, save
from ..settings import Settings
from ..tag import Tag
from . import get_for, method_table

MODULE = "mlpack.sklearn"
FILENAME = "saved_model.joblib"
# first steps that take more than numbers (strings, dicts, categories, anything): no contract
_MIXED_INPUT = {"ColumnTransformer", "FeatureUnion", "FunctionTransformer", "OneHotEncoder", "OrdinalEncoder",
                "TargetEncoder", "DictVectorizer", "FeatureHasher", "CountVectorizer", "TfidfVectorizer",
                "HashingVectorizer", "LabelEncoder", "LabelBinarizer", "MultiLabelBinarizer"}  # fmt: skip


def _first_step(model: Any) -> Any:
    """The estimator that sees the input first: through Pipelines and fitted searches."""
    for _ in range(20):  # nested pipelines; bounded, as estimators are user objects
        steps = getattr(model, "steps", None)
        if isinstance(steps, list) and steps:
            model = next((est for _, est in steps if est not in (None, "passthrough")), steps[0][1])
        elif hasattr(model, "best_estimator_"):
            model = model.best_estimator_
        else:
            break
    return model


def _allow_nan(est: Any) -> bool:
    try:
        from sklearn.utils import get_tags  # scikit-learn >= 1.6

        return bool(get_tags(est).input_tags.allow_nan)
    except ImportError:  # pragma: no cover - older scikit-learn
        return bool(est._get_tags().get("allow_nan", False))


def input_contract(model: Any) -> InputContract | None:
    """``n_features_in_``, ``feature_names_in_`` and NaN acceptance (the first step's estimator tag);
    None when the model's input is not a table of numbers (text, dicts, mixed columns) or unknown."""
    try:
        first = _first_step(model)
        n = getattr(model, "n_features_in_", None)
        if n is None or type(first).__name__ in _MIXED_INPUT or not type(first).__module__.startswith("sklearn."):
            return None
        try:
            from sklearn.utils import get_tags

            tags = get_tags(first).input_tags
            if tags.string or tags.dict or tags.categorical:
                return None
        except ImportError:  # pragma: no cover - older scikit-learn
            pass
        names = getattr(model, "feature_names_in_", None)
        return InputContract(
            n_features=int(n),
            feature_names=tuple(str(c) for c in names) if names is not None else None,
            dtype="float64",
            allow_nan=_allow_nan(first),
        )
    except Exception:  # noqa: BLE001 - an odd estimator is saved without a contract, never refused
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
    """Save a fitted estimator or pipeline under ``name`` and return the stored Model."""
    check_installed("sklearn", "scikit-learn", "sklearn")
    import joblib

    def write(path: Path) -> None:
        joblib.dump(model, path / FILENAME)

    from importlib import metadata as package_metadata  # ~15 ms of imports that loading a model does not need

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
        framework_versions={"scikit-learn": package_metadata.version("scikit-learn")},
        input_contract=input_contract(model),
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


# scikit-learn warns on every call whose input lacks feature names when the model was fitted
# with them (or the other way round): on every request of a server, every chunk of a run. Its
# own catch_warnings() calls reset Python's once-per-place memory, so no filter action can
# make it show once. So that one message from scikit-learn is ignored, and the runnable
# warns once itself, with the same words, the first time its input does not match.
_FEATURE_NAMES_WARNING = r"X (does not have valid|has) feature names, but \S+ was fitted with(out)? feature names"


def load_runnable(model: Model, *, checked: Collection[str] = ()) -> dict[str, Any]:
    """One callable per signature. ``checked`` names the methods whose every single-argument call
    the caller checks against the model's input contract first (the Runner does): for those, a
    plain estimator skips scikit-learn's own scan for NaN and infinity of a numpy array, which
    the contract has made already (``assume_finite``: 5-15 us of an SVC's ~240 us call here)."""
    import warnings

    estimator = load_model(model)
    # one filter for exactly that message; filterwarnings replaces an identical one, so
    # loading many models adds nothing, and every other warning behaves as the user set up
    warnings.filterwarnings("ignore", message=_FEATURE_NAMES_WARNING, category=UserWarning, module=r"sklearn\.")
    notice = _FeatureNamesNotice(estimator)
    # only a plain estimator: inside a pipeline or ensemble a step's own output reaches the next
    # step, and the scan there must stay
    plain = not any(hasattr(estimator, a) for a in _COMPOSITE_ATTRIBUTES)
    return {
        name: notice.wrap(fn, assume_finite=plain and name in checked)
        for name, fn in method_table(estimator, model).items()
    }


# what composite estimators (pipelines, searches, ensembles, meta-estimators) hold their parts in
_COMPOSITE_ATTRIBUTES = ("steps", "best_estimator_", "estimators", "estimators_", "estimator", "estimator_",
                         "base_estimator", "transformers", "final_estimator")  # fmt: skip


class _FeatureNamesNotice:
    """scikit-learn's feature-names warning, shown at most once for a loaded model."""

    def __init__(self, estimator: Any) -> None:
        self.estimator_name = type(estimator).__name__
        self.fitted_with_names = getattr(estimator, "feature_names_in_", None) is not None
        self.shown = False
        self._lock = threading.Lock()

    def wrap(self, fn: Callable[..., Any], *, assume_finite: bool = False) -> Callable[..., Any]:
        import numpy as np

        # a plain array has no feature names: nothing to check for a model fitted without them
        unnamed = None if self.fitted_with_names else np.ndarray
        ndarray = np.ndarray if assume_finite else None
        if assume_finite:
            from sklearn import config_context

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if not self.shown and args and type(args[0]) is not unnamed:
                self.check(args[0])
            if len(args) == 1 and type(args[0]) is ndarray and not kwargs:
                with config_context(assume_finite=True):  # this thread only, this call only
                    return fn(*args)
            return fn(*args, **kwargs)

        if hasattr(fn, "__self__"):
            call.__self__ = fn.__self__  # type: ignore[attr-defined]  # still reaches the estimator, as a bound method
        return call

    def check(self, x: Any) -> None:
        import warnings

        columns = getattr(x, "columns", None)  # a DataFrame; no pandas import for numpy input
        named = columns is not None and len(columns) > 0 and all(isinstance(c, str) for c in columns)
        if named == self.fitted_with_names:
            return
        with self._lock:  # model calls run in worker threads: still once
            if self.shown:
                return
            self.shown = True
        if self.fitted_with_names:
            text = f"X does not have valid feature names, but {self.estimator_name} was fitted with feature names"
        else:
            text = f"X has feature names, but {self.estimator_name} was fitted without feature names"
        warnings.warn(text + " (shown once)", UserWarning, stacklevel=3)


# ---------------------------------------------------------------- BentoML 0.x class style


from ..legacy import ModelArtifact  # noqa: E402 - the 0.x layer is light: no cycle, no heavy imports


class SklearnModelArtifact(ModelArtifact):
    """0.x ``SklearnModelArtifact("model")``: a scikit-learn slot of a ``BentoService``,
    stored with ``mlpack.sklearn.save_model`` (``predict`` and ``predict_proba`` batchable)."""

    module = MODULE
