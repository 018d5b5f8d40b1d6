"""The input contract: recorded at save time, shown by `models get`, checked before batching."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

import mlpack
from mlpack.contract import InputContract
from mlpack.exceptions import BadInput, IntegrityError
from tests.server import running_server

IRIS = InputContract(n_features=4)
NAMED32 = InputContract(3, ("a", "b", "c"), None, "float32", True)
MISSING = InputContract(n_features=2, allow_nan=True)
# a bad value at row 17 of 20: past the few values the check sums in Python, numpy scans it
MANY = np.ones((20, 4))
MANY[17, 2] = np.nan


@pytest.mark.parametrize(
    "contract,value,message",
    [
        (IRIS, [[1, 2, 3]], "expected 4 columns, got 3"),
        (IRIS, np.ones((2, 5)), "expected 4 columns, got 5"),
        (IRIS, [[None, 1, 2, 3]], "column 0 of row 0 is null"),
        (IRIS, [[1, 2, "x", 4]], "column 2 of row 0 is not a number ('x')"),
        (IRIS, [[1, 2, 3, 4], [1, 2, 3, {"a": 1}]], "column 3 of row 1 is not a number"),
        (IRIS, np.array([[1, 2, 3, 4]] * 3 + [[1, np.inf, 3, 4]]), "row 3 has a value that is not finite (inf) in column 1"),
        (IRIS, np.array([[1, 2, 3, np.nan]]), "row 0 has a value that is not a number (NaN) in column 3"),
        (IRIS, np.array([[np.inf, -np.inf, 1, 1]]), "row 0 has a value that is not finite (inf) in column 0"),
        (IRIS, MANY, "row 17 has a value that is not a number (NaN) in column 2"),
        (MISSING, np.array([[np.nan, -np.inf]]), "row 0 has a value that is not finite (-inf) in column 1"),
        (IRIS, [], "the input has no rows"),
        (IRIS, np.zeros((0, 4)), "the input has no rows"),
        (IRIS, [1, 2, 3, 4], "expected a 2-D table (rows of 4 values), got a 1-D array"),
        (IRIS, [[[1, 2, 3, 4]]], "got a 3-D array of shape [1, 1, 4]"),
        (IRIS, [[1, 2], [1, 2, 3]], "rows of the input have different lengths"),
        (IRIS, np.array([[1 + 2j, 1, 1, 1]]), "column 0 of row 0 is not a number"),
        (IRIS, pd.Series([1.0, 2.0]), "got a 1-D Series"),
        (IRIS, pd.DataFrame([[1, 2, "x", 4]]), "column 2 of row 0 is not a number ('x')"),
        (NAMED32, [[1e300, 1, 1]], "row 0 has a value too large for float32 (1e+300) in column 0"),
        (NAMED32, np.array([[1, 1, -1e39]]), "too large for float32"),
        (NAMED32, [[1, np.inf, 1]], "not finite (inf) in column 1"),
        (NAMED32, pd.DataFrame({"a": [1.0], "c": [2.0]}), "missing column(s): b"),
        (NAMED32, pd.DataFrame({"a": [1.0], "b": [1], "c": [2.0], "d": [0]}), "unexpected column(s): d"),
        (NAMED32, pd.DataFrame({"b": [1.0], "a": [1], "c": [2.0]}), "in the order the model was trained with: a, b, c"),
        (
            NAMED32,
            pd.DataFrame({"a": [1.0, 2.0], "b": [1, 1], "c": [2.0, 1e300]}),
            "row 1 has a value too large for float32 (1e+300) in column 'c'",
        ),
        (NAMED32, pd.DataFrame({"a": [1.0], "b": ["x"], "c": [2.0]}), "column 'b' of row 0 is not a number ('x')"),
        (
            NAMED32,
            sp.csr_matrix(np.array([[0, 0, 0], [0, 1e300, 0]])),
            "row 1 has a value too large for float32 (1e+300) in column 1",
        ),
        (NAMED32, sp.csr_matrix((1, 4)), "expected 3 columns, got 4"),
    ],
)
def test_check_refuses_with_a_message_naming_the_problem(contract, value, message) -> None:
    with pytest.raises(BadInput) as info:
        contract.check(value)
    assert info.value.http_status == 422
    assert message in str(info.value)


@pytest.mark.parametrize(
    "contract,value",
    [
        (IRIS, np.ones((3, 4))),
        (IRIS, np.ones((3, 4), dtype=np.float32)),
        (IRIS, [[1, 2, 3, 4], [5, 6, 7, 8]]),
        (IRIS, [[1e300, 1, True, 1]]),  # finite float64: the model's business
        (IRIS, np.array([[1.7e308, 1.7e308, -1e308, 1]])),  # finite values whose sum overflows
        (MISSING, np.array([[np.nan, 1.0], [2.0, np.nan]])),
        (IRIS, pd.DataFrame(np.ones((2, 4)))),
        (IRIS, pd.DataFrame(np.ones((2, 4)), columns=list("wxyz"))),  # no names recorded: width only
        (IRIS, sp.csr_matrix(np.eye(4))),
        (NAMED32, [[np.nan, None, 3]]),  # xgboost takes missing values
        (NAMED32, pd.DataFrame({"a": [np.nan], "b": [1], "c": [3.4e38]})),
        (NAMED32, pd.DataFrame([[1.0, 2.0, 3.0]])),  # unnamed columns: width only
        (NAMED32, sp.csr_matrix(np.array([[np.nan, 1, 0]]))),
        (IRIS, "not a table"),  # not a kind the contract knows: passed on to the model
    ],
)
def test_check_accepts_what_the_model_takes(contract, value) -> None:
    contract.check(value)


def test_dict_round_trip_and_malformed_contracts() -> None:
    data = NAMED32.to_dict()
    assert data == {
        "n_features": 3,
        "feature_names": ["a", "b", "c"],
        "feature_types": None,
        "dtype": "float32",
        "allow_nan": True,
    }
    assert InputContract.from_dict(data) == NAMED32
    assert InputContract.from_dict(yaml.safe_load(yaml.safe_dump(data))) == NAMED32
    for bad in [{"n_features": "4"}, {"n_features": -1}, {"n_features": True}, {"feature_names": "abc"},
                {"n_features": 2, "feature_names": ["a"]}, {"dtype": "object"}, {"allow_nan": "yes"},
                {"extra": 1}, ["n_features"]]:  # fmt: skip
        with pytest.raises(IntegrityError):
            InputContract.from_dict(bad)


def test_sklearn_contracts(home: Path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC

    rng = np.random.default_rng(0)
    X, y = rng.random((40, 3)), np.arange(40) % 2
    df = pd.DataFrame(X, columns=["x1", "x2", "x3"])
    mixed = df.assign(color=["red", "blue"] * 20)

    def saved(model):
        info = mlpack.sklearn.save_model("m", model).info
        return info.input_contract

    assert saved(SVC().fit(X, y)) == {
        "n_features": 3,
        "feature_names": None,
        "feature_types": None,
        "dtype": "float64",
        "allow_nan": False,
    }
    assert saved(make_pipeline(StandardScaler(), SVC()).fit(df, y))["feature_names"] == ["x1", "x2", "x3"]
    assert saved(make_pipeline(SimpleImputer(), SVC()).fit(X, y))["allow_nan"] is True  # the first step's tag
    assert saved(HistGradientBoostingClassifier(max_iter=5).fit(X, y))["allow_nan"] is True
    encoder = ColumnTransformer([("c", OneHotEncoder(), ["color"])], remainder="passthrough")
    assert saved(make_pipeline(encoder, LogisticRegression()).fit(mixed, y)) is None  # takes strings: no contract


def test_models_get_shows_the_contract(cli, home: Path, iris, iris_svc) -> None:
    import xgboost as xgb

    X, y = iris
    mlpack.sklearn.save_model("iris_clf", iris_svc)
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(X, label=y % 2, feature_names=["sl", "sw", "pl", "pw"]), 2)
    mlpack.xgboost.save_model("iris_xgb", booster)
    mlpack.xgboost.save_model("iris_xgbclf", xgb.XGBClassifier(n_estimators=2).fit(X, y))
    shown = yaml.safe_load(cli("models", "get", "iris_clf:latest").stdout)["input_contract"]
    assert shown == {"n_features": 4, "feature_names": None, "feature_types": None, "dtype": "float64", "allow_nan": False}
    shown = json.loads(cli("models", "get", "iris_xgb:latest", "-o", "json").stdout)["input_contract"]
    assert shown == {
        "n_features": 4,
        "feature_names": ["sl", "sw", "pl", "pw"],
        "feature_types": None,
        "dtype": "float32",
        "allow_nan": True,
    }
    shown = yaml.safe_load(cli("models", "get", "iris_xgbclf:latest").stdout)["input_contract"]
    assert shown["n_features"] == 4 and shown["dtype"] == "float32" and shown["allow_nan"] is True
    runner = mlpack.xgboost.get("iris_xgb:latest").to_runner()
    assert runner.input_contract == InputContract(4, ("sl", "sw", "pl", "pw"), None, "float32", True)


def test_runner_checks_before_calling_the_model_and_blames_lone_requests(home: Path, iris, iris_svc) -> None:
    X, _ = iris
    runner = mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True}}).to_runner()
    assert runner.predict.run(X[:3]).tolist() == iris_svc.predict(X[:3]).tolist()
    with pytest.raises(BadInput, match="expected 4 columns, got 2"):
        runner.predict.run(X[:3, :2])
    # Without a contract the model's own ValueError on a lone request is the request's fault (422).
    runner.predict.contract = None
    with pytest.raises(BadInput) as info:
        runner.predict.run(X[:3, :2])
    assert info.value.http_status == 422 and "the model cannot take this input" in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)


def test_model_saved_without_a_contract_still_serves(home: Path, tmp_path: Path, iris, iris_svc) -> None:
    X, _ = iris
    model = mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True, "batch_dim": 0}})
    manifest = model.path / "model.yaml"
    data = yaml.safe_load(manifest.read_text())
    del data["input_contract"]  # as written before contracts existed
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    assert "input_contract" not in manifest.read_text()
    (tmp_path / "service.py").write_text((Path(__file__).parent.parent / "examples" / "iris" / "service.py").read_text())
    with running_server("service.py:svc", home=home, cwd=tmp_path) as srv:
        ok = httpx.post(srv.url + "/predict", json=X[:5].tolist())
        bad = httpx.post(srv.url + "/predict", json=[[1, 2, 3]])
    assert ok.status_code == 200 and ok.json() == iris_svc.predict(X[:5]).tolist()
    # the model itself refuses it, alone: a 422 with scikit-learn's message
    assert bad.status_code == 422 and "4 features" in bad.json()["error"]


def readme_bad_input_examples() -> list[tuple[list[str], int, dict]]:
    """The README's "What a client gets for bad input" requests: (curl words, status, body)."""
    import shlex

    text = (Path(__file__).parent.parent / "README.md").read_text()
    section = text.split("### What a client gets for bad input", 1)[1].split("\n**Configuration**", 1)[0]
    lines = section.splitlines()
    found = []
    for line, answer in zip(lines, lines[1:]):
        if line.startswith("curl "):
            status, _, body = answer.removeprefix("# ").partition(" ")
            found.append((shlex.split(line), int(status), json.loads(body)))
    return found


