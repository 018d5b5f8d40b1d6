"""Open Inference Protocol v2 against real servers of the examples, with tritonclient unchanged."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as tritonclient  # the dev extra: the client Triton and KServe users have
from tritonclient.utils import InferenceServerException

from .protocol_servers import CREDIT_SAMPLE, example_server, frame_server, shapes_server
from .server import Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def iris_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with example_server("iris", tmp_path_factory.mktemp("iris")) as srv:
        yield srv


@pytest.fixture(scope="module")
def credit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with example_server("credit_risk", tmp_path_factory.mktemp("credit")) as srv:
        yield srv


@pytest.fixture(scope="module")
def sklearn_iris():
    """The example's model, trained again here: SVC on iris is deterministic."""
    from sklearn import datasets, svm

    data = datasets.load_iris()
    return data.data, svm.SVC(gamma="scale").fit(data.data, data.target)


def triton(server: Server):  # noqa: ANN201
    return tritonclient.InferenceServerClient(server.url.removeprefix("http://"))


def test_probes_and_metadata(iris_server: Server) -> None:
    client = triton(iris_server)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("predict") and client.is_model_ready("classify", model_version="1")
    assert not client.is_model_ready("nope")
    server = client.get_server_metadata()
    assert server["name"] == "mlpack" and "binary_tensor_data" in server["extensions"]
    meta = client.get_model_metadata("predict")
    assert meta["name"] == "predict" and meta["versions"] == ["1"]
    # NumpyNdarray() + the model's contract (4 features, float64)
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["output-0"]
    assert client.get_model_metadata("predict", model_version="1") == meta
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        client.get_model_metadata("nope")
    with pytest.raises(InferenceServerException, match="no version '7'"):
        client.get_model_metadata("predict", model_version="7")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_infer_matches_sklearn(iris_server: Server, sklearn_iris, datatype: str, binary: bool) -> None:
    X, clf = sklearn_iris
    rows = X[::7]
    inp = tritonclient.InferInput("input-0", list(rows.shape), datatype)
    inp.set_data_from_numpy(rows.astype(np.float32 if datatype == "FP32" else np.float64), binary_data=binary)
    out = tritonclient.InferRequestedOutput("output-0", binary_data=binary)
    result = triton(iris_server).infer("predict", [inp], outputs=[out], request_id="r-1")
    expected = clf.predict(rows.astype(np.float32).astype(np.float64) if datatype == "FP32" else rows)
    assert result.as_numpy("output-0").tolist() == expected.tolist()
    response = result.get_response()
    assert response["id"] == "r-1" and response["model_name"] == "predict"
    assert ("parameters" in response["outputs"][0]) is binary
    # the native route gives the same answer
    assert httpx.post(iris_server.url + "/predict", json=rows.tolist()).json() == expected.tolist()


def test_infer_defaults_and_other_datatypes(iris_server: Server, sklearn_iris) -> None:
    X, clf = sklearn_iris
    rows = np.rint(X[:5]).astype(np.int64)
    inp = tritonclient.InferInput("input-0", list(rows.shape), "INT64")
    inp.set_data_from_numpy(rows)  # binary by default; no outputs: all outputs, binary
    result = triton(iris_server).infer("classify", [inp], model_version="1")
    assert result.as_numpy("output-0").tolist() == clf.predict(rows.astype(np.float64)).tolist()
    half = tritonclient.InferInput("input-0", [1, 4], "FP16")
    half.set_data_from_numpy(np.array([[6.5, 3.0, 5.5, 2.0]], dtype=np.float16))
    assert triton(iris_server).infer("predict", [half]).as_numpy("output-0").tolist() == [2]
    small = tritonclient.InferInput("input-0", [1, 4], "UINT8")
    small.set_data_from_numpy(np.array([[5, 3, 1, 0]], dtype=np.uint8))
    assert triton(iris_server).infer("predict", [small]).as_numpy("output-0").tolist() == clf.predict([[5, 3, 1, 0]]).tolist()


