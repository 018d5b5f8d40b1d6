"""CPU cost of the server's metrics per request and per model call: prometheus_client objects vs mlpack's slots.

Run: .venv/bin/python benchmarks/metrics.py [--rounds 7] [--ops 100000]
Measures, each variant in a fresh process (prometheus_client picks its multiprocess mode at
import), rounds interleaved, medians over rounds:

- ``EndpointMeter.start`` + ``done(200)``: what every request pays;
- ``batch_hook``: what every model call pays (a batch; at one client, every request);
- a scrape of ``/metrics`` (``exposition()``) with two workers' values to sum (multiprocess).

"old" is the previous implementation (prometheus_client Counter/Gauge/Histogram children updated
per request; with ``PROMETHEUS_MULTIPROC_DIR``, its mmap'd files), "new" is ``mlpack.metrics``.
Ratios old/new are printed from the same run. Target: new well under 1 us per request.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class OldMetrics:
    """The request-path part of the previous ``mlpack.metrics`` (prometheus_client objects)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        reg = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("mlpack_requests", "r", ["endpoint", "http_status", "protocol"], registry=reg)
        self.latency = Histogram(
            "mlpack_request_duration_seconds", "l", ["endpoint", "protocol"], buckets=LATENCY_BUCKETS, registry=reg
        )
        self.in_progress = Gauge(
            "mlpack_requests_in_progress", "i", ["endpoint", "protocol"], multiprocess_mode="livesum", registry=reg
        )
        self.batch_size = Histogram("mlpack_batch_size", "b", ["runner", "method"], buckets=BATCH_BUCKETS, registry=reg)
        self.queue_depth = Gauge("mlpack_queue_depth", "q", ["runner", "method"], multiprocess_mode="livesum", registry=reg)

    def meter(self, endpoint: str, protocol: str) -> Any:
        return OldMeter(self, endpoint, protocol)

    def batch_hook(self) -> Any:
        def observe(method: Any, rows: int) -> None:
            self.batch_size.labels(method.runner.name, method.name).observe(rows)
            batcher = method._batcher
            self.queue_depth.labels(method.runner.name, method.name).set(batcher.queue_depth if batcher else 0)

        return observe

    def exposition(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged)


class OldMeter:
    def __init__(self, metrics: OldMetrics, endpoint: str, protocol: str) -> None:
        self._in_progress = metrics.in_progress.labels(endpoint, protocol)
        self._latency = metrics.latency.labels(endpoint, protocol)
        self._requests = lambda status: metrics.requests.labels(endpoint, status, protocol)
        self._counters: dict[int, Any] = {}

    def start(self) -> float:
        self._in_progress.inc()
        return time.perf_counter()

    def done(self, started: float, status: int | None) -> None:
        self._in_progress.dec()
        if status is None:
            return
        counter = self._counters.get(status)
        if counter is None:
            counter = self._counters[status] = self._requests(str(status))
        counter.inc()
        self._latency.observe(time.perf_counter() - started)


class Method:
    """What the hooks read of a ``RunnerMethod`` (hashable, like it)."""

    def __init__(self, queue_depth: int | None) -> None:
        self.runner, self.name = SimpleNamespace(name="iris_clf"), "predict"
        self._batcher = SimpleNamespace(queue_depth=queue_depth) if queue_depth is not None else None


def _median_ns(fn: Any, ops: int, repeats: int) -> float:
    """Median over ``repeats`` of the CPU ns per call of ``fn(ops)`` (which runs ``ops`` operations).

    CPU time of this thread, not wall time: on a shared machine the wall clock also counts the
    time other processes ran on this core.
    """
    times = []
    for _ in range(repeats):
        t0 = time.thread_time_ns()
        fn(ops)
        times.append((time.thread_time_ns() - t0) / ops)
    return statistics.median(times)


def measure(kind: str, ops: int, repeats: int) -> dict[str, float]:
    """In this process: ns per request, per batch hook call, and per scrape of ``kind`` metrics."""
    if kind == "old":
        metrics: Any = OldMetrics()
    else:
        from mlpack.metrics import Metrics

        metrics = Metrics()
    meter = metrics.meter("/predict", "native")
    hook = metrics.batch_hook()
    method = Method(queue_depth=3)

    def requests(n: int) -> None:
        start, done = meter.start, meter.done
        for _ in range(n):
            done(start(), 200)

    def batches(n: int) -> None:
        for i in range(n):
            hook(method, i & 63)

    def empty(n: int) -> None:
        for _ in range(n):
            pass

    def scrape(n: int) -> None:
        for _ in range(n):
            metrics.exposition()

    requests(1000), batches(1000)  # series made, caches warm
    result = {
        "request": _median_ns(requests, ops, repeats),
        "batch": _median_ns(batches, ops, repeats),
        "loop": _median_ns(empty, ops, repeats),
    }
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # a second worker's values in the directory, as a scrape of two workers reads them
        subprocess.run([sys.executable, __file__, "--worker", kind], check=True, env=os.environ)
    result["scrape"] = _median_ns(scrape, max(ops // 1000, 20), repeats)
    return result


def run_variant(kind: str, multiprocess: bool, ops: int, repeats: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    directory = tempfile.mkdtemp(prefix="mlpack-bench-metrics-") if multiprocess else None
    if directory:
        env["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        cmd = [sys.executable, __file__, "--measure", kind, "--ops", str(ops), "--repeats", str(repeats)]
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        return json.loads(out)
    finally:
        if directory:
            shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ops", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--measure", choices=("old", "new"), help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=("old", "new"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.ops, args.repeats)))
        return
    if args.worker:  # another worker: some requests and batches into the shared directory, then exit
        measure_worker(args.worker)
        return
    variants = [(kind, mp) for mp in (False, True) for kind in ("old", "new")]
    results: dict[tuple[str, bool], list[dict[str, float]]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for kind, mp in variants:
            results[(kind, mp)].append(run_variant(kind, mp, args.ops, args.repeats))
    med = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in results.items()}
    print(
        f"{args.rounds} rounds x {args.repeats} repeats x {args.ops} ops; CPU ns per operation, medians "
        f"(the empty loop's own cost is {statistics.median(m['loop'] for m in med.values()):.0f} ns and is included)"
    )
    print(f"{'':24} {'old':>10} {'new':>10} {'old/new':>8}")
    for mp in (False, True):
        label = "2 workers" if mp else "1 worker"
        for what, name in (("request", "start+done"), ("batch", "batch hook"), ("scrape", "scrape")):
            old, new = med[("old", mp)][what], med[("new", mp)][what]
            print(f"{label + ', ' + name:24} {old:>10.0f} {new:>10.0f} {old / new:>7.1f}x")


def measure_worker(kind: str) -> None:
    if kind == "old":
        metrics: Any = OldMetrics()
    else:
        from mlpack.metrics import Metrics

        metrics = Metrics()
    meter, hook = metrics.meter("/predict", "native"), metrics.batch_hook()
    method = Method(queue_depth=None)
    for i in range(100):
        meter.done(meter.start(), 200)
        hook(method, i)


if __name__ == "__main__":
    main()
