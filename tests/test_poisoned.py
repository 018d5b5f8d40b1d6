"""Poisoned load: a few per cent of bad requests among thousands must not hurt anyone else.

Real `mlpack serve` of the examples (iris, credit risk) with large micro-batches, a few thousand
requests at 64 concurrency: every valid request gets the answer the model gives it directly,
every poisoned one (nulls, strings, wrong width, huge values, empty, wrong rank...) a 4xx.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

import mlpack
from tests.server import ROOT, running_server

EXAMPLES = ROOT / "examples"
REQUESTS = 2000
CONCURRENCY = 64
POISON_SHARE = 0.04
BATCHING = {"runners": {"batching": {"enabled": True, "max_batch_size": 1000, "max_latency_ms": 30_000}}}

IRIS_POISON = [
    b"[[null, 3.5, 1.4, 0.2]]",
    b'[["a", 3.5, 1.4, 0.2]]',
    b'[[5.1, "3.5", 1.4, 0.2]]',
    b"[[5.1, 3.5, 1.4]]",
    b"[[5.1, 3.5, 1.4, 0.2, 9.9]]",
    b"[[1e309, 3.5, 1.4, 0.2]]",
    b"[]",
    b"[[]]",
    b"[5.1, 3.5, 1.4, 0.2]",
    b"[[[5.1, 3.5, 1.4, 0.2]]]",
    b"[[NaN, 3.5, 1.4, 0.2]]",
    b"[[true, {}, 1.4, 0.2]]",
]


def _pound(url: str, requests: list[tuple[str, bytes]]) -> list[tuple[int, bytes]]:
    """POST every (path, body) at CONCURRENCY in flight; (status, body) in order. Bounded in time."""

    async def main() -> list[tuple[int, bytes]]:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        results: list[tuple[int, bytes]] = [(0, b"")] * len(requests)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(requests)):
            queue.put_nowait(i)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

            async def worker() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    path, body = requests[i]
                    res = await client.post(path, content=body, headers={"content-type": "application/json"})
                    results[i] = (res.status_code, res.content)

            await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(CONCURRENCY))), 240)
        return results

    return asyncio.run(main())


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "_total{"))


def _check(requests, expected, results) -> None:
    wrong = []
    for (_, body), want, (status, got) in zip(requests, expected, results):
        if want is None:
            if not 400 <= status < 500 or b'"error"' not in got:
                wrong.append(("poisoned", body[:80], status, got[:200]))
        elif status != 200 or httpx.Response(200, content=got).json() != want:
            wrong.append(("valid", body[:80], status, got[:200]))
    assert not wrong, f"{len(wrong)} wrong answers, e.g. {wrong[:5]}"


@pytest.fixture
def iris_project(tmp_path: Path, home: Path, iris_svc) -> Path:
    mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True, "batch_dim": 0}})
    project = tmp_path / "iris"
    shutil.copytree(EXAMPLES / "iris", project, ignore=shutil.ignore_patterns("__pycache__", "legacy"))
    (project / "config.yaml").write_text(yaml.safe_dump(BATCHING))
    return project


def iris_requests(iris, iris_svc, poison=IRIS_POISON, seed: int = 7) -> tuple[list[tuple[str, bytes]], list]:
    import json

    X, _ = iris
    rng = random.Random(seed)
    requests, expected = [], []
    for i in range(REQUESTS):
        if rng.random() < POISON_SHARE:
            requests.append(("/predict", poison[i % len(poison)]))
            expected.append(None)
            continue
        rows = [X[rng.randrange(len(X))].tolist() for _ in range(rng.choice((1, 1, 1, 2, 5)))]
        if rng.random() < 0.02:
            rows[0][0] = 1e300  # huge, but a float64 the SVC takes: a valid request
        requests.append(("/predict", json.dumps(rows).encode()))
        expected.append(iris_svc.predict(rows).tolist())
    return requests, expected


def _drop_contract(home: Path, name: str) -> None:
    """Make ``name`` look like a model saved before input contracts existed (no key in model.yaml)."""
    model = mlpack.models.get(f"{name}:latest")
    manifest = model.path / "model.yaml"
    data = yaml.safe_load(manifest.read_text())
    assert data.pop("input_contract") is not None
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    assert mlpack.models.get(f"{name}:latest").input_contract is None


@pytest.mark.slow
@pytest.mark.parametrize(
    "workers,contract", [(1, True), (2, True), (1, False)], ids=["contract", "contract-2-workers", "no-contract"]
)
def test_poisoned_iris_load(iris_project: Path, home: Path, iris, iris_svc, workers: int, contract: bool) -> None:
    poison = IRIS_POISON
    if not contract:
        _drop_contract(home, "iris_clf")
        poison = [p for p in poison if b'"3.5"' not in p]  # scikit-learn itself reads numeric strings
    requests, expected = iris_requests(iris, iris_svc, poison)
    assert 0.02 < expected.count(None) / len(expected) < 0.07
    args = ("--config", str(iris_project / "config.yaml"), "--workers", str(workers))
    with running_server("service.py:svc", home=home, cwd=iris_project, args=args) as srv:
        results = _pound(srv.url, requests)
        metrics = httpx.get(srv.url + "/metrics").text
    _check(requests, expected, results)
    assert _metric(metrics, "mlpack_batch_size_count") < len(requests)  # requests were batched
    if not contract:
        # poison reached the batches: they were isolated, and each poisoned request failed alone
        assert _metric(metrics, "mlpack_isolated_failures") >= 1
        assert _metric(metrics, "mlpack_isolation_calls") >= 2
    else:
        assert _metric(metrics, "mlpack_isolation_calls") == 0  # the contract refused them all first
    assert "Traceback" not in srv.output()  # 4xx are never logged with a traceback


SAMPLE = {"seniority": 3, "home": "owner", "time": 36, "age": 26, "marital": "single", "records": "no",
          "job": "freelance", "expenses": 35, "income": 0.0, "assets": 60000.0, "debt": 3000.0,
          "amount": 800, "price": 1000}  # fmt: skip
CREDIT_POISON = [
    {"debt": 1e300},
    {"income": -1e39},
    {"assets": 1e300, "debt": 1e300},
    {"debt": "lots"},
    {"debt": None},
    {"age": [26]},
    {"home": {"owner": True}},
]


@pytest.fixture
def credit_project(tmp_path: Path, home: Path) -> Path:
    project = tmp_path / "credit_risk"
    shutil.copytree(EXAMPLES / "credit_risk", project, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "MLPACK_HOME": str(home), "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "train.py", "--rows", "1500"], cwd=project, env=env, check=True, capture_output=True, timeout=300
    )
    (project / "config.yaml").write_text(yaml.safe_dump(BATCHING))
    return project


def credit_requests(seed: int = 11) -> tuple[list[tuple[str, bytes]], list]:
    import json

    import xgboost as xgb

    ref = mlpack.xgboost.get("credit_risk_model:latest")
    booster, dv = mlpack.xgboost.load_model(ref), ref.custom_objects["DictVectorizer"]
    names = list(dv.get_feature_names_out())
    rng = random.Random(seed)
    requests, apps = [], []
    for i in range(REQUESTS):
        app = dict(SAMPLE)
        app.update(age=rng.randint(18, 70), seniority=rng.randint(0, 30), debt=float(rng.choice([0, 500, 3000, 9000])),
                   amount=rng.randint(100, 2000), job=rng.choice(["fixed", "freelance", "partime", "others"]),
                   records=rng.choice(["no", "yes"]))  # fmt: skip
        if rng.random() < POISON_SHARE:
            app.update(CREDIT_POISON[i % len(CREDIT_POISON)])
            apps.append(None)
        else:
            apps.append(app)
        requests.append(("/classify", json.dumps(app).encode()))
    valid = [a for a in apps if a is not None]
    scores = iter(booster.predict(xgb.DMatrix(dv.transform(valid), feature_names=names)).tolist())

    def status(p: float) -> dict:
        return {"Status": "DECLINED" if p > 0.5 else "MAYBE" if p > 0.25 else "APPROVED"}

    expected = [status(next(scores)) if a is not None else None for a in apps]
    return requests, expected


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_poisoned_credit_risk_load(credit_project: Path, home: Path, workers: int) -> None:
    requests, expected = credit_requests()
    assert 0.02 < expected.count(None) / len(expected) < 0.07
    assert len({e["Status"] for e in expected if e}) >= 2  # the answers are not all alike
    args = ("--config", str(credit_project / "config.yaml"), "--workers", str(workers))
    with running_server("service.py:svc", home=home, cwd=credit_project, args=args) as srv:
        results = _pound(srv.url, requests)
        huge = httpx.post(srv.url + "/classify", json={**SAMPLE, "debt": 1e300})
    _check(requests, expected, results)
    assert (
        huge.status_code == 422 and "too large for float32 (1e+300) in column 3 ('debt')" in huge.json()["error"]
    )  # as the README says
    assert "Traceback" not in srv.output()


@pytest.mark.slow
def test_poisoned_load_on_the_0x_class_style_service(tmp_path: Path, home: Path, iris, iris_svc) -> None:
    """The 0.x ``DataframeInput`` / ``batch=True`` API: the same runner, contract and isolation."""
    project = tmp_path / "legacy"
    shutil.copytree(EXAMPLES / "iris" / "legacy", project, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "MLPACK_HOME": str(home), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "main.py"], cwd=project, env=env, check=True, capture_output=True, timeout=300)
    (project / "config.yaml").write_text(yaml.safe_dump(BATCHING))
    requests, expected = iris_requests(iris, iris_svc, [p for p in IRIS_POISON if b"NaN" not in p], seed=3)
    requests, expected = requests[:800], expected[:800]
    assert expected.count(None) >= 10
    args = ("--config", str(project / "config.yaml"))
    with running_server("IrisClassifier:latest", home=home, cwd=project, args=args) as srv:
        results = _pound(srv.url, requests)
        metrics = httpx.get(srv.url + "/metrics").text
    _check(requests, expected, results)
    assert _metric(metrics, "mlpack_batch_size_count") < len(requests)  # concurrent frames shared model calls
    assert "Traceback" not in srv.output()
