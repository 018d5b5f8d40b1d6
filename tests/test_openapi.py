"""The OpenAPI document tells the truth: what its schema allows a descriptor accepts, what it
forbids a descriptor refuses; non-standard JSON is a 400; pydantic validates strictly."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate
from pydantic import BaseModel, ConfigDict

import mlpack
from mlpack.adapters import DataframeInput, JsonInput
from mlpack.exceptions import BadInput
from mlpack.io import JSON, NumpyNdarray, PandasDataFrame
from tests.fixtures.credit import CreditApplication

APPLICATION = {
    "seniority": 3, "home": "owner", "time": 36, "age": 26, "marital": "single", "records": "no",
    "job": "freelance", "expenses": 35, "income": 0.0, "assets": 60000.0, "debt": 3000.0,
    "amount": 800, "price": 1000,
}  # fmt: skip
IRIS_CONTRACT = {"n_features": 4, "feature_names": None, "feature_types": None, "dtype": "float64", "allow_nan": False}


def parse(descriptor, body: bytes | str, mime: str = "application/json"):  # noqa: ANN001, ANN201
    return descriptor.from_http_body(body.encode() if isinstance(body, str) else body, mime, None)


def status_of(descriptor, body: str, mime: str = "application/json") -> int:  # noqa: ANN001
    try:
        parse(descriptor, body, mime)
    except BadInput as exc:
        return exc.http_status
    return 200


def request_schema(descriptor, contract: dict | None = None, mime: str = "application/json") -> dict:  # noqa: ANN001
    """The request schema as served, with the descriptor's components resolvable."""
    from mlpack.openapi import to_openapi30

    schema = to_openapi30(descriptor.openapi_request_body(contract))["content"][mime]["schema"]
    return {**schema, "components": {"schemas": to_openapi30(descriptor.openapi_components())}}


def allowed(schema: dict, body: str) -> bool:
    return OAS30Validator(schema).is_valid(json.loads(body))


# ---------------------------------------------------------------- non-standard JSON


_JSON_DESCRIPTORS = [
    JSON(), JSON(pydantic_model=CreditApplication), NumpyNdarray(), NumpyNdarray(dtype="float32", enforce_dtype=True),
    PandasDataFrame(), PandasDataFrame(columns=["a"]), JsonInput(), DataframeInput(),
]  # fmt: skip
_TOKENS = ["NaN", "Infinity", "-Infinity", "1e400"]


# pydantic reads a number beyond a double as infinity (its float validation judges it): no 1e400 there
@pytest.mark.parametrize(
    ("descriptor", "token"),
    [(d, t) for d in _JSON_DESCRIPTORS for t in _TOKENS if not (t == "1e400" and getattr(d, "pydantic_model", None))],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_nan_and_infinity_are_400_in_every_json_descriptor(descriptor, token: str) -> None:  # noqa: ANN001
    if isinstance(descriptor, JSON) and descriptor.pydantic_model is not None:
        body = json.dumps({**APPLICATION, "income": 1.5}).replace("1.5", token)
    elif isinstance(descriptor, PandasDataFrame):
        body = f'[{{"a": {token}}}]'
    else:
        body = f"[[1.0, {token}]]"
    with pytest.raises(BadInput) as info:
        parse(descriptor, body)
    assert info.value.http_status == 400
    assert "not standard JSON" in str(info.value) and "line 1 column" in str(info.value)


def test_standard_json_that_merely_looks_like_nan_is_fine() -> None:
    app = JSON(pydantic_model=CreditApplication).from_http_body(
        json.dumps({**APPLICATION, "home": "NaN", "job": "Infinity", "debt": 1e300}).encode(), "application/json", None
    )
    assert app.home == "NaN" and app.job == "Infinity" and app.debt == 1e300


# ---------------------------------------------------------------- strict pydantic


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price", False),
        ("debt", True),
        ("income", "1.5"),
        ("age", "26"),
        ("age", 26.5),
        ("age", 26.0),
        ("home", 3),
        ("job", None),
    ],
)
def test_pydantic_refuses_what_its_schema_forbids(field: str, value: object) -> None:
    d = JSON(pydantic_model=CreditApplication)
    body = json.dumps({**APPLICATION, field: value})
    schema = request_schema(d)
    assert not allowed(schema, body)
    with pytest.raises(BadInput) as info:
        parse(d, body)
    assert info.value.http_status == 422 and field in str(info.value)
    assert [e["loc"] for e in info.value.details] == [[field]]


def test_pydantic_accepts_what_its_schema_allows() -> None:
    d = JSON(pydantic_model=CreditApplication)
    for body in [APPLICATION, {**APPLICATION, "income": 7, "debt": -2.5e10, "extra": "ignored"}]:
        assert allowed(request_schema(d), json.dumps(body))
        app = parse(d, json.dumps(body))
        assert app.income == body["income"] and isinstance(app.income, float)


