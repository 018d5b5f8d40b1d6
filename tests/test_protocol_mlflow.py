"""The MLflow scoring protocol against real servers of the examples, with MLflow's own client
(``mlflow-skinny``'s ``ScoringServerClient``) and curl."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from mlflow.pyfunc.scoring_server.client import ScoringServerClient

from .protocol_servers import CREDIT_SAMPLE, example_server
from .server import ROOT, Server, running_server

pytestmark = pytest.mark.slow

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
PREDICT_ONLY = "api_server:\n  max_request_size: 4096\n  protocols:\n    mlflow: {api: predict}\n"


def _config(base: Path, text: str) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    path = base / "config.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def iris_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("iris")
    with example_server("iris", base, "--config", str(_config(base, PREDICT_ONLY))) as srv:
        yield srv


@pytest.fixture(scope="module")
def truth() -> list[int]:
    """The example's model, trained again here: SVC on iris is deterministic."""
    from sklearn import datasets, svm

    data = datasets.load_iris()
    return svm.SVC(gamma="scale").fit(data.data, data.target).predict(np.array(ROWS)).tolist()


def client(server: Server) -> ScoringServerClient:
    host, port = server.url.removeprefix("http://").split(":")
    return ScoringServerClient(host, int(port))


def test_scoring_server_client(iris_server: Server, truth: list[int]) -> None:
    mlflow = client(iris_server)
    mlflow.wait_server_ready(timeout=30)
    frame = mlflow.invoke(pd.DataFrame(ROWS, columns=COLUMNS))  # dataframe_split
    assert frame.get_predictions(predictions_format="ndarray").tolist() == truth
    array = mlflow.invoke(np.array(ROWS))  # inputs
    assert array["predictions"] == truth
    import mlpack

    assert mlflow.get_version() == mlpack.__version__
    with pytest.raises(Exception, match="error code 400"):
        mlflow.invoke(np.array([[1.0, 2.0, 3.0]]))  # three features: the input contract says four


