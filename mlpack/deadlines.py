"""The server's time limit on API calls, at the cost of a dict entry per request.

Every call gets the same limit (``api_server.timeout``), so deadlines come in the order calls
start: the running calls sit in one insertion-ordered dict and one timer is armed for the
oldest. ``asyncio.timeout`` would make a context object, a timer handle and a heap entry for
every request, which at thousands of requests a second costs more than the rest of the
request's bookkeeping together.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

if sys.version_info < (3, 12):  # there current_task is pure Python: ten times this dict lookup
    _running_tasks: dict[Any, asyncio.Task[Any]] = asyncio.tasks._current_tasks  # type: ignore[attr-defined]
    _task_of = _running_tasks.get
else:
    _task_of = asyncio.current_task


class Deadlines:
    """Cancels the calls that outlive ``timeout`` seconds; the caller turns that into its 504.

    Use from one event loop::

        task = deadlines.enter()
        try:
            result = await call()
        except asyncio.CancelledError:
            if deadlines.expired(task):  # ours, not a cancellation from outside
                ...504...
            raise
        finally:
            deadlines.leave(task)
    """

    __slots__ = ("timeout", "_loop", "_running", "_cancelled", "_timer")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: dict[asyncio.Task[Any], float] = {}  # task -> deadline, oldest first
        self._cancelled: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def enter(self) -> asyncio.Task[Any]:
        """Start the clock for the current task's call; returns the task."""
        loop = self._loop
        task = _task_of(loop) if loop is not None else None
        if task is None:  # first use, another loop (tests), or not in a task
            task = asyncio.current_task()
            if task is None:
                raise RuntimeError("Deadlines.enter() outside of a task")
            loop = self._loop = task.get_loop()
            self._running.clear()
            self._cancelled.clear()
            self._timer = None
        deadline = loop.time() + self.timeout
        self._running[task] = deadline
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire)
        return task

    def leave(self, task: asyncio.Task[Any]) -> None:
        """The call is over (answered, failed or timed out)."""
        self._running.pop(task, None)
        if self._cancelled and task in self._cancelled:
            # it finished as the timer cancelled it: take the cancellation back
            self._cancelled.discard(task)
            uncancel = getattr(task, "uncancel", None)  # Python >= 3.11
            if uncancel is not None and task.cancelling():
                uncancel()

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether the CancelledError ``task`` got is this limit's; if so, it is consumed."""
        if task not in self._cancelled:
            return False
        self._cancelled.discard(task)
        uncancel = getattr(task, "uncancel", None)
        if uncancel is not None:
            uncancel()
        return True

    def _expire(self) -> None:
        self._timer = None
        loop, running = self._loop, self._running
        if loop is None:
            return
        now = loop.time()
        while running:  # oldest first: stop at the first one still in time
            task = next(iter(running))
            deadline = running[task]
            if deadline > now:
                self._timer = loop.call_at(deadline, self._expire)
                return
            del running[task]
            if not task.done():
                self._cancelled.add(task)
                task.cancel()
