"""Prometheus metrics of one server, cheap on the request path, correct across several workers.

Updates are plain arithmetic on preallocated slots (``mlpack.metricvalues``); a
prometheus_client collector turns the slots into metric families when ``/metrics`` is scraped.

Who writes what (each slot has one writer thread, so no update is torn or lost):

- the event loop thread: request counts, latencies and in-progress gauges (``EndpointMeter``),
  isolation counts (``isolation_hook``);
- a model's batch thread: batch sizes and queue depth (``batch_hook``), the histogram under a
  lock of its own, as a method's calls may also run on another thread (the loop, say).

With several workers each process writes its own file into one directory and ``/metrics`` in
any worker reports the sum over all of them: counters and histograms of every process that ever
ran, gauges of the live ones only. The directory is ``Metrics(directory)``, else
``$PROMETHEUS_MULTIPROC_DIR`` (the name gunicorn and prometheus_client users know; its own
multiprocess mode is not used): set it before the app, and so its ``Metrics``, is made. A
worker forked from a process that made its ``Metrics`` (a supervisor that loads models before
forking) starts from zero in files of its own, by itself (``os.register_at_fork``); each
worker's ``close()`` at shutdown drops its gauges at once, its death does so anyway.
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from bisect import bisect_left
from collections.abc import Iterator
from time import perf_counter
from typing import Any

from .metricvalues import Slots, read_directory

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)

REQUESTS, LATENCY, IN_PROGRESS = "mlpack_requests", "mlpack_request_duration_seconds", "mlpack_requests_in_progress"
BATCH_SIZE, QUEUE_DEPTH = "mlpack_batch_size", "mlpack_queue_depth"
ISOLATION_CALLS, ISOLATED_FAILURES = "mlpack_isolation_calls", "mlpack_isolated_failures"

# name: (kind, help, label names, buckets), in the order of the exposition
FAMILIES: dict[str, tuple[str, str, tuple[str, ...], tuple[float, ...]]] = {
    REQUESTS: (
        "counter",
        "HTTP requests answered, by endpoint, status and protocol (native, v2, kserve_v1, mlflow).",
        ("endpoint", "http_status", "protocol"),
        (),
    ),
    LATENCY: ("histogram", "Time to answer a request.", ("endpoint", "protocol"), _LATENCY_BUCKETS),
    IN_PROGRESS: ("gauge", "Requests being handled.", ("endpoint", "protocol"), ()),
    BATCH_SIZE: ("histogram", "Rows per model call.", ("runner", "method"), _BATCH_BUCKETS),
    ISOLATION_CALLS: (
        "counter",
        "Extra model calls made to find the requests of failed batches that fail on their own.",
        ("runner", "method"),
        (),
    ),
    ISOLATED_FAILURES: (
        "counter",
        "Requests of failed batches that failed on their own (each got its own error).",
        ("runner", "method"),
        (),
    ),
    QUEUE_DEPTH: ("gauge", "Requests waiting for the model after the latest batch was taken.", ("runner", "method"), ()),
}


def _size(name: str) -> int:
    """Slots of one series: a value, or a histogram's buckets (+Inf last) and then its sum."""
    buckets = FAMILIES[name][3]
    return len(buckets) + 2 if FAMILIES[name][0] == "histogram" else 1