def test_csv_with_curl(iris_server: Server, truth: list[int]) -> None:
    csv = ",".join(COLUMNS) + "\n" + "\n".join(",".join(map(str, r)) for r in ROWS) + "\n"
    cmd = ["curl", "-s", "-X", "POST", "-H", "Content-Type: text/csv", "--data-binary", csv, f"{iris_server.url}/invocations"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    assert json.loads(out) == {"predictions": truth}
    headerless = "\n".join(",".join(map(str, r)) for r in ROWS)
    cmd[-2] = headerless
    assert json.loads(subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout)["predictions"] == truth


def test_every_input_field(iris_server: Server, truth: list[int]) -> None:
    records = [dict(zip(COLUMNS, r)) for r in ROWS]
    bodies = [
        {"dataframe_split": {"columns": COLUMNS, "data": ROWS}},
        {"dataframe_split": {"columns": COLUMNS, "index": [7, 8, 9], "data": ROWS}},
        {"dataframe_records": records},
        {"instances": ROWS},
        {"inputs": ROWS, "params": {"unused": 1}},
    ]
    with iris_server.client() as c:
        for body in bodies:
            res = c.post("/invocations", json=body)
            assert res.status_code == 200 and res.json() == {"predictions": truth}, (body, res.text)


def test_errors_have_mlflows_shape_and_codes(iris_server: Server) -> None:
    json_type = {"content-type": "application/json"}
    cases = [
        ({"content": b"{not json", "headers": json_type}, 400, "BAD_REQUEST", "not valid JSON"),
        ({"json": [[5.1, 3.5, 1.4, 0.2]]}, 400, "BAD_REQUEST", "exactly one of the input fields"),
        ({"json": {"inputs": ROWS, "instances": ROWS}}, 400, "BAD_REQUEST", "exactly one of the input fields"),
        ({"json": {"inputs": ROWS, "extra": 1}}, 400, "BAD_REQUEST", "unknown field(s) 'extra'"),
        ({"json": {"inputs": ROWS, "params": [1]}}, 400, "BAD_REQUEST", "params must be an object"),
        ({"json": {"inputs": [[1.0, 2.0]]}}, 400, "INVALID_PARAMETER_VALUE", "4"),
        ({"json": {"inputs": [[5.1, True, 1.4, 0.2]]}}, 400, "INVALID_PARAMETER_VALUE", "true at index [0, 1] is not a number"),
        ({"content": b"5.1,3.5", "headers": {"content-type": "text/plain"}}, 415, "BAD_REQUEST", "application/json or text/csv"),
        ({"content": b"{}", "headers": {"content-type": "application/json; charset=latin-1"}}, 415, "BAD_REQUEST", "UTF-8"),
        ({"json": {"inputs": [[5.1, 3.5, 1.4, 0.2]] * 400}}, 413, "REQUEST_LIMIT_EXCEEDED", "limit of 4096 bytes"),
    ]
    with iris_server.client() as c:
        for kwargs, status, code, words in cases:
            res = c.post("/invocations", **kwargs)
            assert res.status_code == status, (kwargs, res.text)
            body = res.json()
            assert body["error_code"] == code and words in body["message"], (kwargs, body)
        assert c.get("/ping").status_code == 200 and c.get("/health").status_code == 200
        metrics = c.get("/metrics").text
    assert re.search(r'mlpack_requests_total\{endpoint="/invocations",http_status="400",protocol="mlflow"\} [1-9]', metrics)
    assert re.search(r'mlpack_requests_total\{endpoint="/invocations",http_status="200",protocol="mlflow"\} [1-9]', metrics)
    assert "Traceback" not in iris_server.output()


def test_docs_list_the_mlflow_routes(iris_server: Server) -> None:
    from openapi_spec_validator import validate

    with iris_server.client() as c:
        spec = c.get("/docs.json").json()
    validate(spec)
    assert {"/ping", "/health", "/version", "/invocations", "/predict", "/v2/models/{name}/infer"} <= set(spec["paths"])
    operation = spec["paths"]["/invocations"]["post"]
    assert "calls predict" in operation["summary"]
    assert {"400", "413", "415", "500", "503", "504"} <= set(operation["responses"])


def test_a_service_of_several_apis_names_one(tmp_path: Path) -> None:
    """iris has predict and classify: without api_server.protocols.mlflow.api, /invocations says so."""
    with example_server("iris", tmp_path) as srv, srv.client() as c:
        res = c.post("/invocations", json={"inputs": ROWS})
        assert res.status_code == 404
        assert res.json()["error_code"] == "ENDPOINT_NOT_FOUND"
        assert (
            "2 APIs (predict, classify)" in res.json()["message"] and "api_server.protocols.mlflow.api" in res.json()["message"]
        )
        assert "/invocations" not in c.get("/docs.json").json()["paths"]
        assert c.get("/ping").status_code == 200
        assert "MLflow /invocations is not available" in srv.output()


def test_unknown_configured_api_stops_the_start(tmp_path: Path, home: Path, cli) -> None:  # noqa: ANN001
    import os

    from .protocol_servers import EXAMPLES

    project = tmp_path / "iris"
    shutil.copytree(EXAMPLES / "iris", project, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "MLPACK_HOME": str(home), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "train.py"], cwd=project, env=env, check=True, capture_output=True, timeout=300)
    config = _config(tmp_path, "api_server:\n  protocols:\n    mlflow: {api: nope}\n")
    res = cli("serve", "service.py:svc", "--port", "0", "--config", str(config), cwd=project, timeout=60)
    assert res.returncode != 0
    assert "api_server.protocols.mlflow.api" in res.stderr and "no API 'nope'" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_credit_risk_dataframe_records(tmp_path: Path) -> None:
    """One pydantic record per call: the answers equal the native route's, record by record."""
    declined = {**CREDIT_SAMPLE, "records": "yes", "debt": 100000.0, "income": 1.0}
    records = [CREDIT_SAMPLE, declined, {**CREDIT_SAMPLE, "age": 61}]
    with example_server("credit_risk", tmp_path) as srv, srv.client() as c:
        native = [c.post("/classify", json=r).json() for r in records]
        res = c.post("/invocations", json={"dataframe_records": records})
        assert res.status_code == 200, res.text
        assert res.json() == {"predictions": native}
        split = {"columns": list(CREDIT_SAMPLE), "data": [[r[k] for k in CREDIT_SAMPLE] for r in records]}
        assert c.post("/invocations", json={"dataframe_split": split}).json() == {"predictions": native}
        bad = c.post("/invocations", json={"dataframe_records": [CREDIT_SAMPLE, {**CREDIT_SAMPLE, "age": "old"}]})
        assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE", bad.text
        assert bad.json()["message"].startswith("record 2:") and bad.json()["details"][0]["loc"] == ["age"]
        csv = ",".join(CREDIT_SAMPLE) + "\n" + ",".join(str(v) for v in CREDIT_SAMPLE.values()) + "\n"
        res = c.post("/invocations", content=csv, headers={"content-type": "text/csv"})
        assert res.status_code == 200 and res.json() == {"predictions": native[:1]}, res.text
        assert "/invocations" in c.get("/docs.json").json()["paths"]  # one API: /invocations calls it
        big = {**CREDIT_SAMPLE, "price": 2**70}  # an integer beyond 64 bits is still an integer, as natively
        native_big = c.post("/classify", json=big)
        res = c.post("/invocations", json={"inputs": big})
        assert native_big.status_code == 200 and res.json() == {"predictions": [native_big.json()]}, res.text


