"""The server's metrics: exact values, read back through prometheus_client's parser, in one
process and summed over several (in-process, forked, killed, and a real `mlpack serve --workers 2`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import mlpack
import mlpack.metrics
from mlpack.metrics import Metrics
from mlpack.metricvalues import read_directory
from tests.fixtures.counting import CountingModel
from tests.server import ROOT, running_server

PROJECT = Path(__file__).parent / "fixtures" / "svc_project"


class Method:
    """What the hooks read of a RunnerMethod."""

    def __init__(self, runner: str = "iris_clf", name: str = "predict", queue_depth: int | None = 0) -> None:
        self.runner, self.name = SimpleNamespace(name=runner), name
        self._batcher = SimpleNamespace(queue_depth=queue_depth) if queue_depth is not None else None


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, parsed: {(name, sorted labels): value}."""
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=")
    return parse(body.decode())


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, labels: dict[str, str] | None = None, **more: str) -> float | None:
    return found.get((name, tuple(sorted({**(labels or {}), **more}.items()))))


def fake_clock(monkeypatch: pytest.MonkeyPatch, elapsed: list[float]) -> None:
    """perf_counter as the meters see it: each done() sees the next of ``elapsed`` since start()."""
    ticks = iter(x for e in elapsed for x in (0.0, e))  # from 0: elapsed exactly e, a bound included
    monkeypatch.setattr(mlpack.metrics, "perf_counter", lambda: next(ticks))


def test_families_keep_their_names_help_types_and_buckets() -> None:
    metrics = Metrics()
    metrics.meter("/predict", "native")
    metrics.batch_hook()(Method(), 3)
    metrics.isolation_hook()(Method(), 2, 1)
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition()[0].decode())}
    assert {name: (f.type, f.documentation) for name, f in families.items()} == {
        "mlpack_requests": (
            "counter",
            "HTTP requests answered, by endpoint, status and protocol (native, v2, kserve_v1, mlflow).",
        ),
        "mlpack_request_duration_seconds": ("histogram", "Time to answer a request."),
        "mlpack_requests_in_progress": ("gauge", "Requests being handled."),
        "mlpack_batch_size": ("histogram", "Rows per model call."),
        "mlpack_isolation_calls": (
            "counter",
            "Extra model calls made to find the requests of failed batches that fail on their own.",
        ),
        "mlpack_isolated_failures": (
            "counter",
            "Requests of failed batches that failed on their own (each got its own error).",
        ),
        "mlpack_queue_depth": ("gauge", "Requests waiting for the model after the latest batch was taken."),
    }

    def les(name: str) -> list[str]:
        return [s.labels["le"] for s in families[name].samples if s.name == name + "_bucket"]

    assert les("mlpack_request_duration_seconds") == [
        "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0",
        "10.0", "+Inf",
    ]  # fmt: skip
    assert les("mlpack_batch_size") == [f"{2.0**i}" for i in range(11)] + ["+Inf"]
    assert {tuple(sorted(s.labels)) for s in families["mlpack_batch_size"].samples} >= {("method", "runner")}