def test_nested_json_data(iris_server: Server, sklearn_iris) -> None:
    X, clf = sklearn_iris
    body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [3, 4], "data": X[60:63].tolist()}]}
    res = httpx.post(iris_server.url + "/v2/models/predict/infer", json=body)
    assert res.status_code == 200 and res.headers["content-type"] == "application/json"
    (tensor,) = res.json()["outputs"]
    assert tensor == {"name": "output-0", "datatype": "INT64", "shape": [3], "data": clf.predict(X[60:63]).tolist()}


def _raw(header: dict, binary: bytes, url: str) -> httpx.Response:
    head = json.dumps(header).encode()
    return httpx.post(url, content=head + binary, headers={"Inference-Header-Content-Length": str(len(head))})


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [2, 4], "data": [1.0] * 7}]}, 400, "needs 8 values"),
        ({"inputs": [{"name": "input-0", "datatype": "FP99", "shape": [1, 4], "data": [1.0] * 4}]}, 400, "unknown datatype"),
        ({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": ["a"] * 4}]}, 400, "must be numbers"),
        ({"inputs": [{"name": "input-0", "datatype": "INT8", "shape": [1, 4], "data": [1000] * 4}]}, 400, "out of the range"),
        ({"inputs": []}, 400, "non-empty 'inputs'"),
        ({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4], "data": [1.0] * 4}]}, 400, "'shape'"),
        ({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 3], "data": [1.0] * 3}]}, 422, "4 columns"),
        ({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": [1.0] * 4}],
          "outputs": [{"name": "probabilities"}]}, 400, "unknown output"),
    ],
)  # fmt: skip
def test_bad_requests(iris_server: Server, body: dict, status: int, words: str) -> None:
    res = httpx.post(iris_server.url + "/v2/models/predict/infer", json=body)
    assert res.status_code == status, res.text
    assert list(res.json()) == ["error"] and words in res.json()["error"]


def test_bad_binary_and_unknown_model(iris_server: Server) -> None:
    url = iris_server.url + "/v2/models/predict/infer"
    tensor = {"name": "input-0", "datatype": "FP64", "shape": [1, 4], "parameters": {"binary_data_size": 32}}
    data = np.ones(4).tobytes()
    assert _raw({"inputs": [tensor]}, data, url).status_code == 200
    short = _raw({"inputs": [tensor]}, data[:-8], url)
    assert short.status_code == 400 and "runs past" in short.json()["error"]
    extra = _raw({"inputs": [tensor]}, data + b"\0" * 8, url)
    assert extra.status_code == 400 and "no input claims" in extra.json()["error"]
    wrong = _raw({"inputs": [{**tensor, "parameters": {"binary_data_size": 24}}]}, data[:24], url)
    assert wrong.status_code == 400 and "needs 32 bytes" in wrong.json()["error"]
    nan = _raw({"inputs": [tensor]}, np.array([np.nan, 1, 1, 1]).tobytes(), url)
    assert nan.status_code == 422 and "error" in nan.json()  # the model's input contract: no NaN
    res = httpx.post(url, content=b"{not json")
    assert res.status_code == 400 and "not valid JSON" in res.json()["error"]
    res = httpx.post(iris_server.url + "/v2/models/nope/infer", json={"inputs": []})
    assert res.status_code == 404 and res.json() == {"error": "unknown model 'nope'; models: predict, classify"}
    assert "Traceback" not in iris_server.output()


def _bytes_input(name: str, value: str):  # noqa: ANN202
    inp = tritonclient.InferInput(name, [1], "BYTES")
    inp.set_data_from_numpy(np.array([value.encode()], dtype=object))
    return inp


