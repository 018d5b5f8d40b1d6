"""The real `mlpack serve` on 127.0.0.1 with an httpx client."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

import mlpack
from tests.fixtures.counting import CountingModel
from tests.server import running_server

PROJECT = Path(__file__).parent / "fixtures" / "svc_project"
APPLICATION = {
    "seniority": 3, "home": "owner", "time": 36, "age": 26, "marital": "single", "records": "no",
    "job": "freelance", "expenses": 35, "income": 0.0, "assets": 60000.0, "debt": 3000.0,
    "amount": 700, "price": 1000,
}  # fmt: skip


@pytest.fixture
def store(home: Path, iris_svc) -> Path:
    mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True, "batch_dim": 0}})
    mlpack.sklearn.save_model("counter", CountingModel(delay=0.05), signatures={"predict": {"batchable": True}})
    return home


def _config(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture
def server(store: Path):
    with running_server("service.py:svc", home=store, cwd=PROJECT) as srv:
        yield srv


def test_predictions_and_probes(server, iris, iris_svc) -> None:
    X, _ = iris
    with server.client() as c:
        got = c.post("/predict", json=X[:10].tolist())
        assert got.status_code == 200
        assert got.json() == iris_svc.predict(X[:10]).tolist()
        assert c.post("/predict_sync", json=X[50:60].tolist()).json() == iris_svc.predict(X[50:60]).tolist()
        cols = ["sl", "sw", "pl", "pw"]
        records = [dict(zip(cols, row)) for row in X[100:105].tolist()]
        assert c.post("/predict_df", json=records).json() == iris_svc.predict(X[100:105]).tolist()
        csv = "sl,sw,pl,pw\n" + "\n".join(",".join(map(str, r)) for r in X[:3].tolist())
        assert c.post("/predict_df", content=csv, headers={"content-type": "text/csv"}).json() == [0, 0, 0]
        assert c.post("/echo/text", content="hi", headers={"content-type": "text/plain"}).text == "HI"
        assert c.get("/livez").status_code == 200 and c.get("/healthz").status_code == 200
        assert c.get("/readyz").text == "ready"
        index = c.get("/")
        assert index.status_code == 200 and "swagger-ui-bundle.js" in index.text and "cdn" not in index.text.lower()
        assert c.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200


def test_credit_application_validation(server) -> None:
    with server.client() as c:
        ok = c.post("/classify", json=APPLICATION)
        assert ok.status_code == 200 and ok.json()["Status"] == "APPROVED"
        assert ok.json()["seen"] == sorted(APPLICATION)
        bad = c.post("/classify", json={**APPLICATION, "age": "old", "income": None} | {"job": None})
        assert bad.status_code == 422
        fields = {tuple(d["loc"]) for d in bad.json()["details"]}
        assert {("age",), ("income",), ("job",)} <= fields
        missing = dict(APPLICATION)
        del missing["price"]
        res = c.post("/classify", json=missing)
        assert res.status_code == 422 and "price" in res.json()["error"]


def test_error_paths_answer_json_and_the_server_keeps_serving(server, iris) -> None:
    X, _ = iris
    good = X[:1].tolist()
    with server.client() as c:
        cases = [
            (c.post("/predict", content=b"[[1,2", headers={"content-type": "application/json"}), 400),
            (c.post("/predict", content=b"<x/>", headers={"content-type": "application/xml"}), 415),
            (c.post("/predict", content=b"[" + b"1," * 11_000_000 + b"1]", headers={"content-type": "application/json"}), 413),
            (c.post("/boom", json={}), 500),
            (c.post("/predict", json=[[1, 2], [3]]), None),
        ]
        for res, status in cases:
            if status is not None:
                assert res.status_code == status, res.text
            assert 400 <= res.status_code < 600
            assert isinstance(res.json()["error"], str) and res.json()["error"]
            assert c.post("/predict", json=good).status_code == 200  # still serving
        boom = c.post("/boom", json={}).json()
        assert len(boom["error_id"]) == 16 and "kaboom" not in boom["error"]
        assert c.get("/nope").status_code == 404
    first = cases[3][0].json()["error_id"]
    # The first kaboom is logged with its traceback and id; the same error again is only counted.
    output = server.output()
    assert first in output and output.count('raise RuntimeError("kaboom")') == 1
    assert boom["error_id"] not in output


def test_chunked_body_over_the_limit_is_413(store: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, {"api_server": {"max_request_size": 1000}})
    with running_server("service.py:svc", home=store, cwd=PROJECT, args=("--config", config)) as srv:
        with srv.client() as c:

            def body():
                for _ in range(100):
                    yield b"[1,2,3,4]," * 10

            res = c.post("/predict", content=body(), headers={"content-type": "application/json"})
            assert res.status_code == 413 and "limit of 1000 bytes" in res.json()["error"]
            assert c.post("/predict", json=[[5.1, 3.5, 1.4, 0.2]]).json() == [0]


def test_metrics_grow(server) -> None:
    with server.client() as c:
        def count() -> float:
            for line in c.get("/metrics").text.splitlines():
                if line.startswith('mlpack_requests_total{endpoint="/predict",http_status="200",protocol="native"}'):
                    return float(line.split()[-1])
            return 0.0

        before = count()
        for _ in range(3):
            c.post("/predict", json=[[5.1, 3.5, 1.4, 0.2]])
        assert count() == before + 3
        text = c.get("/metrics").text
        assert "mlpack_request_duration_seconds_bucket" in text
        assert 'mlpack_batch_size_count{method="predict",runner="iris_clf"}' in text
        assert "mlpack_queue_depth" in text


def test_openapi_document_is_valid(server) -> None:
    from openapi_spec_validator import validate

    with server.client() as c:
        spec = c.get("/docs.json").json()
    validate(spec)
    for path, item in spec["paths"].items():
        if "post" in item and item["post"]["tags"] == ["Service APIs"]:  # the native routes; protocols have their own codes
            assert {"400", "413", "415", "422", "500", "503", "504"} <= set(item["post"]["responses"]), path
    assert spec["components"]["schemas"]["Error"]["required"] == ["error"]
    assert spec["openapi"].startswith("3.0")
    assert {"/predict", "/classify", "/echo/text", "/readyz"} <= set(spec["paths"])
    body = spec["paths"]["/classify"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/CreditApplication"}
    assert set(spec["components"]["schemas"]["CreditApplication"]["properties"]) == set(APPLICATION)


def test_what_the_schema_forbids_is_refused(server) -> None:
    headers = {"content-type": "application/json"}
    with server.client() as c:
        for field, value in [("price", False), ("income", "1.5"), ("age", 26.5)]:
            res = c.post("/classify", json={**APPLICATION, field: value})
            assert res.status_code == 422 and res.json()["details"][0]["loc"] == [field], res.text
        nan = json.dumps(APPLICATION).replace("0.0", "NaN")
        for path, body in [("/classify", nan), ("/predict", "[[5.1, NaN, 1.4, 0.2]]"), ("/boom", "[Infinity]")]:
            res = c.post(path, content=body, headers=headers)
            assert res.status_code == 400 and "not standard JSON" in res.json()["error"], res.text
        res = c.post("/predict", json=[[5.1, True, 1.4, 0.2]])
        assert res.status_code == 422 and "true at index [0, 1] is not a number" in res.json()["error"]
        assert c.post("/classify", json=APPLICATION).status_code == 200


async def _fire(url: str, arrays: list[np.ndarray], path: str = "/count") -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(arrays))
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
        return await asyncio.gather(*(c.post(path, json=a.tolist()) for a in arrays))


def test_batching_merges_concurrent_requests(server) -> None:
    arrays = [np.array([[float(i), 0.0]]) for i in range(64)]
    responses = asyncio.run(_fire(server.url, arrays))
    assert [r.status_code for r in responses] == [200] * 64
    assert [r.json() for r in responses] == [[2.0 * i] for i in range(64)]  # each caller its own answer
    with server.client() as c:
        stats = c.post("/calls", content="", headers={"content-type": "text/plain"}).json()
    assert sum(stats["batch_sizes"]) == 64
    assert stats["calls"] <= math.ceil(64 / 16) + 2
    assert max(stats["batch_sizes"]) <= 16


def test_max_batch_size_one(store: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, {"runners": {"counter": {"batching": {"max_batch_size": 1}}}})
    with running_server("service.py:svc", home=store, cwd=PROJECT, args=("--config", config)) as srv:
        arrays = [np.array([[float(i), 1.0]]) for i in range(12)]
        responses = asyncio.run(_fire(srv.url, arrays))
        assert [r.json() for r in responses] == [[2.0 * i] for i in range(12)]
        with srv.client() as c:
            stats = c.post("/calls", content="", headers={"content-type": "text/plain"}).json()
        assert stats["batch_sizes"] == [1] * 12


def test_request_past_max_latency_gets_503(store: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, {"runners": {"counter": {"batching": {"max_batch_size": 2, "max_latency_ms": 20}}}})
    with running_server("service.py:svc", home=store, cwd=PROJECT, args=("--config", config)) as srv:
        responses = asyncio.run(_fire(srv.url, [np.array([[1.0]])] * 24))
        codes = [r.status_code for r in responses]
        assert 503 in codes and 200 in codes
        refused = next(r for r in responses if r.status_code == 503)
        assert int(refused.headers["retry-after"]) >= 1 and "waited" in refused.json()["error"]
        with srv.client() as c:
            assert c.post("/count", json=[[3.0]]).json() == [6.0]


def test_readyz_is_503_until_models_load(store: Path, tmp_path: Path) -> None:
    slow = mlpack.sklearn.save_model("counter", CountingModel(), signatures={"predict": {"batchable": True}})
    (slow.path / "saved_model.joblib").write_bytes(b"corrupted")  # loading fails: never ready
    with running_server("service.py:svc", home=store, cwd=PROJECT, wait_ready=False) as srv:
        with srv.client() as c:
            for _ in range(100):
                res = c.get("/readyz")
                if "failed" in res.text:
                    break
                asyncio.run(asyncio.sleep(0.05))
            assert res.status_code == 503 and "sha256" in res.text
            assert c.get("/livez").status_code == 200
            res = c.post("/predict", json=[[5.1, 3.5, 1.4, 0.2]])
            assert res.status_code == 503 and res.headers["retry-after"] == "1"


@pytest.mark.slow
def test_two_workers_serve_and_metrics_add_up(store: Path) -> None:
    with running_server("service.py:svc", home=store, cwd=PROJECT, args=("--workers", "2")) as srv:
        with srv.client() as c:
            for _ in range(20):
                c.close()
                c = srv.client()  # new connections spread over both workers
                assert c.post("/predict", json=[[5.1, 3.5, 1.4, 0.2]]).json() == [0]
            text = c.get("/metrics").text
        series = 'mlpack_requests_total{endpoint="/predict",http_status="200",protocol="native"}'
        line = next(x for x in text.splitlines() if x.startswith(series))
        assert float(line.split()[-1]) == 20.0
    out = srv.output()
    assert out.count("Started server process") >= 2


def test_sigterm_drains_in_flight_requests(store: Path) -> None:
    import os
    import signal
    import threading

    async def fire(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            headers = {"content-type": "text/plain"}
            return await asyncio.gather(*(c.post("/slow", content="1.5", headers=headers) for _ in range(4)))

    with running_server("service.py:svc", home=store, cwd=PROJECT) as srv:
        results: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: results.extend(asyncio.run(fire(srv.url))))
        thread.start()
        with srv.client() as c:
            for _ in range(200):  # until the four requests are being handled
                text = c.get("/metrics").text
                if 'mlpack_requests_in_progress{endpoint="/slow",protocol="native"} 4.0' in text:
                    break
                asyncio.run(asyncio.sleep(0.02))
        os.killpg(srv.proc.pid, signal.SIGTERM)
        thread.join(30)
        # uvicorn re-raises SIGTERM after its graceful shutdown, so -15 is a clean exit too
        assert srv.proc.wait(30) in (0, -signal.SIGTERM)
        assert [(r.status_code, r.text) for r in results] == [(200, "done")] * 4
    assert "Finished server process" in srv.output()


def test_bad_target_is_one_line(cli, store: Path) -> None:
    res = cli("serve", "nothere.py:svc", cwd=PROJECT)
    assert res.returncode != 0 and res.stderr.strip().splitlines()[-1].startswith("error:")
    res = cli("serve", "service.py:nope", cwd=PROJECT, env={"PYTHONPATH": str(PROJECT.parents[2])})
    assert "no attribute 'nope'" in res.stderr


def test_optional_pydantic_fields_give_a_valid_openapi_30_document() -> None:
    from openapi_spec_validator import validate
    from pydantic import BaseModel

    from mlpack.io import JSON

    class Item(BaseModel):
        name: str
        size: int | None = None
        tags: list[str] | None = None

    svc = mlpack.Service("opt")

    @svc.api(input=JSON(pydantic_model=Item), output=JSON())
    def echo(item: Item) -> dict:
        return item.model_dump()

    spec = svc.openapi_spec()
    validate(spec)
    assert spec["components"]["schemas"]["Item"]["properties"]["size"]["nullable"] is True


@pytest.mark.slow
def test_reload_picks_up_source_changes(store: Path, tmp_path: Path) -> None:
    import shutil
    import time

    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    headers = {"content-type": "text/plain"}
    with running_server("service.py:svc", home=store, cwd=project, args=("--reload",)) as srv:
        assert httpx.post(srv.url + "/echo/text", content="Hi", headers=headers).text == "HI"
        source = project / "service.py"
        source.write_text(source.read_text().replace("return text.upper()", "return text.lower()"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.post(srv.url + "/echo/text", content="Hi", headers=headers).text == "hi":
                    break
            except httpx.TransportError:
                pass  # between the old and the new worker
            time.sleep(0.2)
        else:
            pytest.fail("the server did not reload:\n" + srv.output())


def test_call_past_the_api_timeout_is_504_and_the_server_keeps_serving(store: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, {"api_server": {"timeout": 0.3}})
    headers = {"content-type": "text/plain"}
    with running_server("service.py:svc", home=store, cwd=PROJECT, args=("--config", config)) as srv:
        with srv.client() as c:
            slow = c.post("/slow", content="2", headers=headers)
            assert slow.status_code == 504 and "timeout" in slow.json()["error"]
            assert c.post("/slow", content="0.01", headers=headers).text == "done"
