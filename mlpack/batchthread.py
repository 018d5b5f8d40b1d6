"""The batcher's worker thread: model calls off the event loop, one at a time."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["BatchThread"]


class BatchThread:
    """The batcher's own worker thread, started on first use; runs one call at a time.

    Hands work over with a SimpleQueue and ``call_soon_threadsafe``: per batch this costs about
    a third of the CPU of a ThreadPoolExecutor hop (its locks, and a concurrent Future chained
    to an asyncio one), which shows in single-client latency.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._started = self._closed = False

    def run(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        future = loop.create_future()
        with self._lock:  # so that no job can follow the shutdown sentinel
            if self._closed:
                raise RuntimeError("cannot run a batch after shutdown")
            if not self._started:
                # A daemon, as a forgotten batcher must not keep the process alive at exit.
                threading.Thread(target=self._work, args=(self._jobs,), name=self.name, daemon=True).start()
                self._started = True
            self._jobs.put((loop, future, fn, args))
        return future

    def shutdown(self) -> None:
        """Stop the thread after the running call (any thread, idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._jobs.put(None)

    @staticmethod
    def _work(jobs: queue.SimpleQueue[Any]) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            loop, future, fn, args = job
            try:
                outcome: tuple[Any, ...] = (_set_result, future, fn(*args))
            except BaseException as exc:  # as a ThreadPoolExecutor: the caller gets it
                outcome = (_set_exception, future, exc)
            try:
                loop.call_soon_threadsafe(*outcome)
            except RuntimeError:  # the loop is closed: no one waits for this result
                pass
            del job, loop, future, fn, args, outcome  # do not hold the batch until the next one


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
