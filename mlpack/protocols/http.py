"""What every protocol's routes share with the native ``POST /<api>``: the body limit (413),
waiting for models (503), the timeout (504) and the 4xx/5xx rules of ``endpoint.error_response``.

A protocol handler is ``async handle(scope, body) -> Response``; ``endpoint(state, handle)``
makes it an ASGI app for a Starlette ``Route`` (path parameters are in ``scope["path_params"]``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..endpoint import ASGIEndpoint, _call_with_timeout, _ClientGone, _header, _receive_body, error_response, json_response
from ..exceptions import BadInput
from ..wholeresponse import send_response

if TYPE_CHECKING:
    from starlette.responses import Response

    from ..service import API

Handler = Callable[[Any, bytes], Awaitable["Response"]]

__all__ = ["call", "call_each", "endpoint", "header", "json_response", "read_body", "with_path_params"]


def header(scope: dict[str, Any], name: str) -> str | None:
    """A request header by lower-case name."""
    return _header(scope, name.encode("latin-1"))


async def read_body(scope: dict[str, Any], receive: Any, limit: int) -> bytes:
    """The whole body, refused (400/413) on a bad or too large Content-Length before reading."""
    length = _header(scope, b"content-length")
    if length is not None:
        if not length.isdigit():
            raise BadInput("invalid Content-Length header", status=400)
        if int(length) > limit:
            raise BadInput(f"request body of {length} bytes is over the limit of {limit} bytes", status=413)
    return await _receive_body(receive, limit)


async def call(state: Any, api: API, value: Any) -> Any:
    """Call the API as the native route does (same batcher, same input contract)."""
    timeout = state.options.timeout
    if not state.ready:
        await state.wait_loaded(timeout)
    return await _call_with_timeout(api.call, value, state.deadlines)


async def call_each(state: Any, api: API, values: list[Any]) -> list[Any]:
    """Call the API once per value, concurrently (the calls join the same micro-batches)."""
    if len(values) == 1:
        return [await call(state, api, values[0])]
    timeout = state.options.timeout
    if not state.ready:
        await state.wait_loaded(timeout)
    return list(await asyncio.wait_for(asyncio.gather(*(api.call(v) for v in values)), timeout))


def endpoint(state: Any, handle: Handler, *, read: bool = True, meter: tuple[str, str] | None = None) -> ASGIEndpoint:
    """An ASGI route app around ``handle``; errors answer ``{"error": ...}`` with the native rules.

    ``meter``: ``(route, protocol)`` to count its requests in ``/metrics`` (when metrics are on).
    """
    limit, timeout = state.options.max_request_size, state.options.timeout
    errors = getattr(state, "errors", None)
    metered = state.metrics.meter(*meter) if meter is not None and state.metrics is not None else None

    async def app(scope: Any, receive: Any, send: Any) -> None:
        started = metered.start() if metered is not None else 0.0
        status: int | None = None
        try:
            try:
                body = await read_body(scope, receive, limit) if read else b""
                response = await handle(scope, body)
            except asyncio.TimeoutError:
                response = json_response({"error": f"the request took longer than the {timeout:g} s timeout"}, 504)
            except _ClientGone:
                return
            except Exception as exc:
                response = error_response(exc, errors)
            status = response.status_code
            if metered is not None:
                # counted before the answer leaves: a client holding its answer finds it in /metrics
                metered.done(started, status)
            await send_response(response, scope, receive, send)
        finally:
            if metered is not None and status is None:
                metered.done(started, None)

    return ASGIEndpoint(app)


def with_path_params(app: ASGIEndpoint, params: dict[str, str]) -> Any:
    """``app`` for one exact path (a fast route): the path parameters the router would have set."""
    handle = app.handle

    async def fast(scope: Any, receive: Any, send: Any) -> None:
        scope["path_params"] = params
        await handle(scope, receive, send)

    return fast
