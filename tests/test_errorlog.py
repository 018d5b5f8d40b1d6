"""ErrorLog: a traceback once per kind of error (type + place), then a count per period."""

from __future__ import annotations

import logging

import pytest

from mlpack.errorlog import ErrorLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def raise_at_one_place(kind: type[Exception] = ValueError) -> Exception:
    try:
        raise kind("boom")
    except Exception as exc:  # noqa: BLE001
        return exc


def raise_elsewhere() -> Exception:
    try:
        raise ValueError("boom")
    except Exception as exc:  # noqa: BLE001
        return exc


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="test.errorlog")
    return caplog


def test_same_error_logs_its_traceback_once_then_counts(logged) -> None:
    clock = Clock()
    errors = ErrorLog(logging.getLogger("test.errorlog"), period=60, clock=clock)
    for i in range(500):
        clock.now += 0.01
        errors.report(raise_at_one_place(), f"id{i}")
    records = [r for r in logged.records if r.levelno >= logging.ERROR]
    assert len(records) == 1 and records[0].exc_info is not None and "id0" in records[0].getMessage()
    clock.now += 60
    errors.report(raise_at_one_place(), "id500")
    records = [r for r in logged.records if r.levelno >= logging.ERROR]
    assert len(records) == 2 and records[1].exc_info is None
    assert "happened 500 more times in the last 65 s" in records[1].getMessage()
    assert "ValueError at" in records[1].getMessage() and "id500" in records[1].getMessage()
    errors.report(raise_at_one_place(), "id501")
    errors.flush()
    records = [r for r in logged.records if r.levelno >= logging.ERROR]
    assert len(records) == 3 and "happened 1 more time in" in records[2].getMessage()
    errors.flush()  # nothing pending: nothing logged
    assert len([r for r in logged.records if r.levelno >= logging.ERROR]) == 3


def test_other_type_or_place_is_another_error(logged) -> None:
    errors = ErrorLog(logging.getLogger("test.errorlog"), clock=Clock())
    errors.report(raise_at_one_place(ValueError), "a")
    errors.report(raise_at_one_place(TypeError), "b")
    errors.report(raise_elsewhere(), "c")
    errors.report(raise_elsewhere(), "d")
    tracebacks = [r for r in logged.records if r.exc_info is not None]
    assert [r.getMessage().split()[1] for r in tracebacks] == ["a", "b", "c"]


def test_kinds_are_bounded(logged) -> None:
    errors = ErrorLog(logging.getLogger("test.errorlog"), clock=Clock(), max_kinds=2)
    for kind in (ValueError, TypeError, KeyError, ValueError):
        errors.report(raise_at_one_place(kind), kind.__name__)
    assert len(errors._kinds) == 2
    # ValueError was forgotten to make room, so it is logged in full again
    assert [r.getMessage().split()[1] for r in logged.records if r.exc_info] == [
        "ValueError",
        "TypeError",
        "KeyError",
        "ValueError",
    ]
