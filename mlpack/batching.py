"""Adaptive micro-batching: merge concurrent requests into one model call.

A request that finds the model idle runs at once. Requests that arrive while a batch
runs wait in a queue; when the batch ends, everything queued (in arrival order, up to
``max_batch_size`` rows) becomes the next batch. Batches thus grow with load and add
no latency when there is none, unlike a fixed "wait N ms or N items" window.

Model calls run in the batcher's thread, so that the event loop stays free; except that a
request that is alone (nothing else waiting) runs on the loop when the model has proven
tiny: its last calls each took at most ``inline_max_ms`` for at least as many rows. That
saves the hand-off to the thread and back, which costs more than such a model's call.
"Alone" is what the server says (``alone()``: no other request under way), or else what the
batcher sees on its driver's first step (no other request queued behind it). A failed batch
is re-run in parts (``mlpack.isolation``) so that only the requests that fail on their own fail.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from mlpack.batches import concat, count_rows, split
from mlpack.batchthread import BatchThread
from mlpack.exceptions import BadInput, ServiceUnavailable

__all__ = ["AdaptiveBatcher", "concat", "count_rows", "split"]

log = logging.getLogger(__name__)

# Consecutive fast calls a model needs before a request may run it on the event loop.
_INLINE_EVIDENCE = 3


class _Refused:
    """A request of a batch that the input check refused: it gets ``error``, the others run."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class _Item:
    __slots__ = ("data", "rows", "future", "deadline")

    def __init__(self, data: Any, rows: int, future: asyncio.Future[Any], deadline: float) -> None:
        self.data, self.rows, self.future, self.deadline = data, rows, future, deadline


