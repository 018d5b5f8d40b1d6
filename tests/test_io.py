"""IO descriptors: HTTP, CLI, chunked files, output writers, OpenAPI."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel
from starlette.requests import Request

from mlpack.exceptions import BadInput, ConfigError
from mlpack.io import JSON, ChunkWriter, NumpyNdarray, PandasDataFrame, Text, output_format
from tests.fixtures.credit import CreditApplication


class Address(BaseModel):
    city: str


class Customer(BaseModel):
    name: str
    address: Address


APPLICATION = {
    "seniority": 3, "home": "owner", "time": 36, "age": 26, "marital": "single", "records": "no",
    "job": "freelance", "expenses": 35, "income": 0.0, "assets": 60000.0, "debt": 3000.0,
    "amount": 800, "price": 1000,
}  # fmt: skip


def make_request(body: bytes, content_type: str | None = "application/json") -> Request:
    headers = [(b"content-type", content_type.encode())] if content_type is not None else []
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": headers, "query_string": b""}
    return Request(scope, receive)


def read(descriptor, body: bytes | str, content_type: str | None = "application/json"):
    if isinstance(body, str):
        body = body.encode()
    return asyncio.run(descriptor.from_http_request(make_request(body, content_type)))


def bad(descriptor, body: bytes | str, content_type: str | None = "application/json") -> BadInput:
    with pytest.raises(BadInput) as info:
        read(descriptor, body, content_type)
    return info.value


# ---------------------------------------------------------------- import cost


def test_import_mlpack_io_imports_no_heavy_library():
    code = (
        "import sys, mlpack.io\n"
        "heavy = [m for m in ('numpy', 'pandas', 'starlette', 'pydantic', 'orjson', 'pyarrow') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ---------------------------------------------------------------- JSON


def test_json_round_trip_without_model():
    d = JSON()
    assert read(d, '{"a": [1, 2], "b": null}') == {"a": [1, 2], "b": None}
    response = d.to_http_response({"ok": True}, status_code=201)
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.body) == {"ok": True}


def test_json_with_pydantic_model_gives_model_instance():
    d = JSON(pydantic_model=CreditApplication)
    app = read(d, json.dumps(APPLICATION))
    assert isinstance(app, CreditApplication)
    assert app.model_dump() == APPLICATION
    with pytest.warns(DeprecationWarning):  # the 1.0 tutorial calls .dict(): pydantic 2 still answers
        assert app.dict() == APPLICATION


def test_json_validation_error_is_422_naming_the_fields():
    d = JSON(pydantic_model=CreditApplication)
    body = {**APPLICATION, "income": "lots"}
    del body["seniority"]
    err = bad(d, json.dumps(body))
    assert err.http_status == 422
    assert "seniority" in str(err) and "income" in str(err) and "CreditApplication" in str(err)
    locs = {tuple(e["loc"]) for e in err.details}
    assert locs == {("seniority",), ("income",)}
    assert all({"loc", "msg", "type"} <= set(e) for e in err.details)


def test_json_validate_json_false_passes_the_dict():
    d = JSON(pydantic_model=CreditApplication, validate_json=False)
    assert read(d, '{"anything": 1}') == {"anything": 1}


@pytest.mark.parametrize("descriptor", [JSON(), JSON(pydantic_model=CreditApplication), NumpyNdarray(), PandasDataFrame()])
def test_malformed_json_is_400_with_position(descriptor):
    err = bad(descriptor, b'{"a": 1,, }')
    assert err.http_status == 400
    assert "not valid JSON" in str(err) and "line 1 column" in str(err)


@pytest.mark.parametrize("descriptor", [JSON(), JSON(pydantic_model=CreditApplication), NumpyNdarray()])
def test_empty_body_is_400(descriptor):
    err = bad(descriptor, b"  ")
    assert err.http_status == 400 and "empty" in str(err)


@pytest.mark.parametrize("descriptor", [JSON(), NumpyNdarray(), PandasDataFrame()])
def test_wrong_content_type_is_415_naming_accepted_types(descriptor):
    err = bad(descriptor, b"[[1]]", "application/x-www-form-urlencoded")
    assert err.http_status == 415
    assert "application/json" in str(err) and "x-www-form-urlencoded" in str(err)


def test_text_refuses_json_with_415():
    err = bad(Text(), b'"hi"', "application/json")
    assert err.http_status == 415 and "text/plain" in str(err)


@pytest.mark.parametrize(
    "content_type", [None, "application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json", "*/*"]
)
def test_json_content_type_variants_are_accepted(content_type):
    assert read(JSON(), b"[1]", content_type) == [1]


def test_json_body_in_other_charset():
    body = '{"name": "Zoë"}'.encode("latin-1")
    assert read(JSON(), body, "application/json; charset=latin-1") == {"name": "Zoë"}


def test_json_output_handles_numpy_pandas_and_models():
    app = CreditApplication(**APPLICATION)
    obj = {
        "array": np.arange(6).reshape(2, 3)[:, ::2],  # a non-contiguous view
        "scalar": np.float32(0.5),
        "int": np.int64(3),
        "series": pd.Series([1.0, np.nan]),
        "frame": pd.DataFrame({"a": [1, 2]}),
        "when": pd.Timestamp("2024-01-02T03:04:05"),
        "model": app,
    }
    out = json.loads(JSON().to_http_response(obj).body)
    assert out["array"] == [[0, 2], [3, 5]]
    assert out["scalar"] == 0.5 and out["int"] == 3
    assert out["series"] == [1.0, None]
    assert out["frame"] == [{"a": 1}, {"a": 2}]
    assert out["when"].startswith("2024-01-02T03:04:05")
    assert out["model"] == APPLICATION
    assert json.loads(JSON().to_http_response(app).body) == APPLICATION


# ---------------------------------------------------------------- NumpyNdarray


def test_numpy_round_trip():
    d = NumpyNdarray(dtype="float32", shape=(-1, 4))
    arr = read(d, "[[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]")
    assert arr.dtype == np.float32 and arr.shape == (2, 4)
    response = d.to_http_response(np.array([0, 2]))
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.body) == [0, 2]


def test_numpy_enforce_shape_names_expected_and_got():
    d = NumpyNdarray(shape=(-1, 4), enforce_shape=True)
    assert read(d, "[[1, 2, 3, 4]]").shape == (1, 4)
    err = bad(d, "[[1, 2, 3]]")
    assert err.http_status == 422
    assert "(-1, 4)" in str(err) and "(1, 3)" in str(err)
    assert bad(d, "[1, 2, 3, 4]").http_status == 422  # 1-D is not (-1, 4)


def test_numpy_shape_none_means_any():
    d = NumpyNdarray(shape=(None, 2), enforce_shape=True)
    assert read(d, "[[1, 2], [3, 4], [5, 6]]").shape == (3, 2)


def test_numpy_enforce_dtype_refuses_values_that_cannot_be_cast():
    d = NumpyNdarray(dtype="float64", enforce_dtype=True)
    err = bad(d, '[[1, 2], [3, "abc"]]')
    assert err.http_status == 422
    assert "'abc'" in str(err) and "[1, 1]" in str(err)
    ints = NumpyNdarray(dtype="int64", enforce_dtype=True)
    assert bad(ints, "[1, 2.5]").http_status == 422
    assert read(ints, "[1, 2.0]").tolist() == [1, 2]


def test_numpy_without_enforcement_casts_best_effort():
    d = NumpyNdarray(dtype="float32", shape=(-1, 4))
    assert read(d, "[1, 2]").dtype == np.float32  # shape documents only
    kept = read(d, '["a", "b"]')
    assert kept.tolist() == ["a", "b"]


def test_numpy_ragged_is_422_naming_the_row():
    err = bad(NumpyNdarray(), "[[1, 2], [3, 4], [5]]")
    assert err.http_status == 422 and "row 3" in str(err)


def test_numpy_enforcement_needs_a_dtype_or_shape():
    with pytest.raises(ConfigError):
        NumpyNdarray(enforce_dtype=True)
    with pytest.raises(ConfigError):
        NumpyNdarray(enforce_shape=True)


# ---------------------------------------------------------------- PandasDataFrame

EXPECTED = pd.DataFrame({"a": [1, 2], "b": [3.5, 4.5]})


@pytest.mark.parametrize(
    "body",
    [
        '[{"a": 1, "b": 3.5}, {"a": 2, "b": 4.5}]',  # records
        '{"columns": ["a", "b"], "index": [0, 1], "data": [[1, 3.5], [2, 4.5]]}',  # split
        '{"a": {"0": 1, "1": 2}, "b": {"0": 3.5, "1": 4.5}}',  # columns
        '{"a": [1, 2], "b": [3.5, 4.5]}',  # columns as lists
    ],
)
def test_dataframe_reads_pandas_orients(body):
    df = read(PandasDataFrame(), body)
    assert list(df.columns) == ["a", "b"]
    assert df["a"].tolist() == [1, 2] and df["b"].tolist() == [3.5, 4.5]


def test_dataframe_index_orient_and_values():
    df = read(PandasDataFrame(orient="index"), '{"x": {"a": 1, "b": 3.5}, "y": {"a": 2, "b": 4.5}}')
    assert df.index.tolist() == ["x", "y"] and df["b"].tolist() == [3.5, 4.5]
    df = read(PandasDataFrame(orient="values", columns=["a", "b"]), "[[1, 3.5], [2, 4.5]]")
    pd.testing.assert_frame_equal(df, EXPECTED)
    bare = read(PandasDataFrame(), "[[5.1, 3.5, 1.4, 0.2]]")
    assert bare.shape == (1, 4)


def test_dataframe_reads_csv_body():
    df = read(PandasDataFrame(), "a,b\n1,3.5\n2,4.5\n", "text/csv; charset=utf-8")
    pd.testing.assert_frame_equal(df, EXPECTED)
    # declared columns name a headerless CSV
    df = read(PandasDataFrame(columns=["a", "b"]), "1,3.5\n2,4.5\n", "text/csv")
    pd.testing.assert_frame_equal(df, EXPECTED)


def test_dataframe_columns_select_and_missing_column_is_422():
    d = PandasDataFrame(columns=["b", "a"])
    df = read(d, '[{"a": 1, "b": 2, "c": 3}]')
    assert list(df.columns) == ["b", "a"]
    err = bad(d, '[{"a": 1}]')
    assert err.http_status == 422 and "'b'" in str(err)


def test_dataframe_enforce_dtype_names_row_and_column():
    d = PandasDataFrame(dtype={"a": "int64", "b": "float64"}, enforce_dtype=True)
    df = read(d, '[{"a": 1, "b": 2}, {"a": 2.0, "b": null}]')
    assert df["a"].dtype == np.int64 and df["b"].dtype == np.float64 and np.isnan(df["b"][1])
    # JSON is typed: as the OpenAPI schema says, a string or a boolean is not a number
    for cell, shown in [('"2.5"', "'2.5'"), ("true", "True"), ("false", "False")]:
        err = bad(d, f'[{{"a": 1, "b": 1.5}}, {{"a": 1, "b": {cell}}}]')
        assert err.http_status == 422 and "row 2" in str(err) and f"{shown} is not a number" in str(err), str(err)
    err = bad(d, '[{"a": true, "b": 1.5}]')
    assert err.http_status == 422 and "column 'a': True is not a number" in str(err)
    # CSV cells carry no types: numbers in quotes are still numbers there
    assert read(d, 'a,b\n1,"2.5"\n', "text/csv")["b"].tolist() == [2.5]
    err = bad(d, '[{"a": 1, "b": 2}, {"a": 2, "b": "lots"}]')
    assert err.http_status == 422
    assert "row 2" in str(err) and "'b'" in str(err) and "'lots'" in str(err)


def test_dataframe_enforce_shape():
    d = PandasDataFrame(shape=(-1, 2), enforce_shape=True)
    assert read(d, "[[1, 2]]").shape == (1, 2)
    err = bad(d, "[[1, 2, 3]]")
    assert err.http_status == 422 and "(-1, 2)" in str(err)


@pytest.mark.parametrize(
    ("orient", "expected"),
    [
        ("records", [{"a": 1, "b": 3.5}, {"a": 2, "b": 4.5}]),
        ("split", {"index": [0, 1], "columns": ["a", "b"], "data": [[1, 3.5], [2, 4.5]]}),
        ("columns", {"a": {"0": 1, "1": 2}, "b": {"0": 3.5, "1": 4.5}}),
        ("index", {"0": {"a": 1, "b": 3.5}, "1": {"a": 2, "b": 4.5}}),
        ("values", [[1, 3.5], [2, 4.5]]),
    ],
)
def test_dataframe_output_orients_round_trip(orient, expected):
    d = PandasDataFrame(orient=orient)
    body = d.to_http_response(EXPECTED).body
    assert json.loads(body) == expected
    back = read(d, body)
    assert back.to_numpy().tolist() == EXPECTED.to_numpy().tolist()


def test_dataframe_output_of_series_and_arrays():
    d = PandasDataFrame()
    assert json.loads(d.to_http_response(pd.Series([0, 1])).body) == [0, 1]
    assert json.loads(d.to_http_response(np.array([0, 1])).body) == [0, 1]
    assert json.loads(d.to_http_response(np.array([[1, 2]])).body) == [{"0": 1, "1": 2}]


def test_dataframe_bad_orient_is_a_config_error():
    with pytest.raises(ConfigError):
        PandasDataFrame(orient="sideways")


# ---------------------------------------------------------------- Text


def test_text_round_trip():
    d = Text()
    assert read(d, "héllo", "text/plain; charset=utf-8") == "héllo"
    assert read(d, "plain", None) == "plain"
    assert read(d, "héllo".encode("latin-1"), "text/plain; charset=latin-1") == "héllo"
    response = d.to_http_response("done")
    assert response.body == b"done" and response.headers["content-type"].startswith("text/plain")
    assert bad(d, b"\xff\xfe", "text/plain").http_status == 400


# ---------------------------------------------------------------- through a real app


@pytest.mark.filterwarnings("ignore:Using .httpx.")  # starlette's TestClient prefers httpx2
def test_descriptors_behind_a_starlette_app():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    inp, out = JSON(pydantic_model=CreditApplication), JSON()

    async def classify(request):
        try:
            app = await inp.from_http_request(request)
        except BadInput as exc:
            return JSONResponse({"error": str(exc), "details": exc.details}, status_code=exc.http_status)
        return out.to_http_response({"status": "APPROVED" if app.income > 10 else "DECLINED"})

    client = TestClient(Starlette(routes=[Route("/classify", classify, methods=["POST"])]))
    assert client.post("/classify", json={**APPLICATION, "income": 100}).json() == {"status": "APPROVED"}
    response = client.post("/classify", json={"home": "owner"})
    assert response.status_code == 422 and "seniority" in response.json()["error"]
    assert client.post("/classify", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert client.post("/classify", content=b"x", headers={"content-type": "text/plain"}).status_code == 415


# ---------------------------------------------------------------- CLI


def test_from_cli_text_validates_like_http():
    arr = NumpyNdarray(dtype="float32").from_cli("[[5.1,3.5,1.4,0.2]]")
    assert arr.dtype == np.float32 and arr.shape == (1, 4)
    assert isinstance(JSON(pydantic_model=CreditApplication).from_cli(json.dumps(APPLICATION)), CreditApplication)
    with pytest.raises(BadInput) as info:
        JSON(pydantic_model=CreditApplication).from_cli('{"age": 1}')
    assert info.value.http_status == 422 and "seniority" in str(info.value)
    with pytest.raises(BadInput, match="not valid JSON"):
        NumpyNdarray().from_cli("[[1,")
    assert Text().from_cli("as is") == "as is"
    pd.testing.assert_frame_equal(PandasDataFrame().from_cli("a,b\n1,3.5\n2,4.5"), EXPECTED)
    assert NumpyNdarray().from_cli("1,2\n3,4", fmt="csv").tolist() == [[1, 2], [3, 4]]
    with pytest.raises(BadInput):
        JSON().from_cli()


def test_from_cli_file(tmp_path):
    (tmp_path / "x.json").write_text("[[1, 2], [3, 4]]")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n3,4\n")
    (tmp_path / "t.txt").write_text("line one\nline two\n")
    assert NumpyNdarray().from_cli(path=tmp_path / "x.json").tolist() == [[1, 2], [3, 4]]
    assert NumpyNdarray().from_cli(path=tmp_path / "x.csv").tolist() == [[1, 2], [3, 4]]
    assert PandasDataFrame().from_cli(path=tmp_path / "x.csv")["b"].tolist() == [2, 4]
    assert JSON().from_cli(path=tmp_path / "x.csv") == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]
    assert Text().from_cli(path=tmp_path / "t.txt") == "line one\nline two\n"
    with pytest.raises(BadInput, match="no such file"):
        NumpyNdarray().from_cli(path=tmp_path / "missing.csv")


def test_to_cli_formats():
    d = NumpyNdarray()
    assert d.to_cli(np.array([0, 1])) == "[0,1]"
    assert d.to_cli(np.array([0, 1]), "jsonl") == "0\n1"
    assert d.to_cli(np.array([0, 1]), "csv") == "result\n0\n1"
    assert "result" in d.to_cli(np.array([0, 1]), "table")
    rows = [{"status": "APPROVED", "p": 0.9}]
    assert JSON().to_cli(rows, "csv") == "status,p\nAPPROVED,0.9"
    assert json.loads(JSON().to_cli({"status": "APPROVED"})) == {"status": "APPROVED"}
    assert json.loads(PandasDataFrame(orient="split").to_cli(EXPECTED))["columns"] == ["a", "b"]
    assert Text().to_cli("hi", "table") == "hi"
    assert json.loads(Text().to_cli("hi")) == "hi"
    with pytest.raises(BadInput, match="json, jsonl, csv, table"):
        d.to_cli(np.array([0]), "xml")


def test_output_format_from_extension():
    assert output_format("out.jsonl") == "jsonl"
    assert output_format("out.csv") == "csv"
    assert output_format("out.json") == "json"
    assert output_format(None) == "json"
    assert output_format("out.jsonl", "csv") == "csv"


# ---------------------------------------------------------------- files in chunks

N_ROWS = 2503
CHUNK = 500


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "sepal_length": rng.normal(5.8, 0.8, N_ROWS).round(2),
            "sepal_width": rng.normal(3.0, 0.4, N_ROWS).round(2),
            "petal_length": rng.normal(3.7, 1.7, N_ROWS).round(2),
            "petal_width": np.arange(N_ROWS, dtype=float),  # the order is visible
        }
    )


def write_table(df: pd.DataFrame, path: Path) -> Path:
    fmt = path.suffix
    if fmt == ".csv":
        df.to_csv(path, index=False)
    elif fmt == ".json":
        df.to_json(path, orient="records")
    elif fmt == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    elif fmt == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=700)
    return path


def check_sizes(chunks: list) -> None:
    sizes = [len(c) for c in chunks]
    assert all(s <= CHUNK for s in sizes)
    assert sum(sizes) == N_ROWS
    assert len(chunks) >= N_ROWS // CHUNK


FORMATS = [".csv", ".json", ".jsonl", ".parquet"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_numpy_chunks_concatenate_to_the_file(tmp_path, table, suffix):
    path = write_table(table, tmp_path / f"iris{suffix}")
    chunks = list(NumpyNdarray(dtype="float32").iter_file(path, chunk_size=CHUNK))
    check_sizes(chunks)
    assert all(isinstance(c, np.ndarray) and c.dtype == np.float32 for c in chunks)
    np.testing.assert_allclose(np.concatenate(chunks), table.to_numpy(np.float32))


@pytest.mark.parametrize("suffix", FORMATS)
def test_dataframe_chunks_concatenate_to_the_file(tmp_path, table, suffix):
    path = write_table(table, tmp_path / f"iris{suffix}")
    chunks = list(PandasDataFrame().iter_file(path, chunk_size=CHUNK))
    check_sizes(chunks)
    whole = pd.concat(chunks)
    assert list(whole.columns) == list(table.columns)
    np.testing.assert_allclose(whole.to_numpy(float), table.to_numpy(float))


@pytest.mark.parametrize("suffix", FORMATS)
def test_json_chunks_are_validated_records(tmp_path, suffix):
    rows = pd.DataFrame([{**APPLICATION, "seniority": i} for i in range(N_ROWS)])
    path = write_table(rows, tmp_path / f"apps{suffix}")
    chunks = list(JSON(pydantic_model=CreditApplication).iter_file(path, chunk_size=CHUNK))
    check_sizes(chunks)
    flat = [app for chunk in chunks for app in chunk]
    assert all(isinstance(app, CreditApplication) for app in flat)
    assert [app.seniority for app in flat] == list(range(N_ROWS))
    plain = list(JSON().iter_file(path, chunk_size=CHUNK))
    assert plain[0][0]["home"] == "owner"


def test_json_file_in_split_orient(tmp_path, table):
    path = tmp_path / "split.json"
    table.to_json(path, orient="split", index=False)
    chunks = list(NumpyNdarray().iter_file(path, chunk_size=CHUNK))
    check_sizes(chunks)
    np.testing.assert_allclose(np.concatenate(chunks), table.to_numpy())
    frames = list(PandasDataFrame().iter_file(path, chunk_size=CHUNK))
    assert list(frames[0].columns) == list(table.columns)
    path = tmp_path / "columns.json"
    table.to_json(path, orient="columns")
    np.testing.assert_allclose(pd.concat(PandasDataFrame().iter_file(path, chunk_size=CHUNK)).to_numpy(), table.to_numpy())


def test_jsonl_is_read_lazily(tmp_path, table):
    path = write_table(table, tmp_path / "iris.jsonl")
    with path.open("a") as f:
        f.write("{not json}\n")
    chunks = NumpyNdarray().iter_file(path, chunk_size=CHUNK)
    first = next(chunks)  # the bad last line is not read yet
    assert len(first) == CHUNK
    with pytest.raises(BadInput, match=f"line {N_ROWS + 1} of .*iris.jsonl is not valid JSON"):
        list(chunks)


def test_headerless_numeric_csv(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("1,2\n3,4\n\n5,6\n")
    chunks = list(NumpyNdarray().iter_file(path, chunk_size=2))
    assert np.concatenate(chunks).tolist() == [[1, 2], [3, 4], [5, 6]]


def test_bad_value_in_csv_names_row_and_column(tmp_path, table):
    table = table.astype(object)
    table.loc[1234, "petal_width"] = "abc"
    path = write_table(table, tmp_path / "iris.csv")
    with pytest.raises(BadInput) as info:
        list(NumpyNdarray().iter_file(path, chunk_size=CHUNK))
    message = str(info.value)
    assert "row 1235 (line 1236 of" in message and "'petal_width'" in message and "'abc' is not a number" in message
    with pytest.raises(BadInput) as info:
        list(PandasDataFrame(dtype="float64", enforce_dtype=True).iter_file(path, chunk_size=CHUNK))
    assert "row 1235" in str(info.value) and "'petal_width'" in str(info.value)


def test_ragged_csv_row_names_the_row(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b,c\n1,2,3\n4,5,6\n7,8\n9,10,11\n")
    with pytest.raises(BadInput, match=r"row 3 \(line 4 of .*x.csv\): expected 3 fields .* found 2"):
        list(NumpyNdarray().iter_file(path, chunk_size=2))
    path.write_text("a,b,c\n1,2,3\n4,5,6,7\n")
    with pytest.raises(BadInput, match=r"row 2 \(line 3 of .*x.csv\): expected 3 fields, found 4"):
        list(PandasDataFrame().iter_file(path))
    with pytest.raises(BadInput, match="row 2"):
        list(NumpyNdarray().iter_file(path))


def test_missing_declared_column_in_file(tmp_path, table):
    path = write_table(table, tmp_path / "iris.csv")
    with pytest.raises(BadInput, match="missing column.*'species'"):
        list(PandasDataFrame(columns=["sepal_length", "species"]).iter_file(path))
    chunks = list(PandasDataFrame(columns=["petal_width", "sepal_length"]).iter_file(path, chunk_size=CHUNK))
    assert list(chunks[0].columns) == ["petal_width", "sepal_length"]


def test_jsonl_record_missing_a_key_names_the_row(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1, "b": 2}\n\n{"a": 3}\n')
    with pytest.raises(BadInput, match=r"row 2 \(line 3 of .*\): missing column.*'b'"):
        list(NumpyNdarray().iter_file(path))


def test_invalid_record_in_file_names_the_row(tmp_path):
    path = tmp_path / "apps.jsonl"
    path.write_text("\n".join(json.dumps({**APPLICATION, "age": age}) for age in (30, 40, "old")) + "\n")
    with pytest.raises(BadInput) as info:
        list(JSON(pydantic_model=CreditApplication).iter_file(path))
    assert info.value.http_status == 422
    assert "row 3 (line 3" in str(info.value) and "age" in str(info.value)


def test_unknown_file_format_names_the_allowed_ones(tmp_path):
    path = tmp_path / "x.xlsx"
    path.write_text("")
    with pytest.raises(BadInput) as info:
        NumpyNdarray().iter_file(path)
    for fmt in ("csv", "json", "jsonl", "parquet"):
        assert fmt in str(info.value)
    assert len(list(NumpyNdarray().iter_file(path, fmt="csv"))) == 0  # an explicit format wins


def test_missing_file_is_reported_before_iterating(tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        NumpyNdarray().iter_file(tmp_path / "nope.csv")


def test_text_file_chunks_are_lines(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("".join(f"line {i}\n" for i in range(25)))
    chunks = list(Text().iter_file(path, chunk_size=10))
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert chunks[2][-1] == "line 24"


# ---------------------------------------------------------------- multi-chunk output


def write_chunks(descriptor, results, fmt) -> str:
    buf = io.StringIO()
    with descriptor.writer(buf, fmt) as writer:
        for result in results:
            writer.write(result)
    return buf.getvalue()


def test_json_output_of_many_chunks_is_one_document():
    results = [np.array([0, 1]), np.array([], dtype=int), np.array([2]), np.array([1, 0])]
    text = write_chunks(NumpyNdarray(), results, "json")
    assert json.loads(text) == [0, 1, 2, 1, 0]
    records = [[{"status": "A"}], [{"status": "B"}, {"status": "C"}]]
    assert json.loads(write_chunks(JSON(), records, "json")) == [{"status": s} for s in "ABC"]
    assert json.loads(write_chunks(JSON(), [], "json")) == []
    assert json.loads(write_chunks(JSON(), [[], [{"a": 1}]], "json")) == [{"a": 1}]


def test_jsonl_output_of_many_chunks():
    frames = [pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [3]})]
    lines = write_chunks(PandasDataFrame(), frames, "jsonl").splitlines()
    assert [json.loads(line) for line in lines] == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_csv_output_writes_the_header_once():
    frames = [pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), pd.DataFrame({"a": [3], "b": ["z"]})]
    text = write_chunks(PandasDataFrame(), frames, "csv")
    assert text.count("a,b") == 1
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(text)), pd.concat(frames, ignore_index=True))
    preds = write_chunks(NumpyNdarray(), [np.array([0, 1]), np.array([2])], "csv")
    assert preds == "result\n0\n1\n2\n"


@pytest.mark.parametrize(
    "chunks",
    [
        [np.array([1, -2, 3], dtype=np.int8), np.array([], dtype=np.int64), np.array([2**62, 0], dtype=np.uint64)],
        [np.array([], dtype=np.int32)],  # the header alone, as pandas writes it
        [np.array([True, False]), np.array([False])],
        [np.array([0.5, np.nan]), np.array([1, 2])],  # a float chunk goes through pandas, then integers
        [np.array([1, 2]), np.array([[1, 2], [3, 4]])[:, 0], pd.Series([7, 8], name="result")],
        # labels 0-9 as bytes: every digit, a strided view, narrow and wide types; then 10 and -1 again
        [np.arange(10), np.arange(20)[::-3] % 10, np.array([9, 0], dtype=np.uint8), np.array([5], dtype=np.int16)],
        [np.array([3, 3]), np.array([9, 10]), np.array([0, -1]), np.array([7])],
    ],
)
def test_csv_of_integer_results_is_what_pandas_writes(chunks):
    """The fast path for 1-D integer and boolean arrays writes pandas' bytes, in any mix of chunks."""
    buf = io.StringIO()
    with ChunkWriter(buf, "csv") as writer:
        assert [writer.write(c) for c in chunks] == [len(c) for c in chunks]
    frames = [c.to_frame() if isinstance(c, pd.Series) else pd.DataFrame({"result": c}) for c in chunks]
    expected = "".join(f.to_csv(index=False, header=i == 0, lineterminator="\n") for i, f in enumerate(frames))
    assert buf.getvalue() == expected


