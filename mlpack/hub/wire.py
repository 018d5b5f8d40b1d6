"""One keep-alive HTTP/1.1 connection to the hub, over the standard library's ``http.client``.

Why not httpx here: a push or pull is one short-lived CLI process moving large bodies, and
``http.client`` lets a file go to the socket with ``sendfile`` (no copy through Python) and
a download be read straight into reused buffers, while costing a fraction of httpx's import
and TLS set-up time (a TLS context is made only for an https hub). A kept-alive connection the
hub closed while idle is noticed before reuse, and a request that meets a just-closed one is
sent once more on a fresh connection (every hub call is idempotent).
"""

from __future__ import annotations

import http.client
import json as jsonlib
import os
import select
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

MAX_REPLY = 64 << 20  # bytes of a JSON or error answer read into memory
SEND_SLICE = 8 << 20  # bytes per sendfile call (the progress bar advances between them)
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class ReplyTooLarge(Exception):
    """The hub's answer exceeded ``MAX_REPLY`` bytes."""


@dataclass(frozen=True)
class Reply:
    """A complete answer: status, headers (lower-case names) and body."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def read_reply(response: http.client.HTTPResponse, limit: int = MAX_REPLY) -> Reply:
    body = response.read(limit + 1)
    if len(body) > limit:
        response.close()
        raise ReplyTooLarge(f"answer larger than {limit} bytes")
    headers = {k.lower(): v for k, v in response.getheaders()}
    return Reply(response.status, response.reason, headers, body)


class Wire:
    """Requests to ``base_url`` (scheme, host, port and path prefix) with fixed headers."""

    def __init__(self, base_url: str, headers: Mapping[str, str], timeout: float) -> None:
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname or "", parts.port
        self.prefix = parts.path.rstrip("/")
        self.headers = dict(headers)
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._reused = False

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def target(self, path: str, params: Sequence[tuple[str, str]] | Mapping[str, str] | None = None) -> str:
        query = urlencode(params) if params else ""
        return quote(self.prefix + path, safe="/:@!$&'()*+,;=-._~%") + (f"?{query}" if query else "")

    def _connection(self) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is not None and conn.sock is not None:
            readable, _, _ = select.select([conn.sock], [], [], 0)
            if readable:  # an idle kept-alive connection that is readable was closed by the hub
                self.close()
                conn = None
        if conn is None or conn.sock is None:
            self.close()
            if self.https:
                import ssl

                conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            conn.connect()
            self._conn, self._reused = conn, False
        return conn

    def send(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        send_body: Callable[[Any], None] | None = None,
    ) -> http.client.HTTPResponse:
        """Send one request and return the response with its body still unread.

        ``send_body(sock)`` writes a body whose length is in ``headers``; when the hub answers
        early (a refusal) and closes, that answer is still returned.
        """
        all_headers = {**self.headers, **(headers or {})}
        if body is not None:
            all_headers["Content-Length"] = str(len(body))
        for attempt in (0, 1):
            conn = self._connection()
            reused, refused_early = self._reused, False
            try:
                conn.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
                for key, value in all_headers.items():
                    conn.putheader(key, value)
                conn.endheaders(body)
                if send_body is not None:
                    try:
                        send_body(conn.sock)
                    except (BrokenPipeError, ConnectionResetError):
                        refused_early = True  # the hub may have answered and closed: read its answer
                response = conn.getresponse()
            except _STALE:
                self.close()
                if reused and attempt == 0:
                    continue  # the hub closed the idle connection as we reused it: once more, afresh
                raise
            except BaseException:
                self.close()
                raise
            self._reused = True
            if refused_early or response.will_close:
                self._conn = None  # the response keeps its socket; this connection is done
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def request(
        self, method: str, target: str, *, json: Any = None, headers: Mapping[str, str] | None = None
    ) -> Reply:
        body = None
        extra = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json).encode("utf-8")
            extra["Content-Type"] = "application/json"
        response = self.send(method, target, extra, body=body)
        try:
            return read_reply(response)
        except BaseException:
            self.close()
            raise


def sendfile_body(
    path: Path, size: int, advance: Callable[[int], None] | None, changed: Callable[[str], Exception]
) -> Callable[[Any], None]:
    """A ``send_body`` that sends exactly ``size`` bytes of ``path`` with zero-copy ``sendfile``."""

    def send(sock: Any) -> None:
        with open(path, "rb") as f:
            offset = 0
            while offset < size:
                sent = sock.sendfile(f, offset, min(SEND_SLICE, size - offset))
                if sent == 0:
                    raise changed("shrank")
                offset += sent
                if advance:
                    advance(sent)
            if os.fstat(f.fileno()).st_size != size:
                raise changed("changed size")

    return send