def _field_inputs(rows: list[dict], binary: bool) -> list:
    inputs = []
    for field, first in rows[0].items():
        values = [r[field] for r in rows]
        if isinstance(first, str):
            arr, datatype = np.array([v.encode() for v in values], dtype=object), "BYTES"
        elif isinstance(first, float):
            arr, datatype = np.array(values, dtype=np.float64), "FP64"
        else:
            arr, datatype = np.array(values, dtype=np.int64), "INT64"
        inp = tritonclient.InferInput(field, [len(rows)], datatype)
        inp.set_data_from_numpy(arr, binary_data=binary)
        inputs.append(inp)
    return inputs


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_credit_risk_named_tensors(credit_server: Server, binary: bool) -> None:
    client = triton(credit_server)
    meta = client.get_model_metadata("classify")
    fields = {t["name"]: t["datatype"] for t in meta["inputs"]}
    assert fields["age"] == "INT64" and fields["home"] == "BYTES" and fields["income"] == "FP64"
    assert list(fields) == list(CREDIT_SAMPLE)
    risky = {**CREDIT_SAMPLE, "records": "yes", "job": "partime", "seniority": 0, "assets": 0.0, "amount": 1400, "price": 1400}
    out = tritonclient.InferRequestedOutput("Status", binary_data=binary)
    result = client.infer("classify", _field_inputs([CREDIT_SAMPLE, risky], binary), outputs=[out])
    statuses = [s.decode() if isinstance(s, bytes) else s for s in result.as_numpy("Status").tolist()]
    native = [httpx.post(credit_server.url + "/classify", json=r).json()["Status"] for r in (CREDIT_SAMPLE, risky)]
    assert statuses == native and statuses[0] == "APPROVED" and statuses[1] in ("MAYBE", "DECLINED")


def test_credit_risk_bad_fields(credit_server: Server) -> None:
    url = credit_server.url + "/v2/models/classify/infer"

    def body(**change: tuple[str, object]) -> dict:
        tensors = []
        for field, value in {**CREDIT_SAMPLE, **change}.items():
            datatype = "BYTES" if isinstance(value, str) else "FP64" if isinstance(value, float) else "INT64"
            tensors.append({"name": field, "datatype": datatype, "shape": [1], "data": [value]})
        return {"inputs": tensors}

    assert httpx.post(url, json=body()).json()["outputs"][0]["data"] == ["APPROVED"]
    res = httpx.post(url, json=body(age="old"))
    assert res.status_code == 422 and "age" in res.json()["error"]
    missing = body()
    missing["inputs"] = missing["inputs"][1:]
    res = httpx.post(url, json=missing)
    assert res.status_code == 422 and "seniority" in res.json()["error"]
    uneven = body()
    uneven["inputs"][0] = {"name": "seniority", "datatype": "INT64", "shape": [2], "data": [1, 2]}
    res = httpx.post(url, json=uneven)
    assert res.status_code == 400 and "elements" in res.json()["error"]


def test_binary_bytes_outputs_are_length_prefixed(credit_server: Server) -> None:
    tensors = [
        {"name": f, "datatype": "BYTES" if isinstance(v, str) else "FP64" if isinstance(v, float) else "INT64",
         "shape": [1], "data": [v]}
        for f, v in CREDIT_SAMPLE.items()
    ]  # fmt: skip
    body = {"inputs": tensors, "parameters": {"binary_data_output": True}}
    res = httpx.post(credit_server.url + "/v2/models/classify/infer", json=body)
    assert res.status_code == 200
    size = int(res.headers["inference-header-content-length"])
    header, raw = json.loads(res.content[:size]), res.content[size:]
    assert header["outputs"][0]["parameters"]["binary_data_size"] == len(raw) == 4 + len("APPROVED")
    assert struct.unpack("<I", raw[:4]) == (8,) and raw[4:] == b"APPROVED"