class AdaptiveBatcher:
    """Serve many concurrent callers of a blocking batch function, one batch at a time.

    ``fn`` runs in a worker thread (``executor``, or a private thread).
    ``batch_dim`` is one dim for input and output, or ``(input_dim, output_dim)``.
    ``on_batch(rows)`` is called from the worker thread once per call of ``fn``.

    When a batch of several requests fails, the requests that fail on their own are found by
    re-running parts of it (``mlpack.isolation``); the others get their answers.
    ``alone_error(exc)`` turns the error of a request that failed in a call of its own (a batch
    of one) into the error its caller gets (the runner makes a model's ValueError a 422 there);
    ``on_isolate(extra_calls, failed_alone)`` is called on the loop after each isolation.
    """

    def __init__(
        self,
        fn: Callable[[Any], Any],
        *,
        max_batch_size: int = 100,
        max_latency_ms: float = 10_000,
        batch_dim: int | tuple[int, int] | list[int] = 0,
        executor: concurrent.futures.Executor | None = None,
        on_batch: Callable[[int], None] | None = None,
        alone_error: Callable[[Exception], Exception] | None = None,
        on_isolate: Callable[[int, int], None] | None = None,
        name: str = "",
        inline_max_ms: float = 0.0,
        check: Callable[[Any], None] | None = None,
        alone: Callable[[], bool] | None = None,
    ) -> None:
        dims = (batch_dim, batch_dim) if isinstance(batch_dim, int) else tuple(batch_dim)
        if len(dims) != 2 or not all(isinstance(d, int) and d >= 0 for d in dims):
            raise ValueError(f"batch_dim must be a dim >= 0 or an (input, output) pair, not {batch_dim!r}")
        if max_batch_size < 1 or max_latency_ms < 0 or inline_max_ms < 0:
            raise ValueError("max_batch_size must be >= 1, max_latency_ms and inline_max_ms >= 0")
        self.fn, self.name = fn, name
        self.max_batch_size, self.max_latency_ms = max_batch_size, max_latency_ms
        self.input_dim, self.output_dim = dims
        # The private thread starts on first use, so creating it here is free.
        self._executor = executor
        self._thread = BatchThread(f"mlpack-batch-{name}" if name else "mlpack-batch") if executor is None else None
        self._label = f"batcher {name!r}" if name else "batcher"
        self._retry_after = max(max_latency_ms / 1000, 0.001)
        self._on_batch = on_batch
        self._alone_error, self._on_isolate = alone_error, on_isolate
        self._check = check
        self._alone = alone  # whether the caller's request is the only one its server has under way
        # Loop-bound state is (re)made on first submit: the batcher may outlive or predate a loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: collections.deque[_Item] = collections.deque()
        self._driver: asyncio.Task[None] | None = None
        # One timer, for the oldest queued request: all wait the same max_latency, so deadlines
        # come in queue order (a timer per request would cost more than the rest of submit).
        self._expiry: asyncio.TimerHandle | None = None
        self._closed = False
        # The inline policy's evidence, written by whichever thread made the call: consecutive
        # calls that took at most the budget, and the most rows among them.
        self._inline_budget = inline_max_ms / 1000
        self._fast_streak = self._fast_rows = 0

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch (not rows; the running batch is not counted)."""
        return len(self._queue)

    async def submit(self, data: Any) -> Any:
        """Run ``fn`` on ``data`` within a batch and return this caller's rows of the result.

        Raises ServiceUnavailable after ``max_latency_ms`` in the queue, BadInput when
        ``data`` has no batch dimension, and whatever ``fn`` raised for its batch.
        """
        if self._closed:
            raise ServiceUnavailable(f"{self._label} is shut down", retry_after=self._retry_after)
        cls, dim = type(data), self.input_dim
        if cls.__name__ == "ndarray" and cls.__module__ == "numpy" and data.ndim > dim:
            rows = data.shape[dim]  # the usual request: count_rows without its type checks
        else:
            try:
                rows = count_rows(data, dim)
            except (TypeError, ValueError) as exc:
                raise BadInput(f"cannot batch this input: {exc}") from exc
        if self._driver is None:
            alone = self._alone
            if alone is not None and self._may_inline(rows) and alone():
                # the server says no other request is under way: answer now, on the loop. Before
                # asking for the loop: the call touches none of its state, and in Python 3.11
                # get_running_loop() is a getpid() system call.
                return self._call_alone(data, rows)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._queue, self._driver, self._expiry = loop, collections.deque(), None, None
        if self._driver is None:
            # Idle: no deadline, the driver takes this item on its first step.
            item = _Item(data, rows, loop.create_future(), math.inf)
            self._driver = loop.create_task(self._drive())
        else:
            item = _Item(data, rows, loop.create_future(), loop.time() + self.max_latency_ms / 1000)
            if self._expiry is None:
                self._expiry = loop.call_at(item.deadline, self._expire_due)
        self._queue.append(item)
        try:
            return await item.future
        except asyncio.CancelledError:
            self._discard(item)  # client gone: do not spend model time on it
            raise

    async def close(self) -> None:
        """Refuse new requests, fail queued ones, wait for the running batch, release the executor."""
        self._closed = True
        if self._expiry is not None and self._loop is asyncio.get_running_loop():
            self._expiry.cancel()
            self._expiry = None
        while self._queue:
            item = self._queue.popleft()
            self._discard(item)
            if not item.future.done():
                item.future.set_exception(ServiceUnavailable(f"{self._label} is shutting down", retry_after=1.0))
        driver = self._driver
        if driver is not None and not driver.done() and driver.get_loop() is asyncio.get_running_loop():
            await asyncio.wait([driver])
        self.shutdown()

    def shutdown(self) -> None:
        """Release the private thread now (any thread); prefer ``await close()`` on the loop."""
        self._closed = True
        if self._thread is not None:
            self._thread.shutdown()

    def _expire_due(self) -> None:
        """Answer 503 to the queued requests past their deadline; re-arm for the next one."""
        self._expiry = None
        loop, queue = self._loop, self._queue
        if loop is None:
            return
        now = loop.time()
        # The request that found the batcher idle has no deadline; it can only be first in line.
        first = 1 if queue and queue[0].deadline == math.inf else 0
        while len(queue) > first and queue[first].deadline <= now:
            item = queue[first]
            del queue[first]
            if not item.future.done():
                msg = f"{self._label}: request waited over {self.max_latency_ms:g} ms for the model"
                item.future.set_exception(ServiceUnavailable(msg, retry_after=self._retry_after))
        if len(queue) > first:
            self._expiry = loop.call_at(queue[first].deadline, self._expire_due)

    def _discard(self, item: _Item) -> None:
        try:
            self._queue.remove(item)
        except ValueError:
            pass  # already dispatched

    def _take(self) -> list[_Item]:
        batch: list[_Item] = []
        rows = 0
        while self._queue:
            item = self._queue[0]
            if batch and rows + item.rows > self.max_batch_size:
                break  # keep arrival order: never let a smaller later request jump ahead
            self._queue.popleft()  # dispatched requests are no longer subject to the deadline
            if not item.future.done():
                batch.append(item)
                rows += item.rows
        return batch

    async def _drive(self) -> None:
        batch: list[_Item] = []
        try:
            while self._queue:
                batch = self._take()
                # The driver's first step comes after the tasks that were ready when it was
                # made: requests that arrived together are all queued by now.
                alone = len(batch) == 1 and not self._queue and (self._alone is None or self._alone())
                if alone and self._may_inline(batch[0].rows):
                    self._run_inline(batch[0])
                elif batch:
                    await self._run(batch)
                batch = []
        finally:
            if self._driver is asyncio.current_task():
                self._driver = None
            for item in batch:  # only if interrupted (loop shutting down)
                item.future.cancel()

    def _may_inline(self, rows: int) -> bool:
        return self._fast_streak >= _INLINE_EVIDENCE and 0 < rows <= self._fast_rows

    def _call_alone(self, data: Any, rows: int) -> Any:
        try:
            return self._call_one(data, rows)
        except Exception as exc:
            if self._alone_error is None:
                raise
            err = self._alone_error(exc)
            if err is exc:
                raise
            raise err from exc

    def _run_inline(self, item: _Item) -> None:
        """Call the model for one request on the event loop (see the module's docstring)."""
        try:
            result = self._call_one(item.data, item.rows)
        except Exception as exc:
            self._fail(item, exc, alone=True)
            return
        if not item.future.done():
            item.future.set_result(result)

    def _timed(self, batch: Any, rows: int) -> Any:
        """``fn(batch)``, its time taken as evidence for the inline policy."""
        if not self._inline_budget:
            return self.fn(batch)
        started = time.perf_counter()
        try:
            return self.fn(batch)
        finally:
            if time.perf_counter() - started <= self._inline_budget:
                self._fast_streak += 1
                self._fast_rows = max(self._fast_rows, rows)
            else:  # one slow call, and the model runs in the thread until it proves tiny again
                self._fast_streak = self._fast_rows = 0

    async def _run(self, batch: list[_Item]) -> None:
        try:
            results = await self._dispatch(batch)
        except Exception as exc:
            if len(batch) == 1:
                self._fail(batch[0], exc, alone=True)
            else:
                await self._isolate(batch)
            return
        for it, res in zip(batch, results):
            self._answer(it, res)

    @staticmethod
    def _answer(item: _Item, result: Any) -> None:
        if item.future.done():
            return
        if type(result) is _Refused:
            item.future.set_exception(result.error)
        else:
            item.future.set_result(result)

    def _dispatch(self, batch: list[_Item]) -> Any:
        """Run ``fn`` on ``batch`` in the worker thread (concatenation and splitting included)."""
        datas, sizes = [it.data for it in batch], [it.rows for it in batch]
        if self._thread is not None:
            return self._thread.run(asyncio.get_running_loop(), self._call, datas, sizes)
        return asyncio.get_running_loop().run_in_executor(self._executor, self._call, datas, sizes)

    async def _isolate(self, batch: list[_Item]) -> None:
        """The batch failed: answer every request that does not fail on its own (see mlpack.isolation)."""
        from .isolation import Failed, isolate

        iso = await isolate(len(batch), lambda group: self._dispatch([batch[i] for i in group]))
        for it, outcome in zip(batch, iso.outcomes):
            if isinstance(outcome, Failed):
                self._fail(it, outcome.error, alone=outcome.alone)
            else:
                self._answer(it, outcome)
        everyone = " (fails for everyone)" if iso.everyone_fails else ""
        msg = "%s: a batch of %d requests failed; %d failed alone, %d extra model calls%s"
        log.debug(msg, self._label, len(batch), len(iso.failed_alone), iso.calls, everyone)
        if self._on_isolate is not None:
            try:
                self._on_isolate(iso.calls, len(iso.failed_alone))
            except Exception:  # a metrics hook must not fail requests
                log.exception("%s: on_isolate callback failed", self._label)

    def _fail(self, item: _Item, exc: Exception, *, alone: bool) -> None:
        if not item.future.done():
            item.future.set_exception(self._alone_error(exc) if alone and self._alone_error is not None else exc)

    def _call(self, datas: list[Any], sizes: list[int]) -> list[Any]:
        # Runs in the worker thread, so concatenation and splitting stay off the loop too.
        if len(datas) == 1:
            return [self._call_one(datas[0], sizes[0])]
        check = self._check
        # Inputs that cannot form one batch (other widths, kinds...) fail it like a model error
        # would: isolation then runs them apart.
        batch, _ = concat(datas, self.input_dim)
        if check is not None:
            try:
                check(batch)  # one scan of the whole batch, instead of one per request
            except BadInput:
                return self._call_refusing(datas, sizes)
        rows = sum(sizes)
        self._notify(rows)
        return split(self._timed(batch, rows), sizes, self.output_dim, like=datas)

    def _call_one(self, data: Any, rows: int) -> Any:
        """``_call`` for a batch of one request, without the lists."""
        if self._check is not None:
            self._check(data)  # BadInput: this request's own error
        if self._on_batch is not None:
            self._notify(rows)
        return self._timed(data, rows)

    def _call_refusing(self, datas: list[Any], sizes: list[int]) -> list[Any]:
        """The batch holds input the check refuses: refuse the requests that hold it, run the rest."""
        assert self._check is not None
        out: list[Any] = []
        keep: list[int] = []
        for i, data in enumerate(datas):
            try:
                self._check(data)
            except BadInput as exc:
                out.append(_Refused(exc))
            else:
                out.append(None)
                keep.append(i)
        if keep:
            for i, result in zip(keep, self._call([datas[i] for i in keep], [sizes[i] for i in keep])):
                out[i] = result
        return out

    def _notify(self, rows: int) -> None:
        if self._on_batch is not None:
            try:
                self._on_batch(rows)
            except Exception:  # a metrics hook must not fail requests
                log.exception("%s: on_batch callback failed", self._label)
