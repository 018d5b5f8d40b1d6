"""What bearer tokens cost the native route: `mlpack serve` without and with `--auth-token-file`.

Run: .venv/bin/python benchmarks/auth.py [--duration 5] [--clients 1,16,64] [--rounds 2]

Trains the iris SVC into a temporary MLPACK_HOME (as ``benchmarks/serve.py`` does) and starts
two servers of the same service at once: ``open`` without tokens, ``tokens`` with a file of
ten tokens (every request carries the last one, so every comparison runs). They are measured
in turns, with the same closed-loop asyncio load generator (``benchmarks/protocols.py``'s),
on ``POST /classify``. The load generator shares the machine with the servers: read the
numbers as ratios within one run (tokens / open), not as absolute speeds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_serve", HERE / "serve.py")
bench = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
sys.modules["bench_serve"] = bench
_spec.loader.exec_module(bench)  # type: ignore[union-attr]

TOKENS = [f"benchmark-token-{i:02d}-{'x' * 24}" for i in range(10)]


@contextmanager
def server(workdir: Path, env: dict[str, str], args: list[str], token: str | None) -> Iterator[str]:
    port = bench.free_port()
    cmd = [*bench.command("mlpack", port), *args]
    log = open(workdir / f"server-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    headers = {"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                req = urllib.request.Request(url + "/classify", json.dumps([bench.ROWS[0]]).encode(), headers)
                if urllib.request.urlopen(req, timeout=1).status == 200:
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((workdir / f"server-{port}.log").read_text()) from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    best: dict[tuple[str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="mlpack-bench-auth-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "MLPACK_HOME": str(work / "home"), "PYTHONPATH": str(bench.ROOT)}
        os.environ["MLPACK_HOME"] = env["MLPACK_HOME"]
        bench.prepare(work)
        (work / "tokens.txt").write_text("\n".join(TOKENS) + "\n")
        token = TOKENS[-1]
        with server(work, env, [], None) as open_url, server(work, env, ["--auth-token-file", "tokens.txt"], token) as tok_url:
            header = f"Authorization: Bearer {token}\r\n"
            points = [("open", open_url, ""), ("tokens", tok_url, header)]
            for _ in range(args.rounds):
                for n in clients:
                    for name, url, extra in points:
                        r = measure(url, extra, n, args.duration)
                        if (name, n) not in best or r["rps"] > best[(name, n)]["rps"]:
                            best[(name, n)] = r
    print(f"{'server':8} {'clients':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for (name, n), r in best.items():
        print(f"{name:8} {n:7d} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['errors']:6.0f}")
    for n in clients:
        print(f"{n} clients: tokens / open = {best[('tokens', n)]['rps'] / best[('open', n)]['rps']:.2f}")
    return 0


async def _load(port: int, extra: str, bodies: list[bytes], clients: int, duration: float) -> tuple[float, list[float], int]:
    """Closed-loop clients on kept-alive connections, each POSTing /classify and reading the answer."""

    requests = [
        f"POST /classify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Content-Type: application/json\r\n"
        f"Content-Length: {len(b)}\r\n\r\n".encode()
        + b
        for b in bodies
    ]
    return await bench.keepalive_load("127.0.0.1", port, requests, clients, duration)


def measure(url: str, extra_header: str, clients: int, duration: float) -> dict[str, float]:
    import statistics

    import uvloop

    port = int(url.rsplit(":", 1)[1])
    bodies = [json.dumps([list(r)]).encode() for r in bench.ROWS]
    elapsed, lat, errors = uvloop.run(_load(port, extra_header, bodies, clients, duration))
    qs = statistics.quantiles(lat, n=100, method="inclusive")
    return {"rps": len(lat) / elapsed, "p50": qs[49] * 1000, "p99": qs[98] * 1000, "errors": errors}


if __name__ == "__main__":
    raise SystemExit(main())