def test_chunk_writer_counts_rows():
    buf = io.StringIO()
    writer = ChunkWriter(buf, "jsonl")
    assert writer.write(np.array([[1, 2], [3, 4]])) == 2
    writer.close()
    assert [json.loads(line) for line in buf.getvalue().splitlines()] == [[1, 2], [3, 4]]


# ---------------------------------------------------------------- OpenAPI and spec


def test_openapi_pieces_for_a_pydantic_model():
    d = JSON(pydantic_model=Customer)
    schema = d.openapi_schema()
    assert schema == {"$ref": "#/components/schemas/Customer"}
    schemas = d.openapi_components()
    assert set(schemas) == {"Customer", "Address"}  # the nested model is hoisted
    assert schemas["Customer"]["properties"]["address"] == {"$ref": "#/components/schemas/Address"}
    assert "$defs" not in json.dumps(schemas)
    body = d.openapi_request_body()
    assert body["required"] is True and body["content"]["application/json"]["schema"] == schema
    response = d.openapi_responses()
    assert response["description"] and response["content"]["application/json"]["schema"] == schema
    assert JSON().openapi_components() == {} and NumpyNdarray().openapi_components() == {}
    credit = JSON(pydantic_model=CreditApplication).openapi_components()["CreditApplication"]
    assert set(credit["required"]) == set(APPLICATION)


