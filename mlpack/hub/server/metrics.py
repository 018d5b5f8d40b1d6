"""Prometheus metrics of the hub: requests by endpoint and status, latency, bytes moved."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def endpoint_of(method: str, path: str) -> str:
    """A low-cardinality label for a request path (no names, versions or digests)."""
    if path.startswith("/api/v1/"):
        parts = path[len("/api/v1/") :].split("/")
        if parts[0] == "blobs":
            return f"{method} /api/v1/blobs/" + ("missing" if parts[1:] == ["missing"] else "{sha256}")
        shape = ["{kind}", "{name}", "{version}"][: len(parts)]
        if len(parts) > 3 and parts[3] == "files":
            shape = [*shape, "files", "{relpath}"]
        elif parts == ["whoami"]:
            shape = ["whoami"]
        return f"{method} /api/v1/" + "/".join(shape)
    if path in ("/livez", "/healthz", "/readyz", "/metrics", "/docs", "/docs.json"):
        return f"{method} {path}"
    if path.startswith("/docs/"):
        return f"{method} /docs/assets"
    return f"{method} ui"


class HubMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mlpack_hub_requests",
            "HTTP requests answered, by endpoint and status.",
            ["endpoint", "http_status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlpack_hub_request_duration_seconds",
            "Time to answer a request.",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.bytes_in = Counter("mlpack_hub_received_bytes", "Request body bytes received.", registry=self.registry)
        self.bytes_out = Counter("mlpack_hub_sent_bytes", "Response body bytes sent.", registry=self.registry)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """A pure ASGI middleware (streams untouched) that counts every HTTP request into ``metrics``."""

    def __init__(self, app: Any, metrics: HubMetrics, label: Callable[[str, str], str] = endpoint_of) -> None:
        self.app, self.metrics, self.label = app, metrics, label

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.metrics
        endpoint = self.label(scope["method"], scope["path"])
        status = [500]
        start = time.perf_counter()

        async def counting_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                metrics.bytes_in.inc(len(message.get("body", b"")))
            return message

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                metrics.bytes_out.inc(len(message.get("body", b"")))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            metrics.requests.labels(endpoint, str(status[0])).inc()
            metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
