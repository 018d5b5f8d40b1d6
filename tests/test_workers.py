"""`mlpack serve --workers 2`: forked workers, each on its own SO_REUSEPORT socket (mlpack.workers)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import mlpack
from tests.fixtures.loadcount import LoadCounted
from tests.server import ROOT, Server, running_server

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).parent / "fixtures" / "workers_project"
TWO = ("--workers", "2")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, iris) -> dict:
    """A store with the service's three models, and the two models to check answers against."""
    import xgboost as xgb
    from sklearn import svm

    home = tmp_path_factory.mktemp("workers") / "home"
    X, y = iris
    svc = svm.SVC(gamma="scale").fit(X, y)
    booster = xgb.XGBClassifier(n_estimators=20, max_depth=3).fit(X, y)
    batchable = {"predict": {"batchable": True, "batch_dim": 0}}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLPACK_HOME", str(home))
        mlpack.sklearn.save_model("iris_clf", svc, signatures=batchable)
        mlpack.xgboost.save_model("iris_xgb", booster, signatures=batchable)
        mlpack.sklearn.save_model("load_counted", LoadCounted(), signatures=batchable)
    return {"home": home, "svc": svc, "xgb": booster}


def _env(tmp: Path) -> dict[str, str]:
    started = tmp / "started"
    started.mkdir(exist_ok=True)
    return {"STARTED_DIR": str(started), "LOAD_COUNT_FILE": str(tmp / "loads.txt")}