class Metrics:
    """Request counts, latencies, batch sizes and queue depth of this server."""

    def __init__(self, directory: str | None = None) -> None:
        from prometheus_client import CollectorRegistry

        self.directory = directory if directory is not None else os.environ.get(MULTIPROC_ENV) or None
        self.multiprocess = self.directory is not None
        self.slots = Slots(self.directory)
        self._meters: dict[tuple[str, str], EndpointMeter] = {}
        self._batch: dict[tuple[str, str], BatchMeter] = {}
        self._isolation: dict[tuple[str, str], tuple[int, int, int, int]] = {}  # segment, base: calls, failures
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        os.register_at_fork(after_in_child=functools.partial(_after_fork, weakref.ref(self)))

    def meter(self, endpoint: str, protocol: str) -> EndpointMeter:
        """The request metrics of one route of a protocol (one per route: asked again, the same)."""
        meter = self._meters.get((endpoint, protocol))
        if meter is None:
            meter = self._meters[(endpoint, protocol)] = EndpointMeter(self.slots, endpoint, protocol)
        return meter

    def batch_hook(self) -> Any:
        """``Runner.on_batch``: observe a batch's rows and the queue left behind it."""
        meters: dict[Any, BatchMeter] = {}  # by method object: no key to build per call

        def meter_of(method: Any) -> BatchMeter:
            meter = meters.get(method)
            if meter is None:
                meter = meters[method] = self._batch_meter(method.runner.name, method.name)
            return meter

        def observe(method: Any, rows: int) -> None:
            batcher = method._batcher
            meter_of(method).observe(rows, batcher.queue_depth if batcher else 0)

        def for_method(method: Any) -> Any:
            """``observe`` bound to one method: what its batcher calls with each batch's rows."""
            meter: BatchMeter | None = None

            def observe_rows(rows: int) -> None:
                nonlocal meter
                if meter is None:  # on the first batch, as ``observe``: no series before one ran
                    meter = meter_of(method)
                batcher = method._batcher
                meter.observe(rows, batcher.queue_depth if batcher else 0)

            return observe_rows

        observe.for_method = for_method  # type: ignore[attr-defined]
        return observe

    def isolation_hook(self) -> Any:
        """``Runner.on_isolate``: count the extra calls of an isolation and the requests that failed alone."""
        slots, series = self.slots, self._isolation

        def observe(method: Any, extra_calls: int, failed_alone: int) -> None:
            key = (method.runner.name, method.name)
            where = series.get(key)
            if where is None:
                where = series[key] = (*slots.allocate(ISOLATION_CALLS, key, 1), *slots.allocate(ISOLATED_FAILURES, key, 1))
            segments = slots.segments
            with slots.lock:
                segments[where[0]][where[1]] += extra_calls
                segments[where[2]][where[3]] += failed_alone

        return observe

    def _batch_meter(self, runner: str, method: str) -> BatchMeter:
        with self.slots.lock:  # batch threads of several methods may ask at once
            meter = self._batch.get((runner, method))
            if meter is None:
                meter = self._batch[(runner, method)] = BatchMeter(self.slots, (runner, method))
            return meter

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """This worker is done: from now on other workers report none of its gauges."""
        self.slots.release()

    def series(self) -> dict[str, dict[tuple[str, ...], list[float]]]:
        """Every series's values, summed over the workers: ``{name: {labels: values}}``."""
        totals: dict[str, dict[tuple[str, ...], list[float]]] = {name: {} for name in FAMILIES}
        if self.directory is not None:
            rows: Iterator[tuple[str, tuple[str, ...], list[float], bool]] = (
                (*one, process.alive) for process in read_directory(self.directory) for one in process.series
            )
        else:
            rows = ((name, labels, values, True) for name, labels, values in self.slots.snapshot())
        for name, labels, values, alive in rows:
            family = FAMILIES.get(name)
            if family is None or len(values) != _size(name) or (family[0] == "gauge" and not alive):
                continue
            total = totals[name].get(labels)
            if total is None:
                totals[name][labels] = values
            else:
                totals[name][labels] = [a + b for a, b in zip(total, values)]
        return totals

    def _after_fork(self) -> None:
        self.slots.after_fork()
        for meter in (*self._meters.values(), *self._batch.values()):
            meter._bind()


def _after_fork(ref: weakref.ref[Metrics]) -> None:
    metrics = ref()
    if metrics is not None:
        metrics._after_fork()