def test_a_model_that_asks_for_lax_validation_keeps_it() -> None:
    class Lax(BaseModel):
        model_config = ConfigDict(strict=False)
        n: int

    assert parse(JSON(pydantic_model=Lax), '{"n": "5"}').n == 5
    with pytest.raises(BadInput):
        parse(JSON(pydantic_model=CreditApplication), json.dumps({**APPLICATION, "age": "5"}))


# ---------------------------------------------------------------- schema == server


NUMPY_BODIES = [
    "[[5.1, 3.5, 1.4, 0.2]]", "[[5, 3, 1, 0], [6, 2, 4, 1]]", "[[5, 3, 1, 0], [6.2, 2.9, 4.3, 1.3]]", "[[1, 2, 3]]",
    "[[1, 2, 3, 4, 5]]", "[[true, 2, 3, 4]]", '[["5.1", 3.5, 1.4, 0.2]]', "[[null, 1, 2, 3]]", "[1, 2, 3, 4]", "5",
    '{"a": 1}', "[[[1, 2, 3, 4]]]", "[]", "[[]]",
]  # fmt: skip


@pytest.mark.parametrize(
    "descriptor",
    [NumpyNdarray(dtype="float64", shape=(-1, 4), enforce_dtype=True, enforce_shape=True),
     NumpyNdarray(dtype="int64", shape=(-1, 4), enforce_dtype=True, enforce_shape=True),
     NumpyNdarray(dtype="float32", shape=(2, 4), enforce_dtype=True, enforce_shape=True)],
    ids=repr,
)  # fmt: skip
def test_numpy_accepts_exactly_what_its_schema_allows(descriptor) -> None:  # noqa: ANN001
    schema = request_schema(descriptor)
    verdicts = {body: (allowed(schema, body), status_of(descriptor, body)) for body in NUMPY_BODIES}
    for body, (ok, status) in verdicts.items():
        assert ok == (status == 200), f"{body}: schema {'allows' if ok else 'forbids'} it, server answers {status}"
        assert status in (200, 422)
    assert any(ok for ok, _ in verdicts.values()) and not all(ok for ok, _ in verdicts.values())


def test_numpy_refusals_name_the_value() -> None:
    d = NumpyNdarray(dtype="float64", enforce_dtype=True)
    with pytest.raises(BadInput, match=r"'5.1' at index \[0, 0\] is not a valid float64"):
        parse(d, '[["5.1", 1]]')
    with pytest.raises(BadInput, match=r"true at index \[1, 1\] is not a number"):
        parse(NumpyNdarray(), "[[1, 2], [3, true]]")  # numpy would make it a silent 1
    with pytest.raises(BadInput, match="expected a JSON array, found a string"):
        parse(NumpyNdarray(), '"abc"')
    assert parse(NumpyNdarray(), "[[true, false]]").dtype == bool  # booleans alone stay booleans


FRAME_BODIES = [
    '[{"a": 1, "b": 2.5}]', '[{"a": 1, "b": null}]', '[{"a": 1, "b": 2.5, "c": "extra"}]', '[{"b": 2.5, "a": 1}]',
    '[{"a": 1}]', '[{"a": 1, "b": 2}, {"a": 2}]', '[{"a": "1", "b": 2}]', '[{"a": true, "b": 2}]', '[{"a": 1, "b": false}]',
    '[{"a": 1.5, "b": 2}]', "[]", "[[1, 2.5]]", "[[1, 2, 3]]", '"table"', "[{}]",
]  # fmt: skip


@pytest.mark.parametrize(
    "descriptor",
    [PandasDataFrame(columns=["a", "b"], dtype="float64", enforce_dtype=True),
     PandasDataFrame(columns=["a", "b"], dtype={"a": "int64", "b": "float64"}, enforce_dtype=True),
     DataframeInput(columns=["a", "b"], dtype="float64")],
    ids=repr,
)  # fmt: skip
def test_dataframe_with_declared_columns_accepts_exactly_what_its_schema_allows(descriptor) -> None:  # noqa: ANN001
    schema = request_schema(descriptor)
    enforced = descriptor.enforce_dtype
    for body in FRAME_BODIES:
        if not enforced and any(cell in body for cell in ('"1"', "true", "false", "extra")):
            continue  # without enforce_dtype cells are untyped: the model decides
        ok, status = allowed(schema, body), status_of(descriptor, body)
        assert ok == (status == 200), f"{body}: schema {'allows' if ok else 'forbids'} it, server answers {status}"
    record = schema["anyOf"][0]["items"] if "anyOf" in schema else schema["items"]
    assert record["required"] == ["a", "b"]


def test_a_missing_declared_column_is_named() -> None:
    d = PandasDataFrame(columns=["a", "b"])
    with pytest.raises(BadInput) as info:
        parse(d, '[{"a": 1, "b": 2}, {"a": 3}]')
    assert info.value.http_status == 422 and "row 2 is missing column(s) 'b'" in str(info.value)
    with pytest.raises(BadInput, match="has no rows"):
        parse(d, "[]")


