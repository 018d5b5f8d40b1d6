"""The HTTP server: a Starlette app over a Service, run by uvicorn (uvloop + httptools).

``serve(options)`` runs in the CLI process. With one worker it serves there, loading the
models in the background; with several, it loads them and forks the workers
(``mlpack.workers``), each building its app from the loaded service; under ``--reload``,
uvicorn's reloader process builds it with ``create_app()``, from the options in the environment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import logging
import logging.config
import os
import socket
import tempfile
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from .config import ServeOptions
from .endpoint import ASGIEndpoint, json_response, make_endpoint
from .exceptions import ConfigError, ServeError, ServiceUnavailable

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from .service import Service
    from .target import LoadedService

log = logging.getLogger("mlpack.serve")
OPTIONS_ENV = "MLPACK_SERVE_OPTIONS"

_SWAGGER_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="/static/swagger-ui/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/static/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/swagger-ui/swagger-ui-standalone-preset.js"></script>
<script>window.ui = SwaggerUIBundle({{url: "/docs.json", dom_id: "#swagger-ui",
presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "BaseLayout"}});</script>
</body></html>"""


class _State:
    """What one worker's app knows at run time."""

    def __init__(self, service: Service, options: ServeOptions) -> None:
        self.service = service
        self.options = options
        self.ready = False
        self.load_error: str | None = None
        self.loader: asyncio.Task[None] | None = None
        self.metrics: Any = None
        from .errorlog import ErrorLog

        self.errors = ErrorLog(log)  # per app: tracebacks once per kind of error, then counts
        from .deadlines import Deadlines

        self.deadlines = Deadlines(options.timeout)  # every API call of every protocol
        if options.metrics_enabled:
            from .metrics import Metrics

            self.metrics = Metrics()

    async def wait_loaded(self, timeout: float) -> None:
        """Hold a request that arrives during start-up until the models are in (or failed)."""
        if self.loader is not None and not self.loader.done():
            await asyncio.wait([self.loader], timeout=timeout)
        if not self.ready:
            raise ServiceUnavailable(self.load_error or "models are still loading", retry_after=1)

    async def load(self) -> None:
        try:
            for runner in self.service.runners:
                await asyncio.to_thread(runner.load)
        except Exception as exc:  # keep serving probes; readiness reports why
            self.load_error = f"loading models failed: {exc}"
            log.error("%s", self.load_error, exc_info=exc)
            return
        self.loaded()

    def loaded(self) -> None:
        """The models are in: freeze what stays, and say ready."""
        # Models, frameworks and the app stay for the life of the worker: move them out of the
        # garbage collector's sight, or every full collection walks them all (a pause of tens of
        # ms on a small machine, every few seconds under load: most of the p99 at high load).
        gc.collect()
        gc.freeze()
        self.ready = True
        log.info("models loaded: %s", ", ".join(str(r.model.tag) for r in self.service.runners) or "(none)")