def test_readme_bad_input_examples_are_what_the_server_answers(home: Path, tmp_path: Path, iris_svc) -> None:
    examples = readme_bad_input_examples()
    assert len(examples) >= 5
    mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True, "batch_dim": 0}})
    (tmp_path / "service.py").write_text((Path(__file__).parent.parent / "examples" / "iris" / "service.py").read_text())
    with running_server("service.py:svc", home=home, cwd=tmp_path) as srv:
        for words, status, body in examples:
            url = next(w for w in words if w.startswith("localhost:3000"))
            data = words[words.index("-d") + 1].encode()
            res = httpx.post(
                srv.url + url.removeprefix("localhost:3000"), content=data, headers={"content-type": "application/json"}
            )
            assert (res.status_code, res.json()) == (status, body), words


def test_xgboost_runner_takes_dictvectorizer_output_sparse_or_dense(home: Path) -> None:
    """The credit-risk shape: a booster over DictVectorizer columns, fed ``dv.transform(...)``."""
    import xgboost as xgb
    from sklearn.feature_extraction import DictVectorizer

    rng = np.random.default_rng(1)
    records = [{"debt": float(d), "home": h} for d, h in zip(rng.integers(0, 5000, 60), ["owner", "rent"] * 30)]
    dense, sparse = DictVectorizer(sparse=False).fit(records), DictVectorizer(sparse=True).fit(records)
    names = list(dense.get_feature_names_out())
    booster = xgb.train(
        {"objective": "binary:logistic"}, xgb.DMatrix(dense.transform(records), label=np.arange(60) % 2, feature_names=names), 3
    )
    runner = mlpack.xgboost.save_model("credit", booster, signatures={"predict": {"batchable": True}}).to_runner()
    assert runner.input_contract.feature_names == ("debt", "home=owner", "home=rent")
    for dv in (dense, sparse):
        # the model's own answer (to XGBoost a sparse matrix's absent entries are missing, not 0)
        want = booster.predict(xgb.DMatrix(dv.transform(records[:2]), feature_names=names))
        np.testing.assert_allclose(runner.predict.run(dv.transform(records[:2])), want)
        with pytest.raises(BadInput, match=r"too large for float32 \(1e\+300\) in column 0 \('debt'\)"):
            runner.predict.run(dv.transform([{"debt": 1e300, "home": "owner"}]))
        with pytest.raises(BadInput, match="expected 3 columns, got 2"):
            runner.predict.run(dv.transform(records[:1])[:, :2])


def test_booleans_are_not_numbers_in_arrays_but_boolean_frame_columns_are_features() -> None:
    import numpy as np
    import pandas as pd

    from mlpack.contract import InputContract
    from mlpack.exceptions import BadInput

    contract = InputContract(n_features=2, feature_names=("a", "b"), feature_types=None, dtype="float64", allow_nan=False)
    for bad in (np.array([[True, False]]), np.array([[1.0, True]], dtype=object)):
        with pytest.raises(BadInput, match="is a boolean") as info:
            contract.check(bad)
        assert info.value.http_status == 422
    contract.check(pd.DataFrame({"a": [True, False], "b": [1.0, 2.0]}))