class EndpointMeter:
    """Request count, latency and in-progress gauge of one route; runs on the event loop thread."""

    __slots__ = ("_counts", "_hist", "_hist_at", "_live", "_live_at", "_slots", "_statuses", "_sum_at", "_labels", "_where")

    def __init__(self, slots: Slots, endpoint: str, protocol: str) -> None:
        self._slots, self._labels = slots, (endpoint, protocol)
        self._where = (slots.allocate(IN_PROGRESS, self._labels, 1), slots.allocate(LATENCY, self._labels, _size(LATENCY)))
        self._statuses: dict[Any, tuple[int, int]] = {}  # status -> segment, base of its counter
        self._bind()

    def _bind(self) -> None:
        """Point at the slots' current segments (again after a fork)."""
        segments = self._slots.segments
        (live, self._live_at), (hist, self._hist_at) = self._where
        self._live, self._hist = segments[live], segments[hist]
        self._sum_at = self._hist_at + _size(LATENCY) - 1
        self._counts = {status: (segments[s], at) for status, (s, at) in self._statuses.items()}

    def start(self) -> float:
        self._live[self._live_at] += 1
        return perf_counter()

    def done(self, started: float, status: int | None) -> None:
        """``status`` None: the client went away before an answer (not counted as a request)."""
        self._live[self._live_at] -= 1
        if status is None:
            return
        elapsed = perf_counter() - started
        counter = self._counts.get(status)
        if counter is None:
            counter = self._count(status)
        counter[0][counter[1]] += 1
        hist, at = self._hist, self._hist_at
        hist[at + bisect_left(_LATENCY_BUCKETS, elapsed)] += 1
        hist[self._sum_at] += elapsed

    def _count(self, status: Any) -> tuple[Any, int]:
        endpoint, protocol = self._labels
        segment, at = self._statuses[status] = self._slots.allocate(REQUESTS, (endpoint, str(status), protocol), 1)
        counter = self._counts[status] = (self._slots.segments[segment], at)
        return counter


class BatchMeter:
    """Batch-size histogram and queue-depth gauge of one runner method."""

    __slots__ = ("_depth", "_depth_at", "_hist", "_hist_at", "_lock", "_slots", "_sum_at", "_where")

    def __init__(self, slots: Slots, labels: tuple[str, str]) -> None:
        self._slots = slots
        self._where = (slots.allocate(BATCH_SIZE, labels, _size(BATCH_SIZE)), slots.allocate(QUEUE_DEPTH, labels, 1))
        self._bind()

    def _bind(self) -> None:
        segments = self._slots.segments
        (hist, self._hist_at), (depth, self._depth_at) = self._where
        self._hist, self._depth = segments[hist], segments[depth]
        self._sum_at = self._hist_at + _size(BATCH_SIZE) - 1
        self._lock = threading.Lock()  # anew after a fork: another thread may have held it

    def observe(self, rows: int, depth: int) -> None:
        """Any thread: a method's model calls run on its batch thread, but may run elsewhere too."""
        hist, at = self._hist, self._hist_at
        with self._lock:
            hist[at + bisect_left(_BATCH_BUCKETS, rows)] += 1
            hist[self._sum_at] += rows
        self._depth[self._depth_at] = depth  # a store: the latest wins


class _Collector:
    """The families of ``/metrics``, made from the slots at each scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = weakref.ref(metrics)  # the registry is the metrics' own: no cycle through it

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        metrics = self._metrics()
        totals = metrics.series() if metrics is not None else {name: {} for name in FAMILIES}
        for name, (kind, doc, labelnames, buckets) in FAMILIES.items():
            if kind == "histogram":
                histogram = HistogramMetricFamily(name, doc, labels=labelnames)
                for labels, values in totals[name].items():
                    running, cumulative = 0.0, []
                    for le, count in zip((*map(floatToGoString, buckets), "+Inf"), values):
                        running += count
                        cumulative.append((le, running))
                    histogram.add_metric(labels, cumulative, values[-1])
                yield histogram
            else:
                family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, doc, labels=labelnames)
                for labels, (value,) in totals[name].items():
                    family.add_metric(labels, value)
                yield family