def test_request_counts_latency_buckets_and_in_progress_are_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_clock(monkeypatch, [0.0002, 0.03, 0.0005, 3.0, 20.0, 0.01])
    metrics = Metrics()
    meter = metrics.meter("/predict", "native")
    assert metrics.meter("/predict", "native") is meter  # asked again: the same series
    other = metrics.meter("/v2/models/iris/infer", "v2")
    for status in (200, 200, 422):
        meter.done(meter.start(), status)
    meter.done(meter.start(), 200)  # 3.0 s
    meter.done(meter.start(), None)  # the client went away: 20 s not counted
    other.done(other.start(), 500)
    meter.start()  # still running
    found = samples(metrics)
    native = {"endpoint": "/predict", "protocol": "native"}
    assert value(found, "mlpack_requests_total", http_status="200", **native) == 3
    assert value(found, "mlpack_requests_total", http_status="422", **native) == 1
    assert value(found, "mlpack_requests_total", endpoint="/v2/models/iris/infer", http_status="500", protocol="v2") == 1
    assert sum(v for (name, _), v in found.items() if name == "mlpack_requests_total") == 5
    assert value(found, "mlpack_requests_in_progress", **native) == 1
    assert value(found, "mlpack_requests_in_progress", endpoint="/v2/models/iris/infer", protocol="v2") == 0
    latency = "mlpack_request_duration_seconds"
    cumulative = {"0.0005": 2, "0.001": 2, "0.025": 2, "0.05": 3, "2.5": 3, "5.0": 4, "10.0": 4, "+Inf": 4}
    assert {le: value(found, latency + "_bucket", le=le, **native) for le in cumulative} == cumulative
    assert value(found, latency + "_count", **native) == 4
    assert value(found, latency + "_sum", **native) == pytest.approx(0.0002 + 0.03 + 0.0005 + 3.0)
    assert value(found, latency + "_bucket", le="0.01", endpoint="/v2/models/iris/infer", protocol="v2") == 1


def test_batch_and_isolation_hooks_are_exact() -> None:
    metrics = Metrics()
    batch, isolate = metrics.batch_hook(), metrics.isolation_hook()
    predict, proba = Method(queue_depth=7), Method(name="predict_proba", queue_depth=None)
    for rows in (1, 3, 64, 65, 2000):
        batch(predict, rows)
    batch(proba, 8)
    isolate(predict, 3, 1)
    isolate(predict, 2, 0)
    found = samples(metrics)
    labels = {"runner": "iris_clf", "method": "predict"}
    buckets = {"1.0": 1, "2.0": 1, "4.0": 2, "32.0": 2, "64.0": 3, "128.0": 4, "1024.0": 4, "+Inf": 5}
    assert {le: value(found, "mlpack_batch_size_bucket", le=le, **labels) for le in buckets} == buckets
    assert value(found, "mlpack_batch_size_sum", **labels) == 1 + 3 + 64 + 65 + 2000
    assert value(found, "mlpack_batch_size_count", runner="iris_clf", method="predict_proba") == 1
    assert value(found, "mlpack_queue_depth", **labels) == 7
    assert value(found, "mlpack_queue_depth", runner="iris_clf", method="predict_proba") == 0
    assert value(found, "mlpack_isolation_calls_total", **labels) == 5
    assert value(found, "mlpack_isolated_failures_total", **labels) == 1


def test_a_methods_own_batch_hook_counts_into_the_same_series_and_none_before_a_batch() -> None:
    metrics = Metrics()
    batch = metrics.batch_hook()
    predict = Method(queue_depth=2)
    own = batch.for_method(predict)  # what a RunnerMethod's batcher gets
    assert not any(name.startswith("mlpack_batch_size") for name, _ in samples(metrics))
    own(3)
    batch(predict, 5)  # the general hook, for the same method
    own(40)
    found = samples(metrics)
    labels = {"runner": "iris_clf", "method": "predict"}
    assert value(found, "mlpack_batch_size_count", **labels) == 3
    assert value(found, "mlpack_batch_size_sum", **labels) == 48
    assert value(found, "mlpack_batch_size_bucket", le="4.0", **labels) == 1
    assert value(found, "mlpack_batch_size_bucket", le="64.0", **labels) == 3
    assert value(found, "mlpack_queue_depth", **labels) == 2


@pytest.mark.parametrize("shared", [False, True], ids=["one-process", "files"])
def test_no_update_is_lost_while_batch_threads_and_the_loop_write_at_once(shared: bool, tmp_path: Path) -> None:
    metrics = Metrics(str(tmp_path) if shared else None)
    batch, meter, method = metrics.batch_hook(), metrics.meter("/predict", "native"), Method()
    calls, threads = 20_000, 4
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        # several threads observe the same method's batches (a method's calls may run off its batch
        # thread) while this thread, the loop's role, counts requests
        workers = [threading.Thread(target=lambda: [batch(method, 2) for _ in range(calls)]) for _ in range(threads)]
        for t in workers:
            t.start()
        for _ in range(calls):
            meter.done(meter.start(), 200)
        for t in workers:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    found = samples(metrics)
    labels = {"runner": "iris_clf", "method": "predict"}
    assert value(found, "mlpack_batch_size_count", **labels) == calls * threads
    assert value(found, "mlpack_batch_size_sum", **labels) == 2 * calls * threads
    assert value(found, "mlpack_requests_total", endpoint="/predict", http_status="200", protocol="native") == calls
    assert value(found, "mlpack_requests_in_progress", endpoint="/predict", protocol="native") == 0


