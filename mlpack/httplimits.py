"""HTTP limits uvicorn's httptools protocol does not enforce, kept at the protocol layer.

uvicorn hands every byte a client sends to httptools, which collects a header in memory however
long it grows (a 128 MB one held up every other client of the worker for over 10 s), waits for a
request line, headers or body for as long as the client likes, and leaves a connection that
never sends anything open. ``LimitedHttpToolsProtocol`` wraps
uvicorn's protocol and, before the parser sees a byte:

- counts the bytes of the request line and headers; past ``max_header_size`` it answers 431
  without parsing or keeping another byte of them;
- gives each request ``request_timeout`` seconds from its first byte to its last (request line,
  headers and body), else 408;
- closes a fresh connection that sends nothing within the keep-alive timeout, as uvicorn does
  between requests;
- answers a connection beyond ``max_connections`` (per worker process) 503 at once.

Each refusal is a JSON body ``{"error": ...}`` with ``Connection: close``. Then the connection
lingers for a moment, reading and dropping what the client still sends: closing a socket with
unread data resets it, and the client would lose the answer before it reads it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

LINGER_SECONDS = 2.0
# The base class's methods, called directly: they run for every request, and super() costs.
_feed = HttpToolsProtocol.data_received
_headers_complete = HttpToolsProtocol.on_headers_complete
_message_complete = HttpToolsProtocol.on_message_complete


@dataclass(frozen=True)
class HttpLimits:
    """The ``api_server`` limits a protocol enforces (the keep-alive timeout is uvicorn's own)."""

    max_header_size: int
    request_timeout: float
    max_connections: int


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header, arrival-time and connection limits."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HttpLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_header_size = limits.max_header_size
        self.request_timeout = limits.request_timeout
        self.max_connections = limits.max_connections
        self.head_open = True  # the next bytes belong to a request line or headers
        self.head_bytes = 0  # of the current request's head, as read so far
        self.started: float | None = None  # loop time of the current request's first byte
        # One timer per connection, not per request: it is re-armed only when it fires during a
        # later request than the one that set it (at most once per request_timeout), so a request
        # on a kept-alive connection costs a clock read instead of a timer set and cancelled.
        self.deadline: asyncio.TimerHandle | None = None
        self.refused = False  # answered with an error: drop whatever still arrives

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self.transport = transport
            limit = self.max_connections
            message = f"the server is at its limit of {limit} connections (api_server.max_connections); retry later"
            self._refuse(503, message, b"retry-after: 1\r\n")
            return
        super().connection_made(transport)
        # uvicorn arms its idle timer only after a response; a connection that never sends is idle too
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._unset_keepalive_if_required()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.head_open:  # a body (the endpoint bounds it: 413), or a refused connection
            if not self.refused:
                _feed(self, data)
            return
        if self.started is None:
            self._start_clock()
        if len(data) + self.head_bytes <= self.max_header_size:  # the usual case: all of it fits
            self.head_bytes += len(data)
            _feed(self, data)
            return
        self._feed_up_to_limit(data)

    def _feed_up_to_limit(self, data: bytes) -> None:
        """Feed the parser only up to the limit: either the head ends within it, or it is too big.

        Bytes after a head's end in the same read are not counted towards the next head: the limit
        may be passed by at most one read, never reached too early.
        """
        while True:
            if self.started is None:
                self._start_clock()
            room = self.max_header_size - self.head_bytes
            if len(data) <= room:
                self.head_bytes += len(data)
                _feed(self, data)
                return
            self.head_bytes += room
            _feed(self, data[:room])
            data = data[room:]
            if self.transport.is_closing():  # e.g. the parser refused it (400)
                return
            if self.head_open and self.head_bytes >= self.max_header_size:
                if self._response_in_flight():
                    self.transport.close()  # a pipelined request: no room for an answer of its own
                else:
                    limit = self.max_header_size
                    self._refuse(431, f"request line and headers are over {limit} bytes (api_server.max_header_size)")
                return
            if not self.head_open:
                self.data_received(data)
                return

    def _start_clock(self) -> None:
        self.started = self.loop.time()
        if self.deadline is None:
            self.deadline = self.loop.call_at(self.started + self.request_timeout, self._check_deadline)

    def on_headers_complete(self) -> None:
        self.head_open = False
        self.head_bytes = 0
        _headers_complete(self)

    def on_message_complete(self) -> None:
        _message_complete(self)
        self.head_open = True
        self.started = None

    def _check_deadline(self) -> None:
        self.deadline = None
        if self.started is None or self.refused or self.transport.is_closing():
            return  # no request under way: the next one arms the timer again
        due = self.started + self.request_timeout
        if self.loop.time() < due - 0.001:  # set by an earlier request: this one has more time
            self.deadline = self.loop.call_at(due, self._check_deadline)
            return
        cycle = self.cycle
        if self.head_open:
            busy = self._response_in_flight()
        else:  # between headers and the end of the body
            busy = bool(self.pipeline) or cycle.response_started
            if not busy:  # the endpoint waits for the body: it gets a disconnect and answers no one
                cycle.disconnected = True
                cycle.message_event.set()
        if busy:
            self.transport.close()
            return
        timeout = self.request_timeout
        self._refuse(408, f"the request did not arrive whole within {timeout:g} seconds (api_server.request_timeout)")

    def _response_in_flight(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _cancel_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _refuse(self, status: int, message: str, extra_headers: bytes = b"") -> None:
        """Answer ``status`` with a JSON error, then read and drop for a moment before closing."""
        self.refused = True
        self.head_open = False
        self._cancel_deadline()
        self._unset_keepalive_if_required()
        body = json.dumps({"error": message}).encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body))
        head.append(extra_headers + b"connection: close\r\n\r\n")
        transport = self.transport
        transport.write(b"".join(head) + body)
        if transport.can_write_eof():
            transport.write_eof()
        if self.flow is not None:
            self.flow.resume_reading()
        self.loop.call_later(LINGER_SECONDS, transport.close)
