"""Start the real `mlpack serve` in a subprocess on 127.0.0.1 and a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log
        self.final_output: str | None = None

    def output(self) -> str:
        if self.final_output is not None:
            return self.final_output
        return self.log.read_text(errors="replace")

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


@contextmanager
def running_server(
    target: str,
    *,
    home: Path,
    cwd: Path,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    wait_ready: bool = True,
    timeout: float = 60,
) -> Iterator[Server]:
    port = free_port()
    full_env = {**os.environ, "MLPACK_HOME": str(home), "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **(env or {})}
    log = Path(tempfile.mkstemp(prefix="mlpack-serve-", suffix=".log")[1])
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlpack", "serve", target, "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=cwd,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + timeout
        path = "/readyz" if wait_ready else "/livez"
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{server.output()}")
            try:
                if httpx.get(server.url + path, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not up after {timeout}s:\n{server.output()}")
            time.sleep(0.05)
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        server.final_output = server.output()
        log.unlink(missing_ok=True)