def build_app(service: Service, options: ServeOptions) -> Starlette:
    """The ASGI app for ``service``; models load in the background after start-up."""
    from starlette.responses import HTMLResponse, PlainTextResponse, Response
    from starlette.routing import Mount, Route

    state = _State(service, options)
    for runner in service.runners:
        runner.configure(options.batching_for(runner))
        if state.metrics is not None:
            runner.on_batch = state.metrics.batch_hook()
            runner.on_isolate = state.metrics.isolation_hook()
    swagger = _SWAGGER_HTML.format(title=f"{service.name} - mlpack")

    async def docs_json(_: Request) -> Response:
        return Response(spec, media_type="application/json")

    async def index(_: Request) -> Response:
        return HTMLResponse(swagger)

    async def livez(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        if state.ready:
            return PlainTextResponse("ready")
        return PlainTextResponse(state.load_error or "loading models", status_code=503)

    async def metrics(_: Request) -> Response:
        if state.metrics is None:
            return json_response({"error": "metrics are disabled (api_server.metrics.enabled)"}, 404)
        body, content_type = state.metrics.exposition()
        return Response(body, media_type=content_type)

    @asynccontextmanager
    async def lifespan(_: Starlette):  # noqa: ANN202
        loop = asyncio.get_running_loop()
        for runner in service.runners:
            runner.loop = loop
        if service.runners and all(runner.ready for runner in service.runners):
            state.loaded()  # a forked worker: the parent loaded the models
        else:
            state.loader = loop.create_task(state.load())
        yield
        if state.loader is not None:
            state.loader.cancel()
        for runner in service.runners:
            await runner.close()
            runner.loop = None
        state.errors.flush()
        if state.metrics is not None:
            state.metrics.close()

    from .protocols import PROTOCOLS
    from .protocols import fast_routes as protocol_fast_routes
    from .protocols import routes as protocol_routes
    from .protocols.auth import BearerAuth

    enabled = [name for name in PROTOCOLS if options.protocol_enabled(name)]

    apis = list(service.apis.values()) if options.protocol_enabled("native") else []
    handlers = {api.route: make_endpoint(api, state) for api in apis}
    routes = [Route(api.route, ASGIEndpoint(handlers[api.route]), methods=["POST"], name=api.name) for api in apis]
    routes += protocol_routes(service, state, enabled)
    routes += [
        Route("/", index, methods=["GET"]),
        Route("/docs.json", docs_json, methods=["GET"]),
        Route("/livez", livez, methods=["GET"]),
        Route("/healthz", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    static = _swagger_static()
    if static is not None:
        routes.append(Mount("/static/swagger-ui", static, name="swagger-ui"))
    auth = BearerAuth.from_options(options)
    spec = _openapi_json(service, options)
    app = _app_class()(routes=routes, lifespan=lifespan)
    app.auth = auth
    # POST to an API path skips Starlette's middleware and router (same answers, less work per request)
    app.fast_routes = {
        **protocol_fast_routes(service, state, enabled),  # v2 infer, KServe v1 predict: one path per API
        **{path: handle for path, handle in handlers.items() if "{" not in path},
    }
    app.state.mlpack = state
    return app


@functools.cache
def _app_class() -> type[Starlette]:
    """Starlette, with a shortcut for API calls (made on first use: the CLI must not import starlette)."""
    from starlette.applications import Starlette

    class App(Starlette):
        fast_routes: dict[str, Any] = {}
        auth: Any = None  # mlpack.protocols.auth.BearerAuth, when the server has tokens

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            auth = self.auth
            if auth is not None and scope["type"] == "http" and auth.protects(scope["path"]):
                if not auth.allows(scope["headers"]):
                    await auth.refuse(send)
                    return
            if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
                handle = self.fast_routes.get(scope["path"])
                if handle is not None:
                    scope["app"] = self
                    await handle(scope, receive, send)
                    return
            await super().__call__(scope, receive, send)

    return App


def _openapi_json(service: Service, options: ServeOptions) -> bytes:
    """``/docs.json``. The standard library writes it, not orjson: schema limits may be integers beyond 64 bits."""
    import json

    from .protocols import document

    return json.dumps(document(service, options), separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _swagger_static() -> Any:
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    from starlette.staticfiles import StaticFiles

    return StaticFiles(directory=str(swagger_ui_path))


def create_app() -> Starlette:
    """uvicorn's app factory in every worker: the same options, read from the environment."""
    from .target import load_service

    options = ServeOptions.from_json(os.environ[OPTIONS_ENV])
    loaded = load_service(options.target, options.working_dir)
    return build_app(loaded.service, options)


def _log_config() -> dict[str, Any]:
    """uvicorn's logging set-up, plus mlpack's own logger on the same stderr handler."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["mlpack"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def serve(options: ServeOptions) -> None:
    """Run the server until SIGINT/SIGTERM; in-flight requests finish before exit."""
    import uvicorn

    from .httplimits import HttpLimits, LimitedHttpToolsProtocol
    from .target import load_service

    forked = options.workers > 1 and not options.reload
    if forked:  # before the service imports numpy, XGBoost...: their pools size themselves at load
        from .workers import share_cores

        share_cores(options.workers)
    loaded = load_service(options.target, options.working_dir)  # fail here, with a clear error
    if options.protocol_enabled("mlflow"):
        from .protocols.mlflow import select_api

        select_api(loaded.service, options)  # a configured API the service lacks: here too, before workers start
    reserved = None
    if options.port == 0 and not forked:  # "any free port": pick it now, so that the port logged is the one served
        reserved, port = _reserve_port(options.host)
        options = dataclasses.replace(options, port=port)
    os.environ[OPTIONS_ENV] = options.to_json()
    limits = HttpLimits(options.max_header_size, options.request_timeout, options.max_connections)
    common: dict[str, Any] = dict(
        host=options.host,
        port=options.port,
        loop="uvloop",
        # a partial of a module-level class: it pickles, so --reload's processes get it too
        http=functools.partial(LimitedHttpToolsProtocol, limits=limits),
        timeout_keep_alive=options.keepalive_timeout,
        lifespan="on",
        access_log=options.access_log,
        timeout_graceful_shutdown=30,
        log_level="info",
        log_config=_log_config(),
    )
    logging.config.dictConfig(common["log_config"])
    if forked:
        _serve_workers(loaded, options, common)
        return
    _log_serving(loaded.service, options)
    try:
        if options.reload:  # uvicorn's reloader: a fresh process imports the service at every change
            uvicorn.run("mlpack.serve:create_app", factory=True, reload=True, reload_dirs=[str(loaded.source_dir)], **common)
            return
        app = build_app(loaded.service, options)
        server = uvicorn.Server(uvicorn.Config(app, **common))
        watch_requests(loaded.service, server)
        server.run()
    finally:
        if reserved is not None:
            reserved.close()
    if not server.started:  # uvicorn logged why (e.g. the port is taken)
        raise ServeError(f"the server did not start on {options.host}:{options.port}; see the log above")


def watch_requests(service: Service, server: Any) -> None:
    """Tell the runners of ``service`` whether a request is alone in ``server`` (uvicorn's
    tasks: one per request under way, made as soon as its headers are in), for the batcher's
    inline policy."""
    tasks = server.server_state.tasks

    def alone() -> bool:
        return len(tasks) <= 1

    for runner in service.runners:
        runner.alone = alone


def _log_serving(service: Service, options: ServeOptions) -> None:
    apis = ", ".join(a.route for a in service.apis.values()) or "none"
    workers = f" with {options.workers} workers" if options.workers > 1 and not options.reload else ""
    log.info("serving %s (APIs: %s) on http://%s:%d%s", service.name, apis, options.host, options.port, workers)


def _serve_workers(loaded: LoadedService, options: ServeOptions, common: dict[str, Any]) -> None:
    """Load the models here, then fork the workers (``mlpack.workers``): they share the models' memory."""
    import shutil

    from .workers import Supervisor, listening_sockets, uvicorn_target

    sockets = listening_sockets(options.host, options.port, options.workers)
    # the workers' metrics live in shared files: /metrics in any worker adds them all up
    metrics_dir = tempfile.mkdtemp(prefix="mlpack-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        options = dataclasses.replace(options, port=sockets[0].getsockname()[1])  # port 0: the one picked
        _log_serving(loaded.service, options)
        try:
            for runner in loaded.service.runners:
                runner.load()
        except Exception as exc:  # as with one worker: the workers serve probes, /readyz says why
            log.error("loading models failed: %s", exc)

        target = uvicorn_target(
            lambda: build_app(loaded.service, options), common, on_server=lambda server: watch_requests(loaded.service, server)
        )
        code = Supervisor(sockets, target, grace=common["timeout_graceful_shutdown"]).run()
    finally:
        for sock in sockets:
            sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if code:
        raise ServeError("the server stopped because its workers failed (see the log above)")


def _reserve_port(host: str) -> tuple[socket.socket, int]:
    """A free port for ``host``, held by a bound (never listening) socket until the server is done.

    uvicorn binds the same port with SO_REUSEADDR, which Linux allows next to a socket that
    does not listen; meanwhile the kernel hands the port to no one else.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, 0))
    except OSError as exc:
        sock.close()
        from .fsutil import reason

        raise ConfigError(f"cannot bind {host}: {reason(exc)}") from exc
    return sock, sock.getsockname()[1]
