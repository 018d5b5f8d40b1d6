"""The server's per-call time limit (mlpack.deadlines): slow calls are cancelled, others are untouched."""

from __future__ import annotations

import asyncio

import pytest

from mlpack.deadlines import Deadlines


async def call(deadlines: Deadlines, seconds: float) -> str:
    task = deadlines.enter()
    try:
        await asyncio.sleep(seconds)
        return "done"
    except asyncio.CancelledError:
        if deadlines.expired(task):
            return "timed out"
        raise
    finally:
        deadlines.leave(task)


def test_only_the_calls_over_the_limit_are_cancelled() -> None:
    async def main() -> list[str]:
        d = Deadlines(0.05)
        delays = [0.0, 0.2, 0.01, 0.3, 0.02, 0.0]
        out = await asyncio.gather(*(call(d, s) for s in delays))
        assert not d._running and not d._cancelled  # nothing left behind
        return out

    assert asyncio.run(main()) == ["done", "timed out", "done", "timed out", "done", "done"]


def test_later_calls_get_their_own_full_time() -> None:
    async def main() -> list[str]:
        d = Deadlines(0.1)
        first = asyncio.create_task(call(d, 0.15))
        await asyncio.sleep(0.06)
        second = asyncio.create_task(call(d, 0.08))  # started 60 ms later: within its own 100 ms
        return [await first, await second]

    assert asyncio.run(main()) == ["timed out", "done"]


def test_a_cancellation_from_outside_is_not_a_timeout() -> None:
    async def main() -> None:
        d = Deadlines(10)
        task = asyncio.create_task(call(d, 5))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not d._running and not d._cancelled

    asyncio.run(main())


def test_many_sequential_calls_keep_one_timer_and_no_state() -> None:
    async def main() -> None:
        d = Deadlines(30)
        for _ in range(1000):
            assert await call(d, 0) == "done"
        assert not d._running and d._timer is not None

    asyncio.run(main())


def test_a_new_event_loop_starts_clean() -> None:
    d = Deadlines(0.05)
    assert asyncio.run(call(d, 0.2)) == "timed out"
    assert asyncio.run(call(d, 0.0)) == "done"
    assert asyncio.run(call(d, 0.2)) == "timed out"
