"""A small response in one write, on uvicorn's httptools protocol.

For each response uvicorn's ``send`` writes the status line and headers, then the body: two
writes, so two system calls, and on loopback two TCP segments that the client reads one by one.
For an answer of a few bytes those writes cost more than all of mlpack's own work on a
request (iris at 64 clients: 80 instead of 105 us of server CPU per request, and the load
generator spends a quarter less per answer).

``send_whole`` writes the whole response at once when ``send`` is uvicorn's own (a bound method
of its httptools ``RequestResponseCycle``, as the server hands it to the app) and the response
is in its plain state: not started, writes not paused by flow control, client still there, not a
HEAD (a body over 64 KiB follows the head in a second write, uncopied). It keeps the bookkeeping
uvicorn's two ``send`` calls do (access log, ``Connection: close`` when the connection is not
kept alive, the cycle's completion and the next pipelined request).
In any other case, under another server or behind middleware that wraps ``send``, it sends the
two ASGI messages. ``send_response`` does the same for a Starlette ``Response`` that holds its
whole body (the protocols' answers, error answers).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE, STATUS_LINE, RequestResponseCycle
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

__all__ = ["send_response", "send_whole", "valid_header_value"]

# headers a plain response must not carry to be written here: uvicorn's own send acts on them
_UVICORN_ACTS_ON = (b"connection", b"transfer-encoding")
# a larger body is written after the head, not copied into one buffer with it
_JOIN_AT_MOST = 64 * 1024


async def send_whole(send: Any, status: int, content_type: bytes, body: bytes) -> None:
    """Send a complete response: ``status``, ``Content-Type: content_type`` and ``body``.

    ``content_type`` is a valid header value (the callers' are fixed at start-up).
    """
    cycle = getattr(send, "__self__", None)
    if type(cycle) is RequestResponseCycle:
        head = b"content-length: %d\r\ncontent-type: %s\r\n" % (len(body), content_type)
        if _write(cycle, status, head, body):
            return
    headers = [(b"content-length", b"%d" % len(body)), (b"content-type", content_type)]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def valid_header_value(value: bytes) -> bool:
    """Whether uvicorn would send ``value`` as a header value (no control characters but tab)."""
    return HEADER_VALUE_RE.search(value) is None


async def send_response(response: Any, scope: Any, receive: Any, send: Any) -> None:
    """Send a Starlette ``Response``: in one write when it is a plain one (its whole body in
    hand, no background task, headers uvicorn would pass through as they are); else as Starlette does."""
    cycle = getattr(send, "__self__", None)
    if type(cycle) is RequestResponseCycle and type(response).__call__ is Response.__call__ and response.background is None:
        head = _plain_head(response.raw_headers, len(response.body))
        if head is not None and _write(cycle, response.status_code, head, response.body):
            return
    await response(scope, receive, send)


def _plain_head(headers: list[tuple[bytes, bytes]], length: int) -> bytes | None:
    """The header lines of ``headers``, checked as uvicorn checks them; None when uvicorn must see
    them itself (connection or transfer-encoding, a content-length other than the body's, a bad one)."""
    lines: list[bytes] = []
    sized = False
    for name, value in headers:
        if HEADER_RE.search(name) or not valid_header_value(value):
            return None  # uvicorn raises for these: let it
        lower = name.lower()
        if lower in _UVICORN_ACTS_ON:
            return None
        if lower == b"content-length":
            if sized or value != b"%d" % length:
                return None
            sized = True
        lines += [lower, b": ", value, b"\r\n"]
    return b"".join(lines) if sized else None


def _write(cycle: Any, status: int, head: bytes, body: bytes) -> bool:
    """Do what the cycle's start and body ``send`` would do, with one write; False if it cannot.
    ``head``: the response's own header lines, each ending in CRLF (content-length among them)."""
    scope = cycle.scope
    if cycle.response_started or cycle.disconnected or cycle.flow.write_paused or scope["method"] == "HEAD":
        return False  # uvicorn's own path: it waits for a drain, drops, or knows HEAD
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    if cycle.access_log:
        cycle.access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            get_client_addr(scope),
            scope["method"],
            get_path_with_query_string(scope),
            scope["http_version"],
            status,
        )
    lines = [STATUS_LINE[status]]
    for name, value in cycle.default_headers:  # the server's: date, server (validated by uvicorn)
        lines += [name, b": ", value, b"\r\n"]
    lines.append(head)
    if not cycle.keep_alive:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    transport = cycle.transport
    if len(body) <= _JOIN_AT_MOST:
        lines.append(body)
        transport.write(b"".join(lines))
    else:
        transport.write(b"".join(lines))
        transport.write(body)
    cycle.response_complete = True
    cycle.message_event.set()  # a receive() still waiting learns that the response is done
    if not cycle.keep_alive:
        transport.close()
    cycle.on_response()
    return True
