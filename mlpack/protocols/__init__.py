"""Wire protocols other clients already speak, served from the same APIs as ``POST /<api>``.

Each protocol is a module with two functions:

- ``routes(service, state) -> list[starlette.routing.Route]``: its HTTP routes; handlers call
  ``api.call`` exactly as the native route does (same batcher, same input contract);
- ``openapi_paths(service) -> dict[str, dict]``: its OpenAPI path items for ``/docs.json``.

``serve.build_app`` mounts ``routes(service, state)``; ``openapi`` adds ``openapi_paths``.
Modules are imported only when a server starts (the CLI must stay light).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.routing import Route

    from ..service import Service

# protocol name (as in config ``api_server.protocols.<name>``) -> module under mlpack.protocols
PROTOCOLS: dict[str, str] = {
    "v2": "v2",
    "kserve_v1": "kserve_v1",
    "mlflow": "mlflow",
}


def _modules(enabled: Iterable[str] | None) -> list[Any]:
    names = list(PROTOCOLS) if enabled is None else [n for n in PROTOCOLS if n in set(enabled)]
    return [importlib.import_module(f"{__name__}.{PROTOCOLS[n]}") for n in names]


def routes(service: Service, state: Any, enabled: Iterable[str] | None = None) -> list[Route]:
    """The routes of every enabled protocol (all when ``enabled`` is None)."""
    out: list[Route] = []
    for module in _modules(enabled):
        out.extend(module.routes(service, state))
    return out


def fast_routes(service: Service, state: Any, enabled: Iterable[str] | None = None) -> dict[str, Any]:
    """Exact POST paths -> raw ASGI handlers that skip Starlette's router (as the native API
    routes do), from every enabled protocol module that has ``fast_routes(service, state)``."""
    out: dict[str, Any] = {}
    for module in _modules(enabled):
        if hasattr(module, "fast_routes"):
            out.update(module.fast_routes(service, state))
    return out


def openapi_paths(
    service: Service, enabled: Iterable[str] | None = None, options: Any = None
) -> dict[str, dict[str, Any]]:
    """OpenAPI path items of every enabled protocol, for ``/docs.json``.

    A module whose ``openapi_paths`` has an ``options`` parameter also gets the server's
    ``ServeOptions`` (MLflow documents ``/invocations`` only when it knows which API it calls).
    """
    import inspect

    out: dict[str, dict[str, Any]] = {}
    for module in _modules(enabled):
        if "options" in inspect.signature(module.openapi_paths).parameters:
            out.update(module.openapi_paths(service, options=options))
        else:
            out.update(module.openapi_paths(service))
    return out


def document(service: Service, options: Any = None) -> dict[str, Any]:
    """The OpenAPI document a server of ``service`` serves at ``/docs.json``: the native routes
    (unless switched off), the paths of every enabled protocol and, with tokens, the bearer
    scheme. ``options`` is a ``ServeOptions``; None is a server with the defaults (what
    ``mlpack build`` writes into a bundle's ``apis/openapi.yaml``)."""
    from .auth import BearerAuth, secure_openapi

    def enabled(name: str) -> bool:
        return options is None or options.protocol_enabled(name)

    spec = service.openapi_spec()
    if not enabled("native"):
        for api in service.apis.values():
            spec["paths"].pop(api.route, None)
    spec["paths"].update(openapi_paths(service, [n for n in PROTOCOLS if enabled(n)], options))
    return secure_openapi(spec, BearerAuth.from_options(options) if options is not None else None)
