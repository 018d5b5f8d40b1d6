"""Write a stream of buffers to a file and hash it at the same time, then fsync once.

sha256 (~1.2 GB/s with SHA-NI) costs as much as copying into the page cache, and both
``hashlib`` and ``os.write`` release the GIL on large buffers, so each gets a thread of its
own while the caller's thread receives the next bytes: the three overlap instead of adding
up. At most ``depth`` batches are in flight, so memory stays bounded whatever the size.
Each written range is handed to the kernel's writeback at once (``sync_file_range`` where
Linux has it), so dirty pages never pile up and the one ``fsync`` at the end, which is still
the durability guarantee, finds little left to do.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

Buffer = Any  # bytes, bytearray or memoryview
# At most this much per write call: larger calls were many times slower here (system time
# grows with the size of one call, likely from building large page-cache folios), while
# 64-256 KiB calls run at memory speed.
WRITE_PIECE = 256 << 10
SYNC_FILE_RANGE_WRITE = 2  # start writeback of the range's dirty pages, without waiting


def _writeback_starter() -> Callable[[int, int, int], None]:
    """``start(fd, offset, length)``; a no-op where ``sync_file_range`` does not exist."""
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # not Linux: the final fsync does all the work
        return lambda _fd, _offset, _length: None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int

    def start(fd: int, offset: int, length: int) -> None:
        call(fd, offset, length, SYNC_FILE_RANGE_WRITE)  # only a hint: errors surface at fsync

    return start


def _write_all(fd: int, parts: Sequence[Buffer]) -> int:
    written = 0
    for part in parts:
        view = memoryview(part).cast("B")
        while view:
            n = os.write(fd, view[:WRITE_PIECE])
            written += n
            view = view[n:]
    return written


class HashingFile:
    """Hash and write batches of buffers to the open file descriptor ``fd`` in two threads.

    ``write(parts)`` queues one batch; the caller must leave a batch's buffers untouched until
    ``depth`` later ``write`` calls (or ``finish``) have returned. With ``parallel=False``
    (a small file, where two threads cost more than they save) each batch is hashed and
    written before ``write`` returns. ``finish`` waits for all,
    fsyncs and returns ``(sha256 hex, size)``; ``close`` stops the threads (always call it).
    The file descriptor stays the caller's to close.
    """

    def __init__(self, fd: int, *, depth: int = 3, parallel: bool = True) -> None:
        self.fd, self.depth = fd, max(1, depth)
        self.digest = hashlib.sha256()
        self.size = 0
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="mlpack-sha256") if parallel else None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="mlpack-write") if parallel else None
        self._in_flight: deque[tuple[Future[None], Future[None]]] = deque()
        self._start_writeback = _writeback_starter()

    def _hash(self, parts: Sequence[Buffer]) -> None:
        for part in parts:
            self.digest.update(part)

    def _write(self, parts: Sequence[Buffer], offset: int) -> None:
        written = _write_all(self.fd, parts)
        self._start_writeback(self.fd, offset, written)

    def write(self, parts: Sequence[Buffer]) -> None:
        """Queue one batch; blocks while ``depth`` batches are still being hashed or written."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return
        offset = self.size
        self.size += sum(memoryview(p).nbytes for p in parts)
        if self._hasher is None or self._writer is None:
            self._hash(parts)
            self._write(parts, offset)
            return
        self._in_flight.append((self._hasher.submit(self._hash, parts), self._writer.submit(self._write, parts, offset)))
        while len(self._in_flight) > self.depth:
            self._wait_oldest()

    def _wait_oldest(self) -> None:
        hashed, written = self._in_flight.popleft()
        hashed.result()
        written.result()

    def finish(self) -> tuple[str, int]:
        """Wait for every batch, fsync the file, and return its sha256 and size."""
        while self._in_flight:
            self._wait_oldest()
        os.fsync(self.fd)
        return self.digest.hexdigest(), self.size

    def close(self) -> None:
        """Stop the threads; batches not yet started are dropped (the file is then incomplete)."""
        for future_pair in self._in_flight:
            for future in future_pair:
                future.cancel()
        for pool in (self._hasher, self._writer):
            if pool is not None:
                pool.shutdown(wait=True)
        self._in_flight.clear()

    def __enter__(self) -> HashingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