# ---------------------------------------------------------------- the README, verbatim


def _section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"### {title}\n")
    end = text.find("\n## ", start)
    nxt = text.find("\n### ", start + 4)
    return text[start : min(e for e in (end, nxt) if e != -1)]


def _blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


def test_readme_mlflow_example(tmp_path: Path, truth: list[int]) -> None:
    section = _section("MLflow scoring protocol")
    (yaml_block,) = _blocks(section, "yaml")
    (sh_block,) = _blocks(section, "sh")
    (py_block,) = _blocks(section, "python")
    name = yaml_block.splitlines()[0].removeprefix("# ").strip()
    lines = [ln for ln in sh_block.splitlines() if ln.strip()]
    serve = shlex.split(lines[0])
    assert serve[:3] == ["mlpack", "serve", "service.py:svc"]
    project = tmp_path / "iris"
    (tmp_path / name).write_text(yaml_block)  # the server runs in the copied example: the config by its full path
    args = [str(tmp_path / a) if a == name else a for a in serve[3:]]
    assert args == ["--config", str(tmp_path / name)]
    with example_server("iris", tmp_path, *args) as srv:
        port = srv.url.rsplit(":", 1)[1]
        full = pd.read_csv(project / "iris.csv")
        from sklearn import datasets, svm

        data = datasets.load_iris()
        want = svm.SVC(gamma="scale").fit(data.data, data.target).predict(full.to_numpy()).tolist()
        outputs = []
        for line in lines[1:]:
            words = shlex.split(line.replace("localhost:3000", f"127.0.0.1:{port}"))
            assert words[0] == "curl"
            res = subprocess.run([*words, "-s", "-f"], cwd=project, capture_output=True, text=True, timeout=60)
            assert res.returncode == 0, res.stderr
            outputs.append(json.loads(res.stdout))
        assert outputs == [{"predictions": want}, {"predictions": truth[:1]}]
        code = py_block.replace('"localhost", 3000', f'"127.0.0.1", {port}')
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        shown = re.search(r"# (\[.*\])", py_block).group(1)
        assert res.stdout.strip() == shown == str(np.array(truth[:2]))


def test_switches(tmp_path: Path) -> None:
    """Protocols switched off answer 404 and leave /docs.json; the others keep working."""
    config = _config(
        tmp_path,
        "api_server:\n  protocols:\n    native: {enabled: false}\n    v2: {enabled: false}\n"
        "    kserve_v1: {enabled: false}\n    mlflow: {enabled: true, api: predict}\n",
    )
    with example_server("iris", tmp_path, "--config", str(config)) as srv, srv.client() as c:
        paths = set(c.get("/docs.json").json()["paths"])
        assert "/invocations" in paths and "/ping" in paths
        assert not {"/predict", "/classify"} & paths and not any(p.startswith(("/v2", "/v1")) for p in paths), paths
        assert c.post("/predict", json=ROWS).status_code == 404
        assert c.post("/v2/models/predict/infer", json={"inputs": []}).status_code == 404
        assert c.get("/v2/health/ready").status_code == 404
        assert c.post("/v1/models/predict:predict", json={"instances": ROWS}).status_code == 404
        assert c.post("/invocations", json={"inputs": ROWS}).status_code == 200
        assert c.get("/readyz").status_code == 200
    off = _config(tmp_path / "off", "api_server:\n  protocols:\n    mlflow: {enabled: false}\n")
    with example_server("iris", tmp_path / "off", "--config", str(off)) as srv, srv.client() as c:
        paths = set(c.get("/docs.json").json()["paths"])
        assert not {"/invocations", "/ping", "/health", "/version"} & paths
        for path in ("/ping", "/health", "/version"):
            assert c.get(path).status_code == 404
        assert c.post("/invocations", json={"inputs": ROWS}).status_code == 404
        assert (
            c.post("/predict", json=ROWS).json()
            == c.post("/v1/models/predict:predict", json={"instances": ROWS}).json()["predictions"]
        )
        assert httpx.get(f"{srv.url}/v2/health/ready").status_code == 200


