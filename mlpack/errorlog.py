"""Log floods: the same error logs its traceback once, then a count per period."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ErrorLog"]


@dataclass
class _Kind:
    where: str
    count: int = 0  # occurrences since the last line logged
    since: float = 0.0
    last_id: str = ""


def _place(exc: BaseException) -> str:
    """Where ``exc`` was raised: the innermost frame of its traceback."""
    tb = exc.__traceback__
    if tb is None:
        return "unknown place"
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"


class ErrorLog:
    """Logs errors of one server; an error of the same type raised at the same place again is
    counted, and the count is logged (without traceback) at most once per ``period`` seconds:
    "ValueError at model.py:12 happened 840 more times in the last 60 s"."""

    def __init__(
        self, logger: logging.Logger, period: float = 60.0, clock: Callable[[], float] = time.monotonic, max_kinds: int = 1000
    ) -> None:
        self.logger, self.period, self.clock, self.max_kinds = logger, period, clock, max_kinds
        self._kinds: dict[tuple[str, str], _Kind] = {}
        self._lock = threading.Lock()

    def report(self, exc: BaseException, error_id: str) -> None:
        """Log ``exc`` (answered as a 500 with ``error_id``): in full the first time, else counted."""
        where = _place(exc)
        key = (type(exc).__qualname__, where)
        now = self.clock()
        with self._lock:
            kind = self._kinds.get(key)
            if kind is None:
                if len(self._kinds) >= self.max_kinds:  # bounded: forget the oldest kind
                    self._kinds.pop(next(iter(self._kinds)))
                self._kinds[key] = _Kind(where, since=now)
                first = True
            else:
                first = False
                kind.count += 1
                kind.last_id = error_id
                due = now - kind.since >= self.period
                if due:
                    count, elapsed = kind.count, now - kind.since
                    kind.count, kind.since = 0, now
        if first:
            self.logger.error(
                "error %s while handling a request (%s at %s); repeats are counted, not logged",
                error_id, key[0], where, exc_info=exc,
            )  # fmt: skip
        elif due:
            self._log_count(key[0], where, count, elapsed, error_id)
        else:
            self.logger.debug("error %s: %s at %s again", error_id, key[0], where)

    def flush(self) -> None:
        """Log the counts not yet logged (at shutdown)."""
        now = self.clock()
        with self._lock:
            pending = [(k, v.count, now - v.since, v.last_id) for k, v in self._kinds.items() if v.count]
            for kind in self._kinds.values():
                kind.count, kind.since = 0, now
        for (name, where), count, elapsed, last_id in pending:
            self._log_count(name, where, count, elapsed, last_id)

    def _log_count(self, name: str, where: str, count: int, elapsed: float, last_id: str) -> None:
        self.logger.error(
            "%s at %s happened %d more time%s in the last %.0f s (latest error id %s)",
            name, where, count, "" if count == 1 else "s", elapsed, last_id,
        )  # fmt: skip
