"""What mlpack's HTTP limits cost per request: uvicorn's httptools protocol vs mlpack's, in one run.

Run: .venv/bin/python benchmarks/http_protocol.py [--requests 3000] [--rounds 40]

``benchmarks/serve.py`` measures the whole server, whose numbers move by tens of per cent on a
busy machine: too coarse to see a few microseconds. This script drives each protocol directly,
on one uvloop event loop with an in-memory transport and a constant ASGI app, so the only
difference between the two is the protocol class: uvicorn's ``HttpToolsProtocol`` against
``mlpack.httplimits.LimitedHttpToolsProtocol`` (header count, request deadline, idle and
connection checks). Each round sends ``--requests`` kept-alive POSTs of an iris row through
each protocol in turn (the order swapping every round; many short rounds, as the best of many
dodges the noise of a shared machine); the best round of each, in CPU time of
the thread (which a busy machine disturbs less than wall time), is compared.

Target: the limits add under 3 us of CPU per request, about 3% of what a whole request through
``mlpack serve`` costs (``benchmarks/serve.py``'s "CPU us/req" column: ~80-130 us at 64 clients on
a small machine); the script also prints the share of the protocol layer alone. Prints PASS or MISS
and exits 1 on a miss (``--no-fail`` to always exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_ADDED_US = 3.0
REQUEST = (
    b"POST /predict HTTP/1.1\r\nhost: 127.0.0.1:3000\r\nuser-agent: bench\r\naccept: */*\r\n"
    b"content-type: application/json\r\ncontent-length: 20\r\n\r\n[[5.1,3.5,1.4,0.2]]\n"
)


async def app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"3")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"[0]"})


class Transport:
    """Just enough of an asyncio transport: it records when a response has gone out."""

    def __init__(self) -> None:
        self.written = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 3000), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None: ...


def run_round(loop: asyncio.AbstractEventLoop, make: Any, requests: int) -> float:
    """CPU seconds per request through one kept-alive connection of the protocol ``make`` builds."""
    proto = make()
    transport = Transport()
    proto.connection_made(transport)

    async def drive() -> float:
        start = time.thread_time()
        for _ in range(requests):
            before = transport.written
            proto.data_received(REQUEST)
            while transport.written < before + 2:  # status line + headers, then the body
                await asyncio.sleep(0)
        return (time.thread_time() - start) / requests

    try:
        return loop.run_until_complete(drive())
    finally:
        proto.connection_lost(None)


def main() -> int:
    import functools

    import uvloop
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    from mlpack.httplimits import HttpLimits, LimitedHttpToolsProtocol

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--no-fail", action="store_true")
    args = parser.parse_args()

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    config = Config(app, http="httptools", lifespan="off", log_level="warning")
    config.load()
    state = ServerState()
    limits = HttpLimits(max_header_size=64 * 1024, request_timeout=60, max_connections=1000)
    makers = {
        "uvicorn": functools.partial(HttpToolsProtocol, config, state, {}, loop),
        "mlpack": functools.partial(LimitedHttpToolsProtocol, config, state, {}, loop, limits=limits),
    }
    best = {name: float("inf") for name in makers}
    run_round(loop, makers["uvicorn"], 1000)  # warm-up
    run_round(loop, makers["mlpack"], 1000)
    order = list(makers)
    for _ in range(args.rounds):
        for name in order:
            gc.collect()
            best[name] = min(best[name], run_round(loop, makers[name], args.requests))
        order.reverse()  # neither goes first every time
    for name, seconds in best.items():
        print(f"{name:8} {seconds * 1e6:7.2f} us CPU/request (best of {args.rounds} rounds of {args.requests})")
    added_us = (best["mlpack"] - best["uvicorn"]) * 1e6
    print(f"limits add {added_us:+.2f} us per request: {best['mlpack'] / best['uvicorn'] - 1:+.1%} of the protocol layer alone")
    ok = added_us < TARGET_ADDED_US
    print(f"{'PASS' if ok else 'MISS'}: {added_us:+.2f} us CPU per request (target < {TARGET_ADDED_US:g} us)")
    loop.close()
    return 0 if ok or args.no_fail else 1


if __name__ == "__main__":
    sys.exit(main())