def test_workers_sum_counters_and_only_live_gauges(tmp_path: Path) -> None:
    one, two = Metrics(str(tmp_path)), Metrics(str(tmp_path))  # two workers' files in one directory
    for metrics, n in ((one, 3), (two, 4)):
        meter = metrics.meter("/predict", "native")
        for _ in range(n):
            meter.done(meter.start(), 200)
        meter.start()
        metrics.batch_hook()(Method(queue_depth=n), n)
    native = {"endpoint": "/predict", "protocol": "native"}
    batch = {"runner": "iris_clf", "method": "predict"}
    for reader in (one, two):  # any worker answers the scrape with the same sums
        found = samples(reader)
        assert value(found, "mlpack_requests_total", http_status="200", **native) == 7
        assert value(found, "mlpack_request_duration_seconds_count", **native) == 7
        assert value(found, "mlpack_requests_in_progress", **native) == 2
        assert value(found, "mlpack_batch_size_sum", **batch) == 7
        assert value(found, "mlpack_queue_depth", **batch) == 7
    two.close()  # gone: its counts stay, its gauges go
    found = samples(one)
    assert value(found, "mlpack_requests_total", http_status="200", **native) == 7
    assert value(found, "mlpack_batch_size_count", **batch) == 2
    assert value(found, "mlpack_requests_in_progress", **native) == 1
    assert value(found, "mlpack_queue_depth", **batch) == 3


def test_a_killed_worker_keeps_its_counts_and_loses_its_gauges(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from mlpack.metrics import Metrics\n"
        "m = Metrics(sys.argv[1]); meter = m.meter('/predict', 'native')\n"
        "for _ in range(5): meter.done(meter.start(), 200)\n"
        "meter.start(); print('ready', flush=True); time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline() == "ready\n"
        reader = Metrics(str(tmp_path))
        native = {"endpoint": "/predict", "protocol": "native"}
        found = samples(reader)
        assert value(found, "mlpack_requests_total", http_status="200", **native) == 5
        assert value(found, "mlpack_requests_in_progress", **native) == 1
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    found = samples(reader)
    assert value(found, "mlpack_requests_total", http_status="200", **native) == 5
    assert value(found, "mlpack_requests_in_progress", **native) is None  # no live worker has it


@pytest.mark.parametrize("shared", [False, True], ids=["one-process", "files"])
def test_a_forked_worker_starts_from_zero_in_files_of_its_own(shared: bool, tmp_path: Path) -> None:
    metrics = Metrics(str(tmp_path) if shared else None)  # made before the fork, as a pre-fork supervisor would
    meter, batch = metrics.meter("/predict", "native"), metrics.batch_hook()
    for _ in range(2):
        meter.done(meter.start(), 200)
    batch(Method(), 5)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            own = samples(metrics)
            for _ in range(3):
                meter.done(meter.start(), 200)
            batch(Method(), 4)
            meter.start()
            os.write(write, repr(own).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_saw = eval(pipe.read())  # noqa: S307 - our own child's repr of a dict of numbers
    os.waitpid(pid, 0)
    native = {"endpoint": "/predict", "protocol": "native"}
    assert value(child_saw, "mlpack_requests_total", http_status="200", **native) == (2 if shared else 0)
    found = samples(metrics)
    # one process: each counts its own; files: the parent's 2 and the worker's 3, none twice
    assert value(found, "mlpack_requests_total", http_status="200", **native) == (5 if shared else 2)
    assert value(found, "mlpack_batch_size_sum", runner="iris_clf", method="predict") == (9 if shared else 5)
    assert value(found, "mlpack_requests_in_progress", **native) == 0  # the worker's gauge died with it
    if shared:
        assert len({entry.name.split("-")[0] for entry in tmp_path.glob("*.keys")}) == 2


def test_a_forked_child_that_counted_nothing_leaves_no_files(tmp_path: Path) -> None:
    metrics = Metrics(str(tmp_path))
    meter = metrics.meter("/predict", "native")
    meter.done(meter.start(), 200)
    # a subprocess with a preexec_fn forks, runs the fork hooks, then execs
    subprocess.run(["true"], preexec_fn=lambda: None, check=True)  # noqa: PLW1509
    assert len(list(tmp_path.glob("*.keys"))) == 2  # the child made its files, and left
    native = {"endpoint": "/predict", "protocol": "native"}
    assert value(samples(metrics), "mlpack_requests_total", native, http_status="200") == 1
    assert [p.name.split("-")[0] for p in tmp_path.iterdir()] == [str(os.getpid())] * 2  # its files went


@pytest.fixture
def store(home: Path, iris_svc) -> Path:
    mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True, "batch_dim": 0}})
    mlpack.sklearn.save_model("counter", CountingModel(delay=0.05), signatures={"predict": {"batchable": True}})
    return home


