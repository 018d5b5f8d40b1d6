"""Requests per second of the native route beside the Open Inference Protocol v2 JSON route.

Run: .venv/bin/python benchmarks/protocols.py [--duration 5] [--clients 1,16,64] [--rounds 2]

Trains the iris SVC into a temporary MLPACK_HOME (as ``benchmarks/serve.py`` does) and serves
the same one-worker service twice, side by side (one worker each):

  baseline   every protocol but the native one switched off (``api_server.protocols``)
  protocols  all protocols on (the default)

and loads them in turns with closed-loop Python asyncio clients on kept-alive connections (one
iris row per request), each point ``--rounds`` times (the best is kept): ``POST /classify`` on
both servers, and ``POST /v2/models/classify/infer`` (a v2 JSON tensor of shape [1, 4]) on the
second. It prints req/s and p50/p99 for each, the ratio of the native route with protocols on
to the baseline (it should be ~1: protocol routes never touch the native path), and of v2 to
native. The load generator shares the machine with the servers: read the numbers as ratios
measured in one run, not as absolute capacity.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_serve", HERE / "serve.py")
bench = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
sys.modules["bench_serve"] = bench  # its dataclasses look their module up
_spec.loader.exec_module(bench)  # type: ignore[union-attr]

OFF = "api_server:\n  protocols:\n" + "".join(f"    {p}: {{enabled: false}}\n" for p in ("v2", "kserve_v1", "mlflow"))


def _v2(row: list[float]) -> bytes:
    return json.dumps({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": row}]}).encode()


def _native(row: list[float]) -> bytes:
    return json.dumps([row]).encode()


async def _load(
    host: str, port: int, path: str, bodies: list[bytes], clients: int, duration: float
) -> tuple[float, list[float], int]:
    requests = [
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(b)}\r\n\r\n".encode()
        + b
        for b in bodies
    ]
    return await bench.keepalive_load(host, port, requests, clients, duration)


def measure(url: str, path: str, make: object, clients: int, duration: float) -> dict[str, float]:
    from urllib.parse import urlsplit

    import uvloop

    parts = urlsplit(url)
    bodies = [make(list(r)) for r in bench.ROWS]  # type: ignore[operator]
    elapsed, lat, errors = uvloop.run(_load(parts.hostname, parts.port, path, bodies, clients, duration))
    qs = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [lat[0]] * 99
    return {"rps": len(lat) / elapsed, "p50": qs[49] * 1000, "p99": qs[98] * 1000, "errors": errors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per point (default 5)")
    parser.add_argument("--clients", default="1,16,64", help="comma-separated client counts (default 1,16,64)")
    parser.add_argument("--rounds", type=int, default=2, help="measure each point this many times, keep the best")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    rows: dict[tuple[str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="mlpack-bench-protocols-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "MLPACK_HOME": str(work / "home"), "PYTHONPATH": str(bench.ROOT)}
        os.environ["MLPACK_HOME"] = env["MLPACK_HOME"]
        bench.prepare(work)
        (work / "off.yaml").write_text(OFF)
        off = {**env, "MLPACK_CONFIG": str(work / "off.yaml")}
        # both servers up at once, measured in turns: load on the shared machine hits both alike
        with bench.server("mlpack", work, off, None) as (off_url, _), bench.server("mlpack", work, env, None) as (on_url, _):
            points = [
                ("native (baseline)", off_url.rsplit("/", 1)[0], "/classify", _native),
                ("native (protocols)", on_url.rsplit("/", 1)[0], "/classify", _native),
                ("v2 json (protocols)", on_url.rsplit("/", 1)[0], "/v2/models/classify/infer", _v2),
            ]
            for _name, base, path, make in points:
                measure(base, path, make, 4, 1.0)  # warm-up
            for _round in range(args.rounds):
                for n in clients:
                    for name, base, path, make in points:
                        r = measure(base, path, make, n, args.duration)
                        best = rows.get((name, n))
                        if best is None or r["rps"] > best["rps"]:
                            rows[(name, n)] = r
    print(f"{'route':24} {'clients':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for (name, n), r in rows.items():
        print(f"{name:24} {n:7d} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['errors']:6.0f}")
    for n in clients:
        native, base_ = rows[("native (protocols)", n)]["rps"], rows[("native (baseline)", n)]["rps"]
        v2 = rows[("v2 json (protocols)", n)]["rps"]
        print(f"{n} clients: native with protocols / baseline = {native / base_:.2f}; v2 json / native = {v2 / native:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
