"""HTTP limits against the real `mlpack serve`, from raw sockets: what a hostile client sends."""

from __future__ import annotations

import http.client
import json
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.server import Server, running_server

SERVICE = """\
import mlpack
from mlpack.io import JSON

svc = mlpack.Service("limits")


@svc.api(input=JSON(), output=JSON())
def echo(value):
    return value
"""
REQUEST_TIMEOUT = 2
KEEPALIVE_TIMEOUT = 2


def _project(root: Path, limits: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "service.py").write_text(SERVICE)
    (root / "config.yaml").write_text(yaml.safe_dump({"api_server": limits}))
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("limits")
    project = _project(root / "project", {"request_timeout": REQUEST_TIMEOUT, "keepalive_timeout": KEEPALIVE_TIMEOUT})
    with running_server("service.py:svc", home=root / "home", cwd=project, args=("--config", "config.yaml")) as srv:
        yield srv


def _address(server: Server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _connect(server: Server, timeout: float = 15) -> socket.socket:
    sock = socket.create_connection(_address(server), timeout=timeout)
    return sock


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def _closed(sock: socket.socket) -> bool:
    """True once the server has closed its side (EOF), False if the read times out."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _echo(server: Server, value: object) -> object:
    """One ordinary request on its own connection, as a well-behaved client makes it."""
    with server.client() as c:
        resp = c.post("/echo", json=value)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _assert_error(status: int, headers: dict[str, str], body: bytes, expected: int, words: str) -> None:
    assert status == expected, body
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert words in json.loads(body)["error"]


@pytest.mark.parametrize("size", [1 << 20, 64 << 20], ids=["1MB", "64MB"])
def test_huge_header_is_431_at_once_and_other_clients_are_served(server: Server, size: int) -> None:
    sock = _connect(server, timeout=30)
    sent = [0]
    answer: dict[str, object] = {}
    answered, served = threading.Event(), threading.Event()

    def reader() -> None:
        sock.recv(1, socket.MSG_PEEK)  # wait for the first byte of the answer
        answer["sent_when_answered"] = sent[0]
        answered.set()
        answer["response"] = _response(sock)

    def send() -> None:
        try:
            sock.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-big: ")
            chunk = b"a" * 65536
            while sent[0] < size:
                sock.sendall(chunk)
                sent[0] += len(chunk)
                if sent[0] == size // 2:  # stop halfway until the server has answered and served someone else
                    answered.wait(30)
                    served.wait(30)
        except OSError:  # the server may close once it has answered: that is allowed
            pass

    threads = [threading.Thread(target=reader), threading.Thread(target=send)]
    for t in threads:
        t.start()
    try:
        assert answered.wait(30), "no answer while the header was still arriving"
        assert _echo(server, {"n": 1}) == {"n": 1}  # served while the big header's connection is mid-header
        served.set()
        # ... and while the rest of it floods in: generous bound (well-behaved requests take ~1 ms here)
        worst = 0.0
        while threads[1].is_alive() or worst == 0.0:
            start = time.monotonic()
            assert _echo(server, [1, 2]) == [1, 2]
            worst = max(worst, time.monotonic() - start)
        assert worst < 2, f"a normal request took {worst:.2f} s during a {size >> 20} MB header"
    finally:
        answered.set()
        served.set()
        for t in threads:
            t.join(60)
        sock.close()
    assert answer["sent_when_answered"] <= size // 2  # answered before the header was whole
    status, headers, body = answer["response"]
    _assert_error(status, headers, body, 431, "api_server.max_header_size")


def test_header_just_under_the_limit_is_served(server: Server) -> None:
    with server.client() as c:
        resp = c.post("/echo", json={"ok": True}, headers={"x-pad": "a" * (60 * 1024)})
        assert resp.status_code == 200 and resp.json() == {"ok": True}
        resp = c.post("/echo", json={"ok": True}, headers={"x-pad": "a" * (65 * 1024)})
        assert resp.status_code == 431
        assert "max_header_size" in resp.json()["error"]


@pytest.mark.parametrize(
    "start",
    [
        b"GET /livez HT",  # half a request line
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: app",  # half a header
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n[1,",  # stalled body
    ],
    ids=["request-line", "header", "body"],
)
def test_half_sent_request_is_408_and_closed(server: Server, start: bytes) -> None:
    with _connect(server) as sock:
        sock.sendall(start)
        status, headers, body = _response(sock)
        _assert_error(status, headers, body, 408, f"within {REQUEST_TIMEOUT} seconds")
        assert _closed(sock)
    assert _echo(server, "still serving") == "still serving"


def test_drip_fed_header_is_408_although_bytes_keep_coming(server: Server) -> None:
    """Slowloris: one byte at a time never lets an idle timer fire; the whole-request deadline does."""
    with _connect(server) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nhost: x\r\n")
        sock.settimeout(0.3)
        answer = b""
        for _ in range(100):  # 30 s at most
            try:
                sock.sendall(b"x")
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if b"\r\n\r\n" in answer:
                break
        assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_two_hundred_idle_connections_are_closed(server: Server) -> None:
    fresh = [_connect(server) for _ in range(100)]  # connect and never send a byte
    kept = []
    for _ in range(100):  # one request each, then idle on a kept-alive connection
        sock = _connect(server)
        sock.sendall(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n")
        kept.append(sock)
    try:
        for sock in kept:
            status, headers, body = _response(sock)
            assert (status, body) == (200, b"ok")
            assert headers.get("connection") != "close"
        open_ = {s.fileno(): s for s in fresh + kept}
        with selectors.DefaultSelector() as sel:
            for sock in open_.values():
                sel.register(sock, selectors.EVENT_READ)
            deadline = time.monotonic() + KEEPALIVE_TIMEOUT + 20
            while open_ and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=1):
                    sock = open_.pop(key.fd)
                    sel.unregister(sock)
                    assert _closed(sock)
        assert not open_, f"{len(open_)} of 200 idle connections still open"
    finally:
        for sock in fresh + kept:
            sock.close()
    assert _echo(server, 1) == 1


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[Server]:
    project = _project(tmp_path / "project", {"max_connections": 4, "keepalive_timeout": 60, "request_timeout": 60})
    with running_server("service.py:svc", home=tmp_path / "home", cwd=project, args=("--config", "config.yaml")) as srv:
        yield srv


def _livez(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    sock.sendall(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n")
    return _response(sock)


def _until_admitted(server: Server) -> socket.socket:
    """A new connection that gets in (earlier ones may still be closing on the server's side)."""
    for _ in range(100):
        sock = _connect(server)
        if _livez(sock)[0] == 200:
            return sock
        sock.close()
        time.sleep(0.1)
    raise AssertionError("no connection admitted")


def test_connections_beyond_the_cap_get_503(capped: Server) -> None:
    holders = [_until_admitted(capped) for _ in range(4)]
    try:
        for _ in range(3):
            with _connect(capped) as extra:
                status, headers, body = _livez(extra)
                _assert_error(status, headers, body, 503, "api_server.max_connections")
                assert headers["retry-after"] == "1"
                assert _closed(extra)
        for sock in holders:  # the admitted ones keep being served
            assert _livez(sock)[0] == 200
        holders.pop().close()
        holders.append(_until_admitted(capped))  # a place freed is a place taken
    finally:
        for sock in holders:
            sock.close()


@pytest.mark.slow
@pytest.mark.parametrize("args", [("--workers", "2"), ("--reload",)], ids=["workers", "reload"])
def test_limits_hold_in_worker_processes(tmp_path: Path, args: tuple[str, ...]) -> None:
    project = _project(tmp_path / "project", {"request_timeout": REQUEST_TIMEOUT, "max_header_size": 4096})
    home = tmp_path / "home"
    with running_server("service.py:svc", home=home, cwd=project, args=("--config", "config.yaml", *args)) as srv:
        for _ in range(4):  # several connections: with two workers, each gets some
            with _connect(srv) as sock:
                sock.sendall(b"GET /livez HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 8192 + b"\r\n\r\n")
                _assert_error(*_response(sock), 431, "over 4096 bytes")
        with _connect(srv) as sock:
            sock.sendall(b"GET /livez HTTP/1.1\r\nhost: x\r\nx-half: ")
            _assert_error(*_response(sock), 408, "api_server.request_timeout")
        assert _echo(srv, {"ok": 1}) == {"ok": 1}


@pytest.mark.slow
def test_kept_alive_connection_outlives_the_request_timeout(tmp_path: Path) -> None:
    """The deadline is per request: a connection may live on, and a request may span an earlier one's deadline."""
    timeout = 4
    project = _project(tmp_path / "project", {"request_timeout": timeout, "keepalive_timeout": 60})
    home = tmp_path / "home"
    post = b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 3\r\n\r\n"
    with running_server("service.py:svc", home=home, cwd=project, args=("--config", "config.yaml")) as srv:
        with _connect(srv) as sock:
            sock.sendall(post + b"[1]")  # t=0: whole at once
            assert _response(sock)[::2] == (200, b"[1]")
            time.sleep(timeout / 2)
            sock.sendall(post)  # t=2: head now, body at t=5 (3 s for this request, across t=4)
            time.sleep(timeout * 3 / 4)
            sock.sendall(b"[2]")
            assert _response(sock)[::2] == (200, b"[2]")
            sock.sendall(post + b"[")  # and a stalled one on the same connection still gets its 408
            _assert_error(*_response(sock), 408, f"within {timeout} seconds")


def test_protocol_benchmark_runs() -> None:
    """benchmarks/http_protocol.py drives both protocols through whole requests (its numbers are not checked here)."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "http_protocol.py"
    out = subprocess.run(
        [sys.executable, str(script), "--requests", "200", "--rounds", "1", "--no-fail"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "uvicorn" in out and "mlpack" in out and "us per request" in out