def _per_worker(directory: Path, *, alive: bool = False) -> dict[int, float]:
    """Requests each worker process counted (or each live one), from its own file."""
    return {
        process.pid: sum(values[0] for name, _, values in process.series if name == "mlpack_requests")
        for process in read_directory(str(directory))
        if process.alive or not alive
    }


def _requests(c: httpx.Client, status: str) -> float:
    found = parse(c.get("/metrics").text)
    return value(found, "mlpack_requests_total", endpoint="/predict", http_status=status, protocol="native") or 0.0


@pytest.mark.slow
def test_two_workers_report_exact_sums_also_after_one_is_killed(store: Path, tmp_path: Path) -> None:
    temp = tmp_path / "tmp"  # where the server makes its metrics directory
    temp.mkdir()
    with running_server("service.py:svc", home=store, cwd=PROJECT, args=("--workers", "2"), env={"TMPDIR": str(temp)}) as srv:
        (directory,) = temp.glob("mlpack-metrics-*")
        sent = {"200": 0, "400": 0}

        def send() -> None:
            """Requests on new connections (which spread over the workers) until both live ones answered some."""
            for i in range(400):
                with srv.client() as c:
                    bad = i % 3 == 2
                    res = c.post(
                        "/predict",
                        content=b"[[1, 2" if bad else b"[[5.1, 3.5, 1.4, 0.2]]",
                        headers={"content-type": "application/json"},
                    )
                    assert res.status_code == (400 if bad else 200), res.text
                    sent[str(res.status_code)] += 1
                live = _per_worker(directory, alive=True)
                if sum(n > 0 for n in live.values()) >= 2 and i >= 10:
                    return
            pytest.fail(f"requests did not reach two workers: {live}")

        send()
        per_worker = _per_worker(directory)
        assert sum(n > 0 for n in per_worker.values()) == 2 and sum(per_worker.values()) == sum(sent.values())
        with srv.client() as c:  # whichever worker answers: the exact sums over both
            for _ in range(4):
                assert (_requests(c, "200"), _requests(c, "400")) == (sent["200"], sent["400"])

        # kill the worker that is handling a slow request: its counts stay, its gauge goes
        failed: list[Exception] = []

        def slow() -> None:
            try:
                with srv.client() as c:
                    c.post("/slow", content="20", headers={"content-type": "text/plain"})
            except httpx.HTTPError as exc:
                failed.append(exc)

        thread = threading.Thread(target=slow)
        thread.start()
        deadline = time.monotonic() + 30
        while not (victims := [p.pid for p in read_directory(str(directory)) if p.alive and _slow(p.series)]):
            assert time.monotonic() < deadline, "the slow request never started"
            time.sleep(0.05)
        with srv.client() as c:
            assert value(parse(c.get("/metrics").text), *SLOW) == 1
        os.kill(victims[0], signal.SIGKILL)  # uvicorn starts another worker
        thread.join(30)
        assert failed, "the killed worker's request was answered"
        before = set(per_worker)
        while not any(p.alive and p.pid not in before for p in read_directory(str(directory))):
            assert time.monotonic() < deadline + 30, "no worker replaced the killed one"
            time.sleep(0.1)
        send()
        after = _per_worker(directory)
        assert after[victims[0]] == per_worker[victims[0]]  # the dead worker's file still counts
        assert sum(after.values()) == sum(sent.values())
        with srv.client() as c:
            for _ in range(4):
                assert (_requests(c, "200"), _requests(c, "400")) == (sent["200"], sent["400"])
                assert value(parse(c.get("/metrics").text), *SLOW) == 0  # not stuck at 1