def test_schemathesis_on_the_mlflow_routes(tmp_path: Path) -> None:
    """What /docs.json says /invocations takes for a NumpyNdarray API, it takes (and refuses the rest).

    (The credit-risk run of tests/test_schemathesis.py covers a pydantic JSON API.)"""
    from .test_schemathesis import st_run

    config = _config(tmp_path, PREDICT_ONLY.replace("  max_request_size: 4096\n", ""))
    with example_server("iris", tmp_path, "--config", str(config)) as srv:
        out = st_run(srv.url, tmp_path, "--include-path-regex", "^/(invocations|ping|health|version)$")
        assert "Tested: 4" in out, out
        assert "Traceback" not in srv.output()


FIXTURES = Path(__file__).parent / "fixtures"


def test_a_dataframe_api(home: Path, tmp_path: Path, iris_svc) -> None:  # noqa: ANN001
    """A PandasDataFrame API with declared float columns gets the DataFrame its own route would."""
    import mlpack

    mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True, "batch_dim": 0}})
    config = _config(tmp_path, "api_server:\n  protocols:\n    mlflow: {api: predict}\n")
    records = [dict(zip(COLUMNS, r)) for r in ROWS]
    csv = ",".join(COLUMNS) + "\n" + "\n".join(",".join(map(str, r)) for r in ROWS) + "\n"
    with running_server("service.py:svc", home=home, cwd=FIXTURES / "frame_project", args=("--config", str(config))) as srv:
        with srv.client() as c:
            native = c.post("/predict", json=records).json()
            assert native == iris_svc.predict(np.array(ROWS)).tolist()
            for body in ({"dataframe_records": records}, {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}):
                assert c.post("/invocations", json=body).json() == {"predictions": native}, body
            res = c.post("/invocations", content=csv, headers={"content-type": "text/csv"})
            assert res.json() == {"predictions": native}, res.text
            res = c.post("/invocations", json={"dataframe_records": [{**records[0], "petal_width": "wide"}]})
            assert res.status_code == 400 and res.json()["error_code"] == "INVALID_PARAMETER_VALUE", res.text
            res = c.post(
                "/invocations", json={"dataframe_records": [{k: v for k, v in records[0].items() if k != "sepal_width"}]}
            )
            assert res.status_code == 400 and "sepal_width" in res.json()["message"], res.text
            body = c.get("/docs.json").json()["paths"]["/invocations"]["post"]["requestBody"]["content"]
            assert "pattern" in body["text/csv"]["schema"]  # the descriptor's own CSV schema


def test_a_failing_api_is_a_500_with_an_error_id(home: Path, tmp_path: Path, iris_svc) -> None:  # noqa: ANN001
    import mlpack
    from tests.fixtures.counting import CountingModel

    mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True, "batch_dim": 0}})
    mlpack.sklearn.save_model("counter", CountingModel(delay=0.05), signatures={"predict": {"batchable": True}})
    config = _config(tmp_path, "api_server:\n  protocols:\n    mlflow: {api: boom}\n")
    with running_server("service.py:svc", home=home, cwd=FIXTURES / "svc_project", args=("--config", str(config))) as srv:
        with srv.client() as c:
            res = c.post("/invocations", json={"inputs": {"any": "thing"}})
            assert res.status_code == 500, res.text
            body = res.json()
            assert body["error_code"] == "INTERNAL_ERROR" and "RuntimeError" in body["message"]
            assert c.post("/invocations", json={"inputs": [1]}).status_code == 500  # the server keeps serving
        log = srv.output()
    assert body["error_id"] in log and "kaboom" in log


def test_a_slow_api_is_a_504(home: Path, tmp_path: Path, iris_svc) -> None:  # noqa: ANN001
    import mlpack
    from tests.fixtures.counting import CountingModel

    mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True, "batch_dim": 0}})
    mlpack.sklearn.save_model("counter", CountingModel(delay=0.5), signatures={"predict": {"batchable": True}})
    config = _config(tmp_path, "api_server:\n  timeout: 0.1\n  protocols:\n    mlflow: {api: count}\n")
    with running_server("service.py:svc", home=home, cwd=FIXTURES / "svc_project", args=("--config", str(config))) as srv:
        with srv.client() as c:
            res = c.post("/invocations", json={"inputs": [[1.0, 2.0]]})
            assert res.status_code == 504, res.text
            assert res.json()["error_code"] == "DEADLINE_EXCEEDED" and "0.1 s timeout" in res.json()["message"]