def test_docs_json_lists_the_protocols(iris_server: Server) -> None:
    from openapi_spec_validator import validate

    spec = httpx.get(iris_server.url + "/docs.json").json()
    validate(spec)
    for path in ("/v2", "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/versions/{version}/infer",
                 "/v1/models", "/v1/models/{name}:predict"):  # fmt: skip
        assert path in spec["paths"], path
    infer = spec["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["parameters"][0]["schema"]["enum"] == ["predict", "classify"]
    assert {"400", "404", "422", "500"} <= set(infer["responses"])


def test_readme_tritonclient_example(iris_server: Server) -> None:
    """The README's tritonclient example, run verbatim against a server of the iris example."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Protocols", 1)[1]
    blocks = [b.split("```", 1)[0] for b in section.split("```python\n")[1:]]
    code = next(b for b in blocks if "tritonclient" in b)
    script = code.replace("localhost:3000", iris_server.url.removeprefix("http://"))
    scope: dict = {}
    exec(compile(script, "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert scope["result"].as_numpy("output-0").tolist() == [0, 2]


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with frame_server(tmp_path_factory.mktemp("frame")) as srv:
        yield srv


COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def test_dataframe_columns_as_named_tensors(frame: Server, sklearn_iris) -> None:
    X, clf = sklearn_iris
    client = triton(frame)
    meta = client.get_model_metadata("predict")
    assert meta["inputs"] == [{"name": c, "datatype": "FP64", "shape": [-1]} for c in COLUMNS]
    rows = X[::9]
    inputs = []
    for i, name in enumerate(reversed(COLUMNS)):  # any order: columns are found by name
        column = rows[:, COLUMNS.index(name)].astype(np.float32).reshape(-1, 1)  # [-1, 1], as MLServer's "pd"
        inp = tritonclient.InferInput(name, list(column.shape), "FP32")
        inp.set_data_from_numpy(column, binary_data=i % 2 == 0)
        inputs.append(inp)
    result = client.infer("predict", inputs)
    assert result.as_numpy("output-0").tolist() == clf.predict(rows.astype(np.float32).astype(np.float64)).tolist()

    x = tritonclient.InferInput("x", [3], "FP64")
    x.set_data_from_numpy(np.array([0.5, 1.5, 2.0]))
    n = tritonclient.InferInput("n", [3], "INT32")
    n.set_data_from_numpy(np.array([1, 2, 3], dtype=np.int32))
    totals = client.infer("total", [x, n])
    assert [totals.as_numpy(k).tolist() for k in ("x", "n", "rows")] == [[4.0], [6], [3]]

    url = frame.url + "/v2/models/predict/infer"
    missing = {"inputs": [{"name": c, "datatype": "FP64", "shape": [1], "data": [1.0]} for c in COLUMNS[1:]]}
    res = httpx.post(url, json=missing)
    assert res.status_code == 422 and "sepal_length" in res.json()["error"]
    wide = {"inputs": [{"name": "sepal_length", "datatype": "FP64", "shape": [1, 2], "data": [1.0, 2.0]}]}
    res = httpx.post(url, json=wide)
    assert res.status_code == 400 and "[-1, 1]" in res.json()["error"]
    assert "Traceback" not in frame.output()


def test_metrics_label_the_protocol(tmp_path: Path) -> None:
    with example_server("iris", tmp_path) as srv, srv.client() as c:
        body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}
        for _ in range(3):
            assert c.post("/v2/models/predict/infer", json=body).status_code == 200
        assert c.post("/v2/models/predict/versions/1/infer", json={"inputs": []}).status_code == 400
        assert c.post("/v1/models/predict:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}).status_code == 200
        lines = c.get("/metrics").text.splitlines()

    def count(endpoint: str, status: str, protocol: str) -> float:
        key = f'mlpack_requests_total{{endpoint="{endpoint}",http_status="{status}",protocol="{protocol}"}}'
        return float(next(x for x in lines if x.startswith(key)).split()[-1])

    assert count("/v2/models/{name}/infer", "200", "v2") == 3.0
    assert count("/v2/models/{name}/versions/{version}/infer", "400", "v2") == 1.0
    assert count("/v1/models/{name}:predict", "200", "kserve_v1") == 1.0


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with shapes_server(tmp_path_factory.mktemp("shapes")) as srv:
        yield srv


def test_declared_dtype_and_shape(shapes: Server) -> None:
    client = triton(shapes)
    meta = client.get_model_metadata("double")
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 2]}]
    assert meta["outputs"] == [{"name": "output-0", "datatype": "FP32", "shape": [-1]}]
    inp = tritonclient.InferInput("input-0", [2, 2], "FP64")
    inp.set_data_from_numpy(np.array([[1.0, 2.0], [3.5, -4.0]]))
    result = client.infer("double", [inp])
    assert result.as_numpy("output-0").dtype == np.float32
    assert result.as_numpy("output-0").tolist() == [[2.0, 4.0], [7.0, -8.0]]
    res = httpx.post(
        shapes.url + "/v2/models/double/infer",
        json={"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]},
    )
    assert res.status_code == 422 and "shape" in res.json()["error"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_text_as_bytes(shapes: Server, binary: bool) -> None:
    client = triton(shapes)
    assert client.get_model_metadata("shout")["inputs"] == [{"name": "input-0", "datatype": "BYTES", "shape": [-1]}]
    inp = tritonclient.InferInput("input-0", [2], "BYTES")
    inp.set_data_from_numpy(np.array(["grüß dich".encode(), b"ok"], dtype=object), binary_data=binary)
    out = tritonclient.InferRequestedOutput("output-0", binary_data=binary)
    got = client.infer("shout", [inp], outputs=[out]).as_numpy("output-0").tolist()
    assert [g.decode() if isinstance(g, bytes) else g for g in got] == ["GRÜSS DICH", "OK"]


def test_plain_json_fields_and_service_errors(shapes: Server) -> None:
    url = shapes.url + "/v2/models/{}/infer"
    body = {"inputs": [{"name": "a", "datatype": "INT32", "shape": [1], "data": [1]},
                       {"name": "b", "datatype": "BOOL", "shape": [1], "data": [True]}]}  # fmt: skip
    res = httpx.post(url.format("describe"), json=body)
    assert res.status_code == 200, res.text
    outputs = {t["name"]: t for t in res.json()["outputs"]}
    assert outputs["keys"]["data"] == ["a,b"] and outputs["keys"]["datatype"] == "BYTES"
    assert outputs["size"]["data"] == [2]
    one = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1], "data": [1.0]}]}
    res = httpx.post(url.format("boom"), json=one)
    assert res.status_code == 500 and set(res.json()) == {"error", "error_id"}
    assert "RuntimeError" in res.json()["error"] and res.json()["error_id"] in shapes.output()
    text = {"inputs": [{"name": "t", "datatype": "BYTES", "shape": [1], "data": ["x"]}]}
    assert httpx.post(url.format("shout"), json=text).json()["outputs"][0]["data"] == ["X"]  # still serving
    res = httpx.get(shapes.url + "/v2/models/nope/ready")
    assert res.status_code == 404 and list(res.json()) == ["error"]


def test_credit_risk_any_numeric_datatype(credit_server: Server) -> None:
    """FP32 for the int and float fields: whole numbers are converted, fractions are a 422."""
    url = credit_server.url + "/v2/models/classify/infer"

    def body(**change: object) -> dict:
        tensors = []
        for field, value in {**CREDIT_SAMPLE, **change}.items():
            datatype = "BYTES" if isinstance(value, str) else "FP32"
            tensors.append({"name": field, "datatype": datatype, "shape": [1, 1], "data": [[value]]})
        return {"inputs": tensors}

    res = httpx.post(url, json=body())
    assert res.status_code == 200 and res.json()["outputs"][0]["data"] == ["APPROVED"], res.text
    res = httpx.post(url, json=body(age=26.5))
    assert res.status_code == 422 and "age" in res.json()["error"]
