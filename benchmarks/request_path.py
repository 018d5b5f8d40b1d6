"""CPU time of mlpack's own per-request work, without the HTTP server: a deterministic-ish profile.

Run: .venv/bin/python benchmarks/request_path.py [--requests 20000] [--concurrency 1,64] [--tiny-model]

Builds the app of the iris tutorial service (``mlpack.serve.build_app``) and calls it as an
ASGI app, ``--concurrency`` requests at a time, with in-memory ``receive``/``send``: what is
left is mlpack's request path (endpoint, input/output descriptors, contract, batcher, model,
metrics) and the event loop's task switching. The runners are told whether a request is alone
as the server tells them (``mlpack.serve.watch_requests``), so that the inline policy acts as it
does there. It prints the process CPU time per request (loop and model thread together),
which other load on the machine disturbs much less than wall time, next to two baselines
measured in the same run: the bare model call per request at the same batch sizes, and the
hand-written Starlette endpoint of benchmarks/serve.py (it parses the body and calls
``clf.predict`` per request) driven the same way. Use it to see what a
change to the request path costs or saves. With ``--tiny-model`` both apps call a model that
costs next to nothing (the same answers), so that what is left is the frameworks' own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

BODIES = [b"[[5.1,3.5,1.4,0.2]]", b"[[4.9,3.0,1.4,0.2]]", b"[[6.2,2.9,4.3,1.3]]", b"[[6.3,3.3,6.0,2.5]]"]
EXPECTED = [b"[0]", b"[0]", b"[1]", b"[2]"]


def scope(path: str, length: int) -> dict:
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"), (b"content-length", str(length).encode())]
    return {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "root_path": "",
            "headers": headers, "query_string": b"", "http_version": "1.1", "scheme": "http"}  # fmt: skip


class InFlight:
    """What ``mlpack.serve.watch_requests`` tells the runners: whether a request is alone. Clients
    here send their next request at once, so each of them always has one under way (counting the
    requests that have started instead would let one client's requests, answered without ever
    suspending, run through before the others begin)."""

    clients = 0

    @classmethod
    def alone(cls) -> bool:
        return cls.clients <= 1


async def drive(app, path: str, total: int, concurrency: int) -> float:
    """Send ``total`` requests, ``concurrency`` at a time; CPU seconds per request."""
    wrong = 0

    async def one(k: int) -> None:
        nonlocal wrong
        body = BODIES[k % 4]
        sent = []

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            sent.append(message)

        await app(scope(path, len(body)), receive, send)
        if sent[0]["status"] != 200 or sent[-1]["body"] != EXPECTED[k % 4]:
            wrong += 1

    async def client(c: int) -> None:
        for k in range(c, total, concurrency):
            await one(k)

    InFlight.clients = concurrency
    started = time.process_time()
    await asyncio.gather(*(client(c) for c in range(concurrency)))
    cpu = time.process_time() - started
    if wrong:
        raise SystemExit(f"{wrong} wrong answers")
    return cpu / total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-metrics", action="store_true")
    parser.add_argument(
        "--tiny-model",
        action="store_true",
        help="swap SVC.predict for a two-threshold rule (same answers) in both apps: what is left is the frameworks' own cost",
    )
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="mlpack-bench-path-")
    os.environ["MLPACK_HOME"] = home
    import serve as bench  # benchmarks/serve.py: the same model and service

    work = Path(home)
    bench.prepare(work)
    import uvloop

    if args.tiny_model:
        from sklearn.svm import SVC

        def predict(self, x):  # petal length > 2.5, then petal width > 1.75: right for BODIES
            return (x[:, 2] > 2.5).astype(int) + (x[:, 3] > 1.75)

        SVC.predict = predict  # before either app loads its model: both bind this one

    from mlpack.config import resolve_serve_options
    from mlpack.serve import build_app
    from mlpack.target import load_service

    config = None
    if args.no_metrics:
        config = work / "config.yaml"
        config.write_text("api_server:\n  metrics:\n    enabled: false\n")
    options = resolve_serve_options("service.py:svc", working_dir=str(work), config=str(config) if config else None)
    service = load_service(options.target, options.working_dir).service
    app = build_app(service, options)
    runner = service.runners[0]
    runner.alone = InFlight.alone  # as mlpack.serve.watch_requests does: the inline policy sees the same
    import numpy as np

    sys.path.insert(0, str(work))
    os.chdir(work)
    import plain_app  # benchmarks/serve.py wrote it: Starlette, orjson, clf.predict per request

    fn = runner.model.load_runnable()["predict"]

    async def run() -> None:
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        await app.state.mlpack.loader
        for c in (int(x) for x in args.concurrency.split(",")):
            await drive(app, "/classify", 2000, c)  # warm-up
            per = [await drive(app, "/classify", args.requests, c) for _ in range(args.repeat)]
            batch = np.tile(np.asarray([[5.1, 3.5, 1.4, 0.2]]), (c, 1))
            t0 = time.process_time()
            for _ in range(200):
                fn(batch)
            model = (time.process_time() - t0) / 200 / c
            await drive(plain_app.app, "/classify", 2000, c)
            plains = [await drive(plain_app.app, "/classify", args.requests, c) for _ in range(args.repeat)]
            plain = statistics.median(plains)
            med = statistics.median(per)
            print(
                f"concurrency {c:>3}: {med * 1e6:6.1f} us CPU/request (min {min(per) * 1e6:.1f});"
                f" bare model call {model * 1e6:5.1f} us/request at batches of {c};"
                f" mlpack's own {(med - model) * 1e6:5.1f} us; plain endpoint {plain * 1e6:6.1f} us (min {min(plains) * 1e6:.1f})"
            )
        await lifespan.__aexit__(None, None, None)

    uvloop.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
