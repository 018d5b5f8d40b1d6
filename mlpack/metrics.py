"""Prometheus metrics of one server, correct across several worker processes."""

from __future__ import annotations

import os
import time
from typing import Any

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """Request counts, latencies, batch sizes and queue depth, in a registry of its own.

    With ``PROMETHEUS_MULTIPROC_DIR`` set (the server sets it when it starts several workers),
    values live in shared files and ``/metrics`` in any worker reports the sum over all.
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.requests = Counter(
            "mlpack_requests",
            "HTTP requests answered, by endpoint, status and protocol (native, v2, kserve_v1, mlflow).",
            ["endpoint", "http_status", "protocol"],
            registry=reg,
        )
        self.latency = Histogram(
            "mlpack_request_duration_seconds",
            "Time to answer a request.",
            ["endpoint", "protocol"],
            buckets=_LATENCY_BUCKETS, registry=reg
        )
        self.in_progress = Gauge(
            "mlpack_requests_in_progress",
            "Requests being handled.",
            ["endpoint", "protocol"],
            multiprocess_mode="livesum", registry=reg
        )
        self.batch_size = Histogram(
            "mlpack_batch_size", "Rows per model call.", ["runner", "method"], buckets=_BATCH_BUCKETS, registry=reg
        )
        self.isolation_calls = Counter(
            "mlpack_isolation_calls",
            "Extra model calls made to find the requests of failed batches that fail on their own.",
            ["runner", "method"],
            registry=reg,
        )
        self.isolated_failures = Counter(
            "mlpack_isolated_failures",
            "Requests of failed batches that failed on their own (each got its own error).",
            ["runner", "method"],
            registry=reg,
        )
        self.queue_depth = Gauge(
            "mlpack_queue_depth",
            "Requests waiting for the model after the latest batch was taken.",
            ["runner", "method"],
            multiprocess_mode="livesum",
            registry=reg,
        )

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged), CONTENT_TYPE_LATEST

    def batch_hook(self) -> Any:
        """``Runner.on_batch``: observe a batch's rows and the queue left behind it."""

        def observe(method: Any, rows: int) -> None:
            self.batch_size.labels(method.runner.name, method.name).observe(rows)
            batcher = method._batcher
            self.queue_depth.labels(method.runner.name, method.name).set(batcher.queue_depth if batcher else 0)

        return observe

    def isolation_hook(self) -> Any:
        """``Runner.on_isolate``: count the extra calls of an isolation and the requests that failed alone."""

        def observe(method: Any, extra_calls: int, failed_alone: int) -> None:
            self.isolation_calls.labels(method.runner.name, method.name).inc(extra_calls)
            self.isolated_failures.labels(method.runner.name, method.name).inc(failed_alone)

        return observe

    def meter(self, endpoint: str, protocol: str) -> EndpointMeter:
        """The request metrics of one route of a protocol."""
        return EndpointMeter(self, endpoint, protocol)

    def close(self) -> None:
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


class EndpointMeter:
    """Request count, latency and in-progress gauge of one route (the children made once)."""

    __slots__ = ("_counters", "_in_progress", "_latency", "_requests")

    def __init__(self, metrics: Metrics, endpoint: str, protocol: str) -> None:
        self._in_progress = metrics.in_progress.labels(endpoint, protocol)
        self._latency = metrics.latency.labels(endpoint, protocol)
        self._requests = lambda status: metrics.requests.labels(endpoint, status, protocol)
        self._counters: dict[int, Any] = {}

    def start(self) -> float:
        self._in_progress.inc()
        return time.perf_counter()

    def done(self, started: float, status: int | None) -> None:
        """``status`` None: the client went away before an answer (not counted as a request)."""
        self._in_progress.dec()
        if status is None:
            return
        counter = self._counters.get(status)
        if counter is None:
            counter = self._counters[status] = self._requests(str(status))
        counter.inc()
        self._latency.observe(time.perf_counter() - started)