@pytest.fixture(scope="module")
def two(models: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with two workers, for the tests that do not stop or kill it."""
    tmp = tmp_path_factory.mktemp("two")
    with running_server("service.py:svc", home=models["home"], cwd=PROJECT, args=TWO, env=_env(tmp)) as srv:
        srv.tmp = tmp  # type: ignore[attr-defined]
        yield srv


def _pid_of_fresh_connections(url: str, n: int) -> list[int]:
    """The worker pid behind each of ``n`` requests, each on a new connection."""
    pids = []
    for _ in range(n):
        with httpx.Client(base_url=url, timeout=30) as c:
            pids.append(c.post("/pid", content="", headers={"content-type": "text/plain"}).json()["pid"])
    return pids


def test_connections_spread_over_both_workers(two: Server) -> None:
    pids = Counter(_pid_of_fresh_connections(two.url, 200))
    assert len(pids) == 2 and two.proc.pid not in pids, pids  # two workers, neither of them the supervisor
    assert min(pids.values()) >= 50, pids  # each gets at least a quarter


def test_kept_alive_clients_spread_over_both_workers(two: Server) -> None:
    """Connections opened at once (as a load generator does) land on both workers, and stay there."""

    async def client(c: httpx.AsyncClient) -> list[int]:
        return [(await c.post("/pid", content="")).json()["pid"] for _ in range(5)]

    async def main() -> list[list[int]]:
        clients = [httpx.AsyncClient(base_url=two.url, timeout=30, headers={"content-type": "text/plain"}) for _ in range(64)]
        try:
            return await asyncio.gather(*(client(c) for c in clients))
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))

    per_connection = asyncio.run(main())
    assert all(len(set(pids)) == 1 for pids in per_connection)  # kept alive: one worker per connection
    spread = Counter(pids[0] for pids in per_connection)
    assert len(spread) == 2 and min(spread.values()) >= 16, spread


def test_answers_stay_right_under_concurrency(two: Server, models: dict, iris) -> None:
    X, _ = iris
    rng = np.random.default_rng(7)
    paths = ("/iris_svc", "/iris_xgb", "/iris_xgb_inline")
    jobs = [(paths[i % 3], X[rng.integers(0, len(X), size=1 + i % 5)]) for i in range(600)]

    async def client(share: list[tuple[str, np.ndarray]]) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=two.url, timeout=60) as c:  # one connection, kept alive
            return [await c.post(path, json=rows.tolist()) for path, rows in share]

    async def main() -> list[httpx.Response]:
        shares = await asyncio.gather(*(client(jobs[k::48]) for k in range(48)))  # 48 concurrent connections
        return [shares[i % 48][i // 48] for i in range(len(jobs))]

    answers = asyncio.run(main())
    for (path, rows), res in zip(jobs, answers):
        model = models["svc"] if path == "/iris_svc" else models["xgb"]
        assert res.status_code == 200, res.text
        assert res.json() == model.predict(rows).tolist(), path
    assert {r.json()[0] for r in answers} == {0, 1, 2}  # the answers are not all alike


def test_models_load_once_in_the_supervisor(two: Server) -> None:
    workers = set(_pid_of_fresh_connections(two.url, 20))
    loads = (two.tmp / "loads.txt").read_text().split()  # type: ignore[attr-defined]
    assert loads == [str(two.proc.pid)] and str(two.proc.pid) not in map(str, workers)
    with two.client() as c:
        assert c.get("/readyz").text == "ready"


def test_each_worker_gets_its_share_of_the_cores_for_native_threads(two: Server) -> None:
    """OpenMP pools sized cores // workers, passive between calls: a spinning pool took the other worker's core."""
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    answers = [
        httpx.post(two.url + "/threads", content="", headers={"content-type": "text/plain"}, timeout=30).json()
        for _ in range(6)
    ]
    assert all(a == {"openmp": [share], "wait_policy": "PASSIVE"} for a in answers), answers


def test_share_cores_leaves_what_the_user_set() -> None:
    from mlpack.workers import share_cores

    environ = {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "ACTIVE"}
    share = share_cores(2, environ)
    assert share == max(1, len(os.sched_getaffinity(0)) // 2)
    assert environ == {
        "OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "ACTIVE", "OPENBLAS_NUM_THREADS": str(share), "MKL_NUM_THREADS": str(share)
    }  # fmt: skip
    assert share_cores(10_000, {}) == 1


def test_metrics_answer_with_two_workers(two: Server) -> None:
    for _ in range(6):  # on new connections: both workers answer
        res = httpx.get(two.url + "/metrics", timeout=30)
        assert res.status_code == 200 and "mlpack_requests" in res.text


def test_sigterm_drains_every_worker_and_exits_0(models: dict, tmp_path: Path) -> None:
    env = _env(tmp_path)
    started = Path(env["STARTED_DIR"])
    results: list[httpx.Response] = []

    def fire(url: str) -> None:
        async def main() -> list[httpx.Response]:
            headers = {"content-type": "text/plain"}
            clients = [httpx.AsyncClient(base_url=url, timeout=30, headers=headers) for _ in range(24)]  # both workers
            try:
                return await asyncio.gather(*(c.post("/slow", content="2") for c in clients))
            finally:
                await asyncio.gather(*(c.aclose() for c in clients))

        results.extend(asyncio.run(main()))

    with running_server("service.py:svc", home=models["home"], cwd=PROJECT, args=TWO, env=env) as srv:
        thread = threading.Thread(target=fire, args=(srv.url,))
        thread.start()
        deadline = time.monotonic() + 30
        while len(list(started.iterdir())) < 24 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(list(started.iterdir())) == 24
        os.kill(srv.proc.pid, signal.SIGTERM)  # the supervisor only: it passes it on to the workers
        thread.join(60)
        assert srv.proc.wait(60) == 0
    assert [r.status_code for r in results] == [200] * 24
    assert len({r.json()["pid"] for r in results}) == 2  # both workers had requests in flight, and finished them
    assert "stopping 2 workers" in srv.output() and srv.output().count("Finished server process") == 2


def test_a_killed_worker_is_replaced(models: dict, tmp_path: Path) -> None:
    with running_server("service.py:svc", home=models["home"], cwd=PROJECT, args=TWO, env=_env(tmp_path)) as srv:
        before = set(_pid_of_fresh_connections(srv.url, 40))
        assert len(before) == 2
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        seen: set[int] = set()
        deadline = time.monotonic() + 30
        while len(seen - before) < 1 and time.monotonic() < deadline:
            seen.update(_pid_of_fresh_connections(srv.url, 10))  # every one answered: no request is lost meanwhile
        assert victim not in seen and len(seen) == 2 and len(seen - before) == 1, (before, seen)
        with srv.client() as c:
            assert c.get("/readyz").text == "ready"
        assert f"[{victim}] was killed by signal 9" in srv.output()


def test_workers_that_keep_failing_stop_the_server(models: dict, tmp_path: Path) -> None:
    env = {**os.environ, "MLPACK_HOME": str(models["home"]), "PYTHONPATH": str(ROOT), "FAIL_IN_WORKERS": "1"}
    env.update(_env(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "mlpack", "serve", "service.py:svc", "--host", "127.0.0.1", "--port", "0", *TWO],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "exited with code 7" in proc.stderr and "failed 5 times in a row" in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith("error: the server stopped because its workers failed")


def test_port_0_serves_the_port_it_logs(models: dict, tmp_path: Path) -> None:
    env = {**os.environ, "MLPACK_HOME": str(models["home"]), "PYTHONPATH": str(ROOT), **_env(tmp_path)}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlpack", "serve", "service.py:svc", "--host", "127.0.0.1", "--port", "0", *TWO],
            cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline, port = time.monotonic() + 60, None
        while port is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"on http://127\.0\.0\.1:(\d+) with 2 workers", log.read_text())
            port = int(found.group(1)) if found else None
            time.sleep(0.05)
        assert port, log.read_text()
        pids = set()
        while len(pids) < 2 and time.monotonic() < deadline:
            try:
                pids.update(_pid_of_fresh_connections(f"http://127.0.0.1:{port}", 10))
            except httpx.TransportError:
                time.sleep(0.1)
        assert len(pids) == 2
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_a_port_in_use_is_one_clear_error(models: dict, tmp_path: Path) -> None:
    import socket

    env = {**os.environ, "MLPACK_HOME": str(models["home"]), "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **_env(tmp_path)}
    with socket.socket() as taken:  # listening, without SO_REUSEPORT: no one may join it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "mlpack", "serve", "service.py:svc", "--host", "127.0.0.1", "--port", str(port), *TWO],
            cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in proc.stderr
