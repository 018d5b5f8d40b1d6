"""send_whole on uvicorn's real httptools protocol, over a transport that records each write."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from mlpack.httplimits import HttpLimits, LimitedHttpToolsProtocol
from mlpack.wholeresponse import send_response, send_whole

REQUEST = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n[1]"


class RecordingTransport(asyncio.Transport):
    """What the protocol writes, one entry per ``write`` call (a socket would make one system call each)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = self.closed_by_server = False
        self.paused = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


async def answer(scope: Any, receive: Any, send: Any) -> None:
    message = await receive()
    await send_whole(send, 200, b"application/json", b'{"got":' + message["body"] + b"}")


def exchange(app: Any, data: bytes, *, access_log: bool = False) -> RecordingTransport:
    """Feed ``data`` to a fresh protocol running ``app``, let every request task finish."""
    return asyncio.run(_exchange(app, data, access_log))


async def _exchange(app: Any, data: bytes, access_log: bool) -> RecordingTransport:
    config = Config(app, lifespan="off", access_log=access_log, log_config=None)
    state = ServerState()
    state.default_headers = [(b"date", b"Tue, 01 Dec 2026 00:00:00 GMT"), (b"server", b"uvicorn")]
    limits = HttpLimits(max_header_size=65536, request_timeout=30, max_connections=10)
    protocol = LimitedHttpToolsProtocol(config, state, {}, asyncio.get_running_loop(), limits=limits)
    protocol.access_log = access_log
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(data)
    for _ in range(20):  # the request tasks, and any pipelined request they start
        await asyncio.sleep(0)
        if state.tasks:
            await asyncio.gather(*state.tasks)
    transport.closed_by_server = transport.closed
    protocol.connection_lost(None)  # stops the protocol's timers (and closes the transport)
    return transport


def test_a_small_response_is_one_write() -> None:
    transport = exchange(answer, REQUEST)
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert b"content-length: 11" in lines and b"content-type: application/json" in lines
    assert b"server: uvicorn" in lines and any(line.startswith(b"date: ") for line in lines)
    assert body == b'{"got":[1]}'
    assert not transport.closed_by_server  # kept alive


def test_a_large_body_follows_its_head_uncopied() -> None:
    big = b"x" * (1 << 20)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send_whole(send, 200, b"application/octet-stream", big)

    transport = exchange(app, REQUEST)
    assert len(transport.writes) == 2 and transport.writes[1] == big
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 1048576" in transport.writes[0]


def test_pipelined_requests_are_answered_in_order() -> None:
    second = REQUEST.replace(b"[1]", b"[2]")
    transport = exchange(answer, REQUEST + second)
    assert [w.rpartition(b"\r\n\r\n")[2] for w in transport.writes] == [b'{"got":[1]}', b'{"got":[2]}']


def test_connection_close_is_honoured() -> None:
    request = REQUEST.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    transport = exchange(answer, request)
    assert len(transport.writes) == 1
    assert b"\r\nconnection: close\r\n" in transport.writes[0]
    assert transport.closed_by_server


def test_access_log_still_written(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        exchange(answer, REQUEST, access_log=True)
    records = [r for r in caplog.records if r.name == "uvicorn.access"]
    assert len(records) == 1
    assert records[0].getMessage() == '127.0.0.1:50000 - "POST /p HTTP/1.1" 200'


def test_response_already_started_goes_through_uvicorn() -> None:
    async def started_first(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        with pytest.raises(RuntimeError):  # what uvicorn says of a second start: the cycle's own rules hold
            await send_whole(send, 200, b"application/json", b"{}")
        await send({"type": "http.response.body", "body": b"{}"})

    transport = exchange(started_first, REQUEST)
    assert transport.writes[-1] == b"{}"


def test_other_servers_get_the_two_asgi_messages() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(send_whole(send, 201, b"text/plain; charset=utf-8", b"hello"))
    assert sent == [
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-length", b"5"), (b"content-type", b"text/plain; charset=utf-8")],
        },
        {"type": "http.response.body", "body": b"hello"},
    ]


def test_a_plain_starlette_response_is_one_write_with_its_headers() -> None:
    from starlette.responses import Response

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        response = Response(b'{"error":"busy"}', 503, {"Retry-After": "2"}, media_type="application/json")
        await send_response(response, scope, receive, send)

    transport = exchange(app, REQUEST)
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 503 Service Unavailable"
    assert {b"retry-after: 2", b"content-length: 16", b"content-type: application/json"} <= set(lines)
    assert body == b'{"error":"busy"}'


def test_responses_uvicorn_must_see_go_through_it() -> None:
    """A header uvicorn acts on, one it refuses, a background task: Starlette's and uvicorn's way."""
    from starlette.background import BackgroundTask
    from starlette.responses import Response

    def app_sending(response: Response, outcome: list[str]) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            try:
                await send_response(response, scope, receive, send)
            except RuntimeError as exc:
                outcome.append(str(exc))

        return app

    outcome: list[str] = []
    transport = exchange(app_sending(Response(b"{}", headers={"Connection": "close"}), outcome), REQUEST)
    assert len(transport.writes) == 2 and transport.closed_by_server
    transport = exchange(app_sending(Response(b"{}", headers={"X-Bad": "a\nb"}), outcome), REQUEST)
    assert transport.writes == [] and outcome == ["Invalid HTTP header value."]
    task = Response(b"{}", background=BackgroundTask(outcome.append, "task ran"))
    transport = exchange(app_sending(task, outcome), REQUEST)
    assert len(transport.writes) == 2 and outcome[-1] == "task ran"


SERVICE = """\
import mlpack
from mlpack.io import JSON, NumpyNdarray

svc = mlpack.Service("whole")


@svc.api(input=JSON(), output=JSON())
def echo(value):
    return {"got": value}


@svc.api(input=NumpyNdarray(), output=NumpyNdarray())
def double(arr):
    return arr * 2
"""


def test_the_real_app_answers_an_api_call_in_one_write(tmp_path: Path) -> None:
    """mlpack's app as uvicorn serves it (its proxy-headers wrapper, mlpack's auth check and fast
    routes): the endpoints get uvicorn's own ``send``, so each answer (native, v2, an error) is one write."""
    from mlpack.config import ServeOptions
    from mlpack.serve import build_app
    from mlpack.target import load_service

    (tmp_path / "whole_service.py").write_text(SERVICE)  # a module name no other test imports
    service = load_service("whole_service.py:svc", tmp_path).service
    app = build_app(service, ServeOptions(target="whole_service.py:svc", working_dir=str(tmp_path)))

    v2 = b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[1.5]}]}'
    requests = {
        "native": REQUEST.replace(b"/p ", b"/echo "),
        "v2": REQUEST.replace(b"/p ", b"/v2/models/double/infer ").replace(b"3\r\n\r\n[1]", b"%d\r\n\r\n%s" % (len(v2), v2)),
        "an error": REQUEST.replace(b"/p ", b"/double ").replace(b"[1]", b"[x]"),
    }

    async def main() -> dict[str, RecordingTransport]:
        async with app.router.lifespan_context(app):
            return {name: await _exchange(app, request, False) for name, request in requests.items()}

    answers = asyncio.run(main())
    for name, transport in answers.items():
        assert len(transport.writes) == 1, (name, transport.writes)
    assert answers["native"].writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert answers["native"].writes[0].endswith(b'\r\n\r\n{"got":[1]}')
    assert answers["v2"].writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and b"[3.0]" in answers["v2"].writes[0]
    assert answers["an error"].writes[0].startswith(b"HTTP/1.1 400 ")