@pytest.mark.parametrize("version", ["3.0.3", "3.1.0"])
def test_openapi_document_validates(version):
    from openapi_spec_validator import validate

    apis = {
        "classify": (JSON(pydantic_model=Customer), JSON()),
        "predict": (NumpyNdarray(dtype="float32", shape=(-1, 4), enforce_dtype=True, enforce_shape=True), NumpyNdarray()),
        "frame": (PandasDataFrame(columns=["a", "b"], dtype={"a": "int64"}), PandasDataFrame(orient="split")),
        "echo": (Text(), Text()),
    }
    paths, schemas = {}, {}
    for name, (inp, out) in apis.items():
        schemas.update(inp.openapi_components())
        schemas.update(out.openapi_components())
        paths[f"/{name}"] = {"post": {"requestBody": inp.openapi_request_body(), "responses": {"200": out.openapi_responses()}}}
    doc = {"openapi": version, "info": {"title": "t", "version": "1"}, "paths": paths, "components": {"schemas": schemas}}
    validate(doc)
    assert "text/csv" in paths["/frame"]["post"]["requestBody"]["content"]
    assert paths["/echo"]["post"]["requestBody"]["content"]["text/plain"]["schema"] == {"type": "string"}
    predict = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert predict["items"]["items"] == {"type": "number"} and predict["items"]["maxItems"] == 4


def test_to_spec():
    assert JSON(pydantic_model=CreditApplication).to_spec() == {
        "type": "JSON",
        "pydantic_model": "tests.fixtures.credit.CreditApplication",
    }
    spec = NumpyNdarray(dtype=np.float32, shape=(-1, 4)).to_spec()
    assert spec == {"type": "NumpyNdarray", "dtype": "float32", "shape": [-1, 4]}
    spec = PandasDataFrame(orient="split", columns=["a"]).to_spec()
    assert spec == {"type": "PandasDataFrame", "orient": "split", "columns": ["a"]}
    assert Text().to_spec() == {"type": "Text"}
    json.dumps([JSON().to_spec(), PandasDataFrame(dtype={"a": "int64"}).to_spec()])  # plain data for bundle.yaml
