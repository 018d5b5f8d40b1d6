"""Round trips through the store for scikit-learn and XGBoost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mlpack
from mlpack.exceptions import BadInput, NotFound


def test_sklearn_pipeline_round_trip(home: Path, iris) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    saved = mlpack.sklearn.save_model("pipe", pipe, signatures={"predict": {"batchable": True}, "predict_proba": {}})
    loaded = mlpack.sklearn.load_model("pipe:latest")
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), pipe.predict_proba(X))
    runnable = mlpack.sklearn.load_runnable(saved)
    assert set(runnable) == {"predict", "predict_proba"}
    np.testing.assert_array_equal(runnable["predict"](X), pipe.predict(X))
    assert saved.info.signatures["predict"] == {"batchable": True, "batch_dim": 0}
    import sklearn

    assert saved.info.context["framework_versions"] == {"scikit-learn": sklearn.__version__}


def test_sklearn_skips_its_nan_scan_only_where_the_contract_checked(home: Path, iris) -> None:
    """A Runner checks every request against the contract (NaN: a 400), so it asks the runnable to
    skip scikit-learn's own scan for NaN and infinity; a runnable no one checks for keeps it, and
    so do the steps of a pipeline."""
    import sklearn
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from mlpack.runner import Runner

    X, y = iris
    nan = X[:2].copy()
    nan[1, 2] = np.nan
    model = SVC(gamma="scale").fit(X, y)
    svc = mlpack.sklearn.save_model("svc", model, signatures={"predict": {"batchable": True}})
    with pytest.raises(ValueError, match="NaN"):
        mlpack.sklearn.load_runnable(svc)["predict"](nan)  # nobody checked: scikit-learn's scan stays
    checked = mlpack.sklearn.load_runnable(svc, checked=["predict"])["predict"]
    np.testing.assert_array_equal(checked(X), model.predict(X))
    checked(nan)  # the scan is skipped: the caller's contract has refused such input already
    assert sklearn.get_config()["assume_finite"] is False  # for that call only
    with pytest.raises(BadInput, match="not finite|NaN"):
        Runner(svc).predict.run(nan)  # the Runner: the contract refuses it first
    pipe = make_pipeline(StandardScaler(), SVC(gamma="scale")).fit(X, y)
    saved = mlpack.sklearn.save_model("pipe", pipe, signatures={"predict": {"batchable": True}})
    with pytest.raises(ValueError, match="NaN"):
        mlpack.sklearn.load_runnable(saved, checked=["predict"])["predict"](nan)


def test_custom_objects_round_trip_lazily(home: Path) -> None:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LinearRegression

    records = [{"home": "owner", "age": 30}, {"home": "rent", "age": 40}, {"home": "owner", "age": 50}]
    dv = DictVectorizer(sparse=False).fit(records)
    reg = LinearRegression().fit(dv.transform(records), [1.0, 2.0, 3.0])
    mlpack.sklearn.save_model("reg", reg, custom_objects={"DictVectorizer": dv, "threshold": 0.5})
    model = mlpack.sklearn.get("reg")
    assert "custom_objects" not in model.__dict__  # not loaded until asked
    restored = model.custom_objects["DictVectorizer"]
    np.testing.assert_array_equal(restored.transform(records), dv.transform(records))
    assert model.custom_objects["threshold"] == 0.5
    assert "custom_objects.pkl" in model.info.files


def test_xgboost_booster_round_trip_accepts_numpy_and_frames(home: Path, iris) -> None:
    import pandas as pd
    import xgboost as xgb

    X, y = iris
    names = ["sl", "sw", "pl", "pw"]
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3}, xgb.DMatrix(X, label=y, feature_names=names), 8)
    saved = mlpack.xgboost.save_model("booster", booster, signatures={"predict": {"batchable": True, "batch_dim": 0}})
    assert saved.info.options == {"model_class": "Booster"}
    assert (saved.path / "saved_model.ubj").is_file()
    expected = booster.predict(xgb.DMatrix(X, feature_names=names))
    loaded = mlpack.xgboost.load_model("booster")
    np.testing.assert_allclose(loaded.predict(xgb.DMatrix(X, feature_names=names)), expected)
    predict = mlpack.xgboost.load_runnable(saved)["predict"]
    np.testing.assert_allclose(predict(X), expected, rtol=1e-6)  # numpy without names, as dv.transform gives
    np.testing.assert_allclose(predict(pd.DataFrame(X, columns=names)), expected, rtol=1e-6)


def test_xgboost_sklearn_wrapper_round_trip(home: Path, iris) -> None:
    import xgboost as xgb

    X, y = iris
    clf = xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y)
    mlpack.xgboost.save_model("xgbc", clf)
    loaded = mlpack.xgboost.load_model("xgbc")
    assert type(loaded).__name__ == "XGBClassifier"
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X))


def test_xgboost_refuses_other_objects(home: Path, iris_svc) -> None:
    with pytest.raises(TypeError, match="Booster"):
        mlpack.xgboost.save_model("svc", iris_svc)


def test_framework_get_checks_the_module(home: Path, iris_svc) -> None:
    mlpack.sklearn.save_model("svc", iris_svc)
    with pytest.raises(NotFound, match="mlpack.sklearn"):
        mlpack.xgboost.get("svc")


def test_bad_signatures_are_refused(home: Path, iris_svc) -> None:
    with pytest.raises(BadInput, match="unknown options"):
        mlpack.sklearn.save_model("svc", iris_svc, signatures={"predict": {"batchable": True, "batchdim": 0}})
    with pytest.raises(BadInput):
        mlpack.sklearn.save_model("svc", iris_svc, signatures={"not a method": {}})
