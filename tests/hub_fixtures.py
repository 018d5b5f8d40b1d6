"""Real parts for hub tests: the hub server in a subprocess, ``moto_server`` for S3, PostgreSQL.

Import the fixtures into a test module: ``from tests.hub_fixtures import moto_s3, postgres  # noqa: F401``.
Everything binds 127.0.0.1 on a free port and is stopped afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.server import ROOT, free_port

BIN = Path(sys.executable).parent
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _env(env: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **(env or {})}


def hub_cli(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``mlpack ARGS`` in a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "mlpack", *args], capture_output=True, text=True, env=_env(env), timeout=120, cwd=ROOT
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"mlpack {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def hub_token(data: Path, name: str, *, read_only: bool = False, db: str | None = None, env: dict | None = None) -> str:
    """A new token made by the real CLI (the last line of its stdout)."""
    args = [
        "hub",
        "token",
        "create",
        name,
        "--data",
        str(data),
        *(["--read-only"] if read_only else []),
        *(["--db", db] if db else []),
    ]
    return hub_cli(*args, env=env).stdout.strip().splitlines()[-1]


@dataclass
class HubServer:
    proc: subprocess.Popen
    url: str
    log: Path
    final_output: str | None = None

    def output(self) -> str:
        return self.final_output if self.final_output is not None else self.log.read_text(errors="replace")

    def client(self, token: str | None = None, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)


@contextmanager
def running_hub(data: Path | None, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Iterator[HubServer]:
    """``mlpack hub serve --data DATA ARGS`` on 127.0.0.1 and a free port, until /readyz answers.

    With ``data=None`` no ``--data`` is given: the hub uses ``$MLPACK_HOME/hub`` from ``env``.
    """
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="mlpack-hub-", suffix=".log")[1])
    cmd = [
        sys.executable,
        "-m",
        "mlpack",
        "hub",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *(["--data", str(data)] if data else []),
        *args,
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=_env(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    server = HubServer(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"hub exited with {proc.returncode}:\n{server.output()}")
            try:
                if httpx.get(server.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"hub not ready after {timeout}s:\n{server.output()}")
            time.sleep(0.05)
        yield server
    finally:
        _stop(proc)
        server.final_output = server.output()
        log.unlink(missing_ok=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# -- S3: moto_server ------------------------------------------------------------------------
@dataclass(frozen=True)
class S3:
    endpoint: str
    env: dict[str, str]

    def client(self):  # noqa: ANN201 - boto3 types are dynamic
        import boto3

        return boto3.session.Session(
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.env["AWS_DEFAULT_REGION"],
        ).client("s3", endpoint_url=self.endpoint)

    def new_bucket(self) -> str:
        name = "hub-" + secrets.token_hex(6)
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3]:
    """A real S3-compatible server process (``moto_server`` from ``moto[server]``) on 127.0.0.1."""
    exe = BIN / "moto_server"
    assert exe.exists(), "moto_server is missing: pip install -e '.[all,dev]'"
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **S3_ENV},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_http(endpoint + "/moto-api/", proc, log)
        yield S3(endpoint, {**S3_ENV})
    finally:
        _stop(proc)
        log.close()


def _wait_http(url: str, proc: subprocess.Popen, log, timeout: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read().decode(errors='replace')}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


# -- PostgreSQL: a throw-away cluster from Debian's packages ------------------------------------
@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = "hub_" + secrets.token_hex(6)
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    assert found, f"{name} not found: run scripts/setup-hub.sh (installs Debian's postgresql)"
    return found


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """initdb + pg_ctl in a temp dir, on 127.0.0.1 and a free port, as a non-root user."""
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="mlpack-pg-"))
    if os.geteuid() == 0:  # postgres refuses to run as root: use Debian's postgres account
        account = pwd.getpwnam("postgres")
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    password = secrets.token_urlsafe(16)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if as_user:
        os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
    data = root / "data"
    port = free_port()
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True, timeout=120)  # noqa: E731
    run(
        _pg_bin("initdb"), "-D", str(data), "-U", "mlpack", "-A", "scram-sha-256", f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8"
    )
    opts = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=100"
    run(_pg_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "-t", "60", "start")
    try:
        yield Postgres("127.0.0.1", port, "mlpack", password)
    finally:
        subprocess.run(
            [*as_user, _pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True, timeout=60
        )
        shutil.rmtree(root, ignore_errors=True)


Answer = tuple[int, dict[str, str], bytes]  # status, headers, body


@contextmanager
def answering_server(answer, *, close_after_each: bool = False) -> Iterator[tuple[str, list[str]]]:  # noqa: ANN001
    """A real HTTP/1.1 server on 127.0.0.1 whose ``answer(method, path) -> Answer`` plays a (hostile) hub.

    Yields its URL and the list of ``"METHOD path"`` it served. With ``close_after_each`` it
    closes every connection after one answer without saying so (as a hub whose keep-alive
    timeout ran out would), so a client must notice before reusing the connection.
    """
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            seen.append(f"{self.command} {self.path}")
            status, headers, body = answer(self.command, self.path)
            self.send_response(status)
            headers = {"Content-Length": str(len(body)), **headers}
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            if close_after_each:
                self.close_connection = True

        do_GET = do_PUT = do_POST = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def flipping_relay(target_port: int, *, down_at: int | None = None, up_at: int | None = None) -> Iterator[str]:
    """A TCP relay on 127.0.0.1 to ``target_port`` that flips one byte in transit, on every connection.

    ``down_at`` counts bytes the server sends on a connection, ``up_at`` bytes the client sends;
    the byte at that offset is XORed with 0xFF. Yields the relay's http URL.
    """
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def pipe(src: socket.socket, dst: socket.socket, flip_at: int | None) -> None:
        seen = 0
        try:
            while data := src.recv(1 << 16):
                if flip_at is not None and seen <= flip_at < seen + len(data):
                    changed = bytearray(data)
                    changed[flip_at - seen] ^= 0xFF
                    data = bytes(changed)
                seen += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", target_port))
            threading.Thread(target=pipe, args=(client, upstream, up_at), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client, down_at), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