SLOW = ("mlpack_requests_in_progress", {"endpoint": "/slow", "protocol": "native"})


def _slow(series: list) -> bool:
    return any(name == SLOW[0] and labels == ("/slow", "native") and values[0] > 0 for name, labels, values in series)


def test_every_protocol_counts_an_answer_before_it_leaves(store: Path) -> None:
    """A client holding its answer finds it in /metrics, even read at once from another process
    (another worker, a scraper): each protocol's endpoint counts the request before the body goes
    out. Checked at the ASGI layer, where the moment the body is sent is exact."""
    import asyncio
    import json

    from mlpack.config import ServeOptions
    from mlpack.serve import build_app
    from mlpack.target import load_service

    service = load_service("service.py:svc", PROJECT).service
    options = ServeOptions(target="service.py:svc", working_dir=str(PROJECT), protocols={"mlflow": {"api": "predict"}})
    app = build_app(service, options)
    row = [[5.1, 3.5, 1.4, 0.2]]
    v2 = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": row[0]}]}
    calls = [
        ("/predict", "/predict", json.dumps(row), "native"),
        ("/v2/models/predict/infer", "/v2/models/{name}/infer", json.dumps(v2), "v2"),
        ("/v1/models/predict:predict", "/v1/models/{name}:predict", json.dumps({"instances": row}), "kserve_v1"),
        ("/invocations", "/invocations", json.dumps({"inputs": row}), "mlflow"),
    ]

    async def request(method: str, path: str, body: bytes = b"", on_body=None) -> tuple[int, bytes]:  # noqa: ANN001
        headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 3000),
        }
        answer: dict[str, object] = {"body": b""}

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                if on_body is not None:
                    await on_body()
                answer["body"] += message.get("body", b"")  # type: ignore[operator]

        await app(scope, receive, send)
        return answer["status"], answer["body"]  # type: ignore[return-value]

    async def main() -> None:
        events: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        started = asyncio.Event()

        async def lifespan_receive() -> dict[str, str]:
            return await events.get()

        async def lifespan_send(message: dict[str, str]) -> None:
            if message["type"] == "lifespan.startup.complete":
                started.set()

        lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, lifespan_receive, lifespan_send))
        await events.put({"type": "lifespan.startup"})
        await asyncio.wait_for(started.wait(), 30)
        for _ in range(300):
            if (await request("GET", "/readyz"))[0] == 200:
                break
            await asyncio.sleep(0.05)
        try:
            for path, route, body, protocol in calls:
                seen: list[float | None] = []

                async def scrape(route: str = route, protocol: str = protocol, seen: list = seen) -> None:  # noqa: ANN001
                    text = (await request("GET", "/metrics"))[1].decode()
                    seen.append(value(parse(text), "mlpack_requests_total", endpoint=route, http_status="200", protocol=protocol))

                status, answer = await request("POST", path, body.encode(), on_body=scrape)
                assert status == 200 and b"0" in answer, (path, answer)
                assert seen and seen[0] == 1, f"{protocol}: {seen} when its answer left"
        finally:
            await events.put({"type": "lifespan.shutdown"})
            await asyncio.wait_for(lifespan, 30)

    asyncio.run(main())
