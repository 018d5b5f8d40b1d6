"""How the hub's HTTP server takes in request bodies: no copies, no page-fault churn.

uvicorn appends each body chunk the parser hands over to a ``bytearray`` and gives the app
``bytes(bytearray)``: two copies of every byte received, on the event loop's one thread. For a
hub taking a 500 MB blob that was ~0.3 s of CPU, the largest part of its receive path. Starting
the pending body as an empty ``bytes`` instead makes ``b"" + chunk`` and ``bytes(chunk)`` the
chunk itself, so the common case (one chunk per ``receive``, reading paused above 64 KiB)
copies nothing; a second chunk arriving before the app asked for the first grows a
``bytearray`` as uvicorn does. Any other body type (a future uvicorn) is left alone.

The chunks themselves (~256 KiB each, made by the event loop and the parser) are above glibc's
default thresholds: each was a fresh ``mmap`` or a heap grown and trimmed again, so every page
of every chunk was a page fault and a zeroed page (~75,000 faults for 500 MB).
``steady_allocator`` fixes the thresholds so the freed chunks' memory is reused instead.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
TRIM_THRESHOLD = 32 << 20  # free memory kept at the heap's top (bounds what the process holds on to)
MMAP_THRESHOLD = 8 << 20  # allocations at least this large get their own mapping


class HubHttpProtocol(HttpToolsProtocol):
    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        pending = cycle.body
        if type(pending) is bytearray and not pending:
            cycle.body = b""  # type: ignore[assignment]  # b"" + body is body: no copy here or in receive()
        elif type(pending) is bytes and pending:
            cycle.body = bytearray(pending)  # more than one chunk waiting: grow in place, not quadratically
        super().on_body(body)


def steady_allocator() -> bool:
    """Fix glibc's malloc thresholds for this process; False where there is no ``mallopt``."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