def test_csv_body_pattern_matches_what_the_server_reads() -> None:
    import re

    d = PandasDataFrame(columns=["x", "n"], dtype={"x": "float64", "n": "int64"}, enforce_dtype=True)
    pattern = request_schema(d, mime="text/csv")["pattern"]
    for body in ["x,n\n1.5,2\n", "1.5,2", ",3\r\n2,-4", "x,n\n", "x,n\n1.5,abc\n", "x,n\n1.5\n", "hello"]:
        ok = re.search(pattern, body) is not None
        assert ok == (status_of(d, body, "text/csv") == 200), body


# ---------------------------------------------------------------- the model's input contract


def _service(contract: dict | None, runners: int = 1) -> mlpack.Service:
    # a stand-in for a runner: the contract is all the document reads of it
    models = [SimpleNamespace(info=SimpleNamespace(input_contract=contract)) for _ in range(runners)]
    svc = mlpack.Service("contracted", runners=[SimpleNamespace(name=f"r{i}", model=m) for i, m in enumerate(models)])

    def predict(arr):  # noqa: ANN001, ANN202
        return arr

    def fixed(arr):  # noqa: ANN001, ANN202
        return arr

    def classify(app):  # noqa: ANN001, ANN202
        return app

    svc.api(input=NumpyNdarray(), output=NumpyNdarray())(predict)
    svc.api(input=NumpyNdarray(dtype="float64", shape=(-1, 2), enforce_dtype=True, enforce_shape=True), output=JSON())(fixed)
    svc.api(input=JSON(pydantic_model=CreditApplication), output=JSON())(classify)
    return svc


def _body_schema(spec: dict, route: str) -> dict:
    return spec["paths"][route]["post"]["requestBody"]["content"]["application/json"]["schema"]


def test_open_numpy_input_takes_its_schema_from_the_models_contract() -> None:
    spec = _service(IRIS_CONTRACT).openapi_spec()
    validate(spec)
    row = _body_schema(spec, "/predict")["items"]
    assert row["minItems"] == row["maxItems"] == 4 and row["items"] == {"type": "number"}
    assert _body_schema(spec, "/fixed")["items"]["maxItems"] == 2  # declared shapes win
    assert "items" not in _body_schema(_service(None).openapi_spec(), "/predict")  # no contract: open
    assert "items" not in _body_schema(_service(IRIS_CONTRACT, runners=2).openapi_spec(), "/predict")  # which runner?


def test_a_float32_contract_bounds_the_numbers_of_every_input() -> None:
    spec = _service({**IRIS_CONTRACT, "dtype": "float32"}).openapi_spec()
    validate(spec)
    import numpy as np

    props = spec["components"]["schemas"]["CreditApplication"]["properties"]
    debt, age = props["debt"], props["age"]
    assert debt["exclusiveMaximum"] is True and debt["maximum"] == -debt["minimum"]
    assert _body_schema(spec, "/predict")["items"]["items"]["maximum"] == debt["maximum"]
    with np.errstate(over="ignore"):  # the limits are exact: inside is finite as float32, the limit is not
        assert np.isinf(np.float32(debt["maximum"])) and np.isfinite(np.float32(np.nextafter(debt["maximum"], 0)))
        assert np.isfinite(np.float32(np.float64(age["maximum"]))) and np.isinf(np.float32(np.float64(age["maximum"] + 1)))
    plain = _service(IRIS_CONTRACT).openapi_spec()["components"]["schemas"]["CreditApplication"]["properties"]["debt"]
    assert "maximum" not in plain


# ---------------------------------------------------------------- the document


def test_every_api_lists_every_status_with_the_error_schema() -> None:
    spec = _service(None).openapi_spec()
    validate(spec)
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and set(error["properties"]) == {"error", "details", "error_id"}
    for path in ("/predict", "/fixed", "/classify"):
        responses = spec["paths"][path]["post"]["responses"]
        assert set(responses) == {"200", "400", "413", "415", "422", "500", "503", "504"}
        for code in set(responses) - {"200"}:
            assert responses[code]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "Retry-After" in spec["paths"]["/predict"]["post"]["responses"]["503"]["headers"]


def test_openapi_does_not_import_the_service_module() -> None:
    code = "import sys, mlpack.openapi; print('mlpack.service' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_0x_dataframe_input_documents_every_shape_it_reads() -> None:
    d = DataframeInput()
    schema = request_schema(d)
    assert "split object" in schema["description"]
    for body in ['[{"a": 1}]', "[[1, 2]]"]:
        assert allowed(schema, body) and status_of(d, body) == 200
    split = '{"columns": ["a", "b"], "data": [[1, 2]]}'
    assert parse(d, split).columns.tolist() == ["a", "b"]  # read although OpenAPI 3.0 cannot type it
    assert status_of(d, '"a string"') == 422 and not allowed(schema, '"a string"')
