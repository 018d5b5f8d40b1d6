"""KServe v1 (``/v1/models``) against real servers of the examples, with httpx."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .protocol_servers import CREDIT_SAMPLE, example_server, shapes_server
from .server import Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def iris_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with example_server("iris", tmp_path_factory.mktemp("iris")) as srv:
        yield srv


def test_models_and_readiness(iris_server: Server) -> None:
    with iris_server.client() as c:
        assert c.get("/v1/models").json() == {"models": ["predict", "classify"]}
        assert c.get("/v1/models/classify").json() == {"name": "classify", "ready": True}
        res = c.get("/v1/models/nope")
        assert res.status_code == 404 and list(res.json()) == ["error"] and "nope" in res.json()["error"]


def test_predict_instances_and_inputs(iris_server: Server) -> None:
    from sklearn import datasets, svm

    data = datasets.load_iris()
    clf = svm.SVC(gamma="scale").fit(data.data, data.target)
    rows = data.data[::10]
    expected = clf.predict(rows).tolist()
    with iris_server.client() as c:
        assert c.post("/v1/models/predict:predict", json={"instances": rows.tolist()}).json() == {"predictions": expected}
        assert c.post("/v1/models/classify:predict", json={"inputs": rows.tolist()}).json() == {"predictions": expected}
        assert c.post("/predict", json=rows.tolist()).json() == expected  # the native route agrees


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b'{"instances": [[1, 2, 3]]}', 422, "4 columns"),
        (b'{"instances": []}', 400, "non-empty list"),
        (b'{"rows": [[1, 2, 3, 4]]}', 400, '"instances" or "inputs"'),
        (b'{"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}', 400, '"instances" or "inputs"'),
        (b'{"instances": [[1, 2, 3, 4]', 400, "not valid JSON"),
        (b'{"instances": [[1, 2, 3, NaN]]}', 400, "not valid JSON"),
    ],
)
def test_bad_requests(iris_server: Server, body: bytes, status: int, words: str) -> None:
    res = httpx.post(iris_server.url + "/v1/models/predict:predict", content=body)
    assert res.status_code == status, res.text
    assert list(res.json()) == ["error"] and words in res.json()["error"]


def test_unknown_model_and_size_limit(iris_server: Server) -> None:
    with iris_server.client() as c:
        res = c.post("/v1/models/nope:predict", json={"instances": [[1, 2, 3, 4]]})
        assert res.status_code == 404 and "unknown model 'nope'" in res.json()["error"]
        huge = b'{"instances": [' + b"[1,2,3,4]," * 2_200_000 + b"[1,2,3,4]]}"
        res = c.post("/v1/models/predict:predict", content=huge)
        assert res.status_code == 413 and "limit" in res.json()["error"]
    assert "Traceback" not in iris_server.output()


def test_credit_risk_instances(tmp_path) -> None:  # noqa: ANN001
    risky = {**CREDIT_SAMPLE, "records": "yes", "job": "partime", "seniority": 0, "assets": 0.0, "amount": 1400, "price": 1400}
    with example_server("credit_risk", tmp_path) as srv, srv.client() as c:
        res = c.post("/v1/models/classify:predict", json={"instances": [CREDIT_SAMPLE, risky]})
        assert res.status_code == 200, res.text
        first, second = res.json()["predictions"]
        assert first == {"Status": "APPROVED"} and second["Status"] in ("MAYBE", "DECLINED")
        columns = {k: [v] for k, v in CREDIT_SAMPLE.items()}
        assert c.post("/v1/models/classify:predict", json={"inputs": columns}).json() == {"predictions": [first]}
        bad = c.post("/v1/models/classify:predict", json={"instances": [{**CREDIT_SAMPLE, "age": "old"}]})
        assert bad.status_code == 422 and "age" in bad.json()["error"]


def test_text_json_and_service_errors(tmp_path) -> None:  # noqa: ANN001
    with shapes_server(tmp_path) as srv, srv.client() as c:
        res = c.post("/v1/models/shout:predict", json={"instances": ["ab", "grüß"]})
        assert res.json() == {"predictions": ["AB", "GRÜSS"]}
        res = c.post("/v1/models/shout:predict", json={"instances": [1]})
        assert res.status_code == 400 and "string" in res.json()["error"]
        res = c.post("/v1/models/describe:predict", json={"instances": [{"a": 1}, {"b": 2, "c": 3}]})
        assert res.json() == {"predictions": [{"keys": "a", "size": 1}, {"keys": "b,c", "size": 2}]}
        res = c.post("/v1/models/double:predict", json={"instances": [[1, 2], [3, 4]]})
        assert res.json() == {"predictions": [[2.0, 4.0], [6.0, 8.0]]}
        res = c.post("/v1/models/double:predict", json={"instances": [[1, 2, 3]]})
        assert res.status_code == 422 and "error" in res.json()
        res = c.post("/v1/models/boom:predict", json={"instances": [[1.0]]})
        assert res.status_code == 500 and set(res.json()) == {"error", "error_id"}
        assert res.json()["error_id"] in srv.output()
        assert c.post("/v1/models/shout:predict", json={"instances": ["still"]}).json() == {"predictions": ["STILL"]}
