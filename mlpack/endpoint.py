"""The per-request HTTP path of an API: read the body, call the function, answer.

API calls bypass Starlette's router: a POST to an API route goes straight to its handler,
which works on the raw ASGI request and writes the response itself. Everything else
(docs, probes, metrics, 404s) still goes through Starlette.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import uuid
from typing import TYPE_CHECKING, Any

from .exceptions import BadInput, ConfigError, MlpackError, ServiceUnavailable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.responses import Response

    from .deadlines import Deadlines
    from .errorlog import ErrorLog
    from .service import API

log = logging.getLogger("mlpack.serve")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    import orjson
    from starlette.responses import Response

    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


def error_response(exc: Exception, errors: ErrorLog | None = None) -> Response:
    """The JSON answer for an error; 500s get an id that is logged (through ``errors``: the
    traceback once per kind of error, then counts). A 4xx is never logged.

    Bodies: ``{"error": message}`` (+ ``"details"`` when the error has some) for 4xx and 503;
    ``{"error": "internal error in the service (Type); see the server log", "error_id": id}`` for 500.
    """
    if isinstance(exc, MlpackError):
        body: dict[str, Any] = {"error": str(exc)}
        details = getattr(exc, "details", None)
        if details is not None:
            body["details"] = details
        headers = None
        if isinstance(exc, ServiceUnavailable):
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        if exc.http_status < 500 or isinstance(exc, ServiceUnavailable):
            return json_response(body, exc.http_status, headers)
    error_id = uuid.uuid4().hex[:16]
    if errors is not None:
        errors.report(exc, error_id)
    else:
        log.error("error %s while handling a request", error_id, exc_info=exc)
    message = f"internal error in the service ({type(exc).__name__}); see the server log"
    return json_response({"error": message, "error_id": error_id}, 500)


class _ClientGone(Exception):
    """The client disconnected before sending its whole body: there is no one to answer."""


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    """The first value of a request header (uvicorn gives lower-case names), as Starlette's ``Headers.get``."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _receive_body(receive: Any, limit: int) -> bytes:
    """The whole request body from the ASGI ``receive``; 413 as soon as it grows over ``limit``."""
    message = await receive()
    if message["type"] != "http.request":
        raise _ClientGone
    body = message.get("body", b"")
    if not message.get("more_body", False):  # the usual case: one message
        if len(body) > limit:
            raise BadInput(f"request body is over the limit of {limit} bytes", status=413)
        return body
    chunks, size = [body], len(body)
    while True:
        if size > limit:
            raise BadInput(f"request body is over the limit of {limit} bytes", status=413)
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if size > limit:
        raise BadInput(f"request body is over the limit of {limit} bytes", status=413)
    return b"".join(chunks)


async def _call_with_timeout(call: Callable[[Any], Awaitable[Any]], value: Any, deadlines: Deadlines) -> Any:
    """``call(value)`` (an API's ``call``) within the server's time limit: TimeoutError past it."""
    task = deadlines.enter()
    try:
        return await call(value)
    except asyncio.CancelledError:
        if deadlines.expired(task):
            raise asyncio.TimeoutError from None
        raise
    finally:
        deadlines.leave(task)


def _media_header(media_type: str) -> bytes:
    """The content-type header Starlette's ``Response`` writes for ``media_type``."""
    if media_type.startswith("text/") and "charset=" not in media_type.lower():
        media_type += "; charset=utf-8"
    from .wholeresponse import valid_header_value

    value = media_type.encode("latin-1")
    if not valid_header_value(value):
        raise ConfigError(f"output media type {media_type!r} holds control characters; it cannot be a header")
    return value


class ASGIEndpoint:
    """Makes Starlette's ``Route`` call a raw ASGI handler (a plain function would get a Request)."""

    __slots__ = ("handle",)

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.handle(scope, receive, send)


def make_endpoint(api: API, state: Any) -> Any:
    """The ASGI handler of ``POST /<api>``: body -> input descriptor -> API -> output descriptor.

    It works on the ASGI scope directly (no Request, no Response for the usual descriptors):
    at a few thousand requests a second per worker the framework's per-request objects cost
    as much as the model. Descriptors that override ``from_http_request`` or
    ``to_http_response`` still get (and give) Starlette objects.
    """
    from .io import IODescriptor
    from .io.writer import to_json_bytes
    from .wholeresponse import send_response, send_whole

    limit, timeout = state.options.max_request_size, state.options.timeout
    metrics = state.metrics
    errors = getattr(state, "errors", None)
    meter = metrics.meter(api.route, "native") if metrics is not None else None
    deadlines = state.deadlines
    inp, out = api.input, api.output
    raw_input = type(inp).from_http_request is IODescriptor.from_http_request
    raw_output = type(out).to_http_response is IODescriptor.to_http_response
    content_type = _media_header(out.media_type)
    # Per API, at start-up: what each step calls, without the base class's one-line wrappers
    # (from_http_body is _parse of a request body; _encode is to_json_bytes).
    if type(inp).from_http_body is IODescriptor.from_http_body:
        parse = functools.partial(inp._parse, source="request body")
    else:
        parse = inp.from_http_body
    encode = to_json_bytes if type(out)._encode is IODescriptor._encode else out._encode
    # an async API function is awaited here directly (what API.call does, one coroutine less)
    call = api.func if api.is_async else api.call

    def check_head(scope: Any) -> tuple[str, str | None]:
        """Content-Length (400/413), then content-type (415), before the body is read: the
        descriptor's ``(media type, charset)``. One pass over the headers for both (the first
        of each counts, as Starlette's ``Headers.get``)."""
        length = media = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                if length is None:
                    length = value
            elif key == b"content-type" and media is None:
                media = value
        if length is not None:
            if not length.isdigit():  # ASCII digits only
                raise BadInput("invalid Content-Length header", status=400)
            if int(length) > limit:
                size = length.decode("latin-1")
                raise BadInput(f"request body of {size} bytes is over the limit of {limit} bytes", status=413)
        if not raw_input:
            return "", None  # the descriptor reads its own Request
        return inp.http_content_type(media.decode("latin-1") if media is not None else None)

    async def read_request(scope: Any, receive: Any) -> Any:
        """The argument of a descriptor that overrides ``from_http_request``."""
        body = await _receive_body(receive, limit)
        from starlette.requests import Request as StarletteRequest

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        return await inp.from_http_request(StarletteRequest(scope, replay))

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        started = meter.start() if meter is not None else 0.0
        response: Response | None = None
        try:
            if not state.ready:
                await state.wait_loaded(timeout)
            mime, charset = check_head(scope)
            if raw_input:
                value = parse(await _receive_body(receive, limit), mime, charset)
            else:
                value = await read_request(scope, receive)
            result = await _call_with_timeout(call, value, deadlines)
            if raw_output:
                body = encode(result)
            else:
                response = out.to_http_response(result)
        except asyncio.TimeoutError:
            response = json_response({"error": f"{api.name} took longer than the {timeout:g} s timeout"}, 504)
        except (_ClientGone, asyncio.CancelledError) as exc:  # no one to answer (or the server stops)
            if meter is not None:
                meter.done(started, None)
            if isinstance(exc, _ClientGone):
                return
            raise
        except Exception as exc:
            response = error_response(exc, errors)
        status = 200 if response is None else response.status_code
        if meter is not None:
            # counted before the answer leaves: a client holding its answer finds it in /metrics
            meter.done(started, status)
        if response is None:
            await send_whole(send, 200, content_type, body)
        else:
            await send_response(response, scope, receive, send)

    return endpoint
