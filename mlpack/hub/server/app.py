"""The hub's ASGI app: REST API, probes, metrics, OpenAPI + Swagger UI, and the web UI if present.

``create_app(config)`` builds it; ``serve(config)`` runs it under uvicorn. The web UI lives in
``mlpack.hub.ui``: when that module exists, its ``routes(hub)`` are mounted after the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import uuid
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from ...exceptions import ConfigError, MlpackError, ServiceUnavailable
from . import api
from .config import HubConfig
from .metrics import HubMetrics, MetricsMiddleware
from .openapi import openapi_spec
from .repository import Hub

log = logging.getLogger("mlpack.hub")

_SWAGGER_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mlpack hub API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-ui-standalone-preset.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/docs.json", dom_id: "#swagger-ui",
presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "BaseLayout"});</script>
</body></html>"""


def error_response(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def _mlpack_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, MlpackError)
    extra: dict[str, Any] = dict(getattr(exc, "fields", {}) or {})
    details = getattr(exc, "details", None)
    if details is not None:
        extra["details"] = details
    response = error_response(exc.http_status, str(exc), **extra)
    if isinstance(exc, ServiceUnavailable):
        response.headers["retry-after"] = str(max(1, round(exc.retry_after)))
    return response


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail or "error")


async def _server_error(_: Request, exc: Exception) -> Response:
    error_id = uuid.uuid4().hex[:12]
    log.error("error %s", error_id, exc_info=exc)
    return error_response(500, f"internal error {error_id}; see the hub's log", error_id=error_id)


def _ui_routes(hub: Hub) -> list[BaseRoute]:
    if importlib.util.find_spec("mlpack.hub.ui") is None:
        return []
    from .. import ui

    return list(ui.routes(hub))


def create_app(config: HubConfig, hub: Hub | None = None) -> Starlette:
    """The app over ``hub`` (opened from ``config`` when not given; its schema is created here)."""
    hub = hub or Hub(config).open()
    metrics = HubMetrics()
    spec = openapi_spec()

    async def livez(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        try:
            await run_in_threadpool(hub.db.ping)
        except Exception as exc:  # noqa: BLE001 - the probe reports any failure
            return PlainTextResponse(f"database unreachable: {type(exc).__name__}", status_code=503)
        try:
            await run_in_threadpool(hub.storage.check)
        except Exception as exc:  # noqa: BLE001
            return PlainTextResponse(f"storage unreachable ({hub.storage.description}): {type(exc).__name__}", status_code=503)
        return PlainTextResponse("ready")

    async def metrics_endpoint(_: Request) -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    async def docs_json(_: Request) -> Response:
        return JSONResponse(spec)

    async def docs(_: Request) -> Response:
        return HTMLResponse(_SWAGGER_HTML)

    routes: list[BaseRoute] = [
        Route("/livez", livez, methods=["GET"]),
        Route("/healthz", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/docs.json", docs_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]
    static = _swagger_static()
    if static is not None:
        routes.append(Mount("/docs/assets", static, name="swagger-ui"))
    routes += api.routes(hub)
    routes += _ui_routes(hub)

    @asynccontextmanager
    async def lifespan(_: Starlette):  # noqa: ANN202
        collector = asyncio.get_running_loop().create_task(_collect_forever(hub))
        try:
            yield
        finally:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
            hub.close()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
        exception_handlers={MlpackError: _mlpack_error, HTTPException: _http_error, Exception: _server_error},
    )
    app.state.hub = hub
    return app


async def _collect_forever(hub: Hub) -> None:
    """Collect unreferenced blobs now and then (a delete collects at once, within the grace period)."""
    while True:
        await asyncio.sleep(hub.config.gc_interval_seconds)
        try:
            await run_in_threadpool(hub.collect_garbage)
        except Exception as exc:  # noqa: BLE001 - retried next round
            log.warning("blob collection failed: %s", exc)


def _swagger_static() -> Any:
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    from starlette.staticfiles import StaticFiles

    return StaticFiles(directory=str(swagger_ui_path))


def _log_config() -> dict[str, Any]:
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["mlpack"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def open_hub(config: HubConfig) -> Hub:
    """The hub's database and storage, checked: any problem is one ConfigError naming it."""
    try:
        hub = Hub(config)
    except OSError as exc:
        raise ConfigError(f"cannot use the hub data directory {config.data_dir}: {exc}") from exc
    hub.open()
    try:
        hub.storage.check()
    except Exception as exc:  # noqa: BLE001 - botocore, OS errors: all mean "not usable"
        hub.close()
        reason = " ".join(str(exc).split())[:300]
        raise ConfigError(f"cannot use the hub storage {hub.storage.description}: {reason}") from exc
    return hub


def serve(config: HubConfig) -> None:
    """Run the hub until SIGINT/SIGTERM."""
    import logging.config

    import uvicorn

    from .protocol import HubHttpProtocol, steady_allocator

    steady_allocator()  # before the first upload's buffers are allocated
    log_config = _log_config()
    logging.config.dictConfig(log_config)
    hub = open_hub(config)  # fail here, with a clear error, before binding the port
    app = create_app(config, hub)
    where = (
        "SQLite at " + str(config.data_dir / "hub.db") if not config.db_url else hub.db.url.render_as_string(hide_password=True)
    )
    log.info("hub on http://%s:%d (metadata: %s; files: %s)", config.host, config.port, where, hub.storage.description)
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        loop="auto",  # uvloop where installed
        http=HubHttpProtocol,  # httptools, minus two copies of every body chunk
        lifespan="on",
        access_log=config.access_log,
        timeout_graceful_shutdown=30,
        log_level="info",
        log_config=log_config,
    )
