"""The batcher's inline policy: a request alone runs a proven-tiny model on the event loop, never a slow one."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from mlpack.batching import AdaptiveBatcher


class Model:
    """Doubles its input; records the thread and rows of each call; sleeps when told to."""

    def __init__(self, sleep: float = 0.0) -> None:
        self.sleep = sleep
        self.calls: list[tuple[str, int]] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append((threading.current_thread().name, len(batch)))
        if self.sleep:
            time.sleep(self.sleep)
        return batch * 2

    def on_loop(self) -> list[bool]:
        main = threading.main_thread().name
        return [name == main for name, _ in self.calls]


def rows(n: int, start: int = 0) -> np.ndarray:
    return np.arange(start, start + n * 2, dtype=float).reshape(n, 2)


async def one_by_one(batcher: AdaptiveBatcher, count: int, n: int = 1) -> None:
    for k in range(count):
        x = rows(n, k)
        assert np.array_equal(await batcher.submit(x), x * 2)


def test_a_tiny_model_runs_on_the_loop_once_it_has_proven_fast() -> None:
    model = Model()

    async def main() -> None:
        b = AdaptiveBatcher(model, inline_max_ms=50, name="tiny")
        await one_by_one(b, 8)
        await b.close()

    asyncio.run(main())
    # the first calls are the evidence, made in the batcher's thread; then the loop's own
    assert model.on_loop() == [False] * 3 + [True] * 5
    assert all(name == "mlpack-batch-tiny" for name, _ in model.calls[:3])


def test_a_slow_model_never_runs_on_the_loop() -> None:
    model = Model(sleep=0.02)  # 20 ms a call, over the 1 ms budget

    async def main() -> None:
        b = AdaptiveBatcher(model, inline_max_ms=1)
        await one_by_one(b, 8)
        await b.close()

    asyncio.run(main())
    assert len(model.calls) == 8 and not any(model.on_loop())


def test_one_slow_call_sends_the_model_back_to_its_thread() -> None:
    model = Model()

    async def main() -> None:
        b = AdaptiveBatcher(model, inline_max_ms=10)
        await one_by_one(b, 5)  # 3 in the thread, 2 inline
        model.sleep = 0.05  # the model turns slow: the next (inline) call is measured slow
        await one_by_one(b, 1)
        model.sleep = 0.0
        await one_by_one(b, 6)  # fast again: proven anew in the thread before going inline
        await b.close()

    asyncio.run(main())
    assert model.on_loop() == [False] * 3 + [True] * 3 + [False] * 3 + [True] * 3


def test_requests_that_arrive_together_are_batched_in_the_thread() -> None:
    model = Model()

    async def main() -> None:
        b = AdaptiveBatcher(model, inline_max_ms=50)
        await one_by_one(b, 4)  # proven tiny
        xs = [rows(1, k) for k in range(10)]
        out = await asyncio.gather(*(b.submit(x) for x in xs))
        assert all(np.array_equal(o, x * 2) for o, x in zip(out, xs))
        await b.close()

    asyncio.run(main())
    # nothing else waiting is the rule: ten at once are one batch, in the thread
    assert model.calls[-1] == ("mlpack-batch", 10)


def test_a_request_larger_than_the_proven_ones_goes_to_the_thread() -> None:
    model = Model()

    async def main() -> None:
        b = AdaptiveBatcher(model, inline_max_ms=50)
        await one_by_one(b, 4, n=2)
        await one_by_one(b, 1, n=500)
        await one_by_one(b, 1, n=2)
        await b.close()

    asyncio.run(main())
    assert model.on_loop() == [False, False, False, True, False, True]


def test_inline_can_be_switched_off() -> None:
    model = Model()

    async def main() -> None:
        b = AdaptiveBatcher(model, inline_max_ms=0)
        await one_by_one(b, 6)
        await b.close()

    asyncio.run(main())
    assert not any(model.on_loop())


def test_an_inline_failure_is_that_requests_own_error() -> None:
    def fn(batch: np.ndarray) -> np.ndarray:
        if (batch < 0).any():
            raise ValueError("negative values")
        return batch * 2

    async def main() -> None:
        b = AdaptiveBatcher(fn, inline_max_ms=50, alone_error=lambda exc: RuntimeError(f"own: {exc}"))
        await one_by_one(b, 4)
        with pytest.raises(RuntimeError, match="own: negative values"):
            await b.submit(-rows(1))
        await one_by_one(b, 1)  # the loop and the batcher carry on
        await b.close()

    asyncio.run(main())


def test_the_batch_check_refuses_only_the_requests_with_bad_values() -> None:
    from mlpack.contract import InputContract
    from mlpack.exceptions import BadInput

    contract = InputContract(n_features=2)
    scans: list[int] = []

    def check(batch: np.ndarray) -> None:
        scans.append(len(batch))
        contract.check_values(batch)

    model = Model()

    async def main() -> list[object]:
        b = AdaptiveBatcher(model, check=check)
        gate = asyncio.Event()

        def hold(batch: np.ndarray) -> np.ndarray:  # the first call waits, so that the rest queue up
            while not gate.is_set():
                time.sleep(0.001)
            return model(batch)

        b.fn = hold
        first = asyncio.create_task(b.submit(rows(1)))
        await asyncio.sleep(0.05)
        xs = [rows(1, k) for k in range(6)]
        xs[2] = np.array([[np.nan, 1.0]])
        xs[4] = np.array([[1.0, np.inf]])
        tasks = [asyncio.create_task(b.submit(x)) for x in xs]
        await asyncio.sleep(0)
        gate.set()
        await first
        return await asyncio.gather(*tasks, return_exceptions=True)

    out = asyncio.run(main())
    assert isinstance(out[2], BadInput) and "NaN" in str(out[2]) and "row 0" in str(out[2])
    assert isinstance(out[4], BadInput) and "not finite" in str(out[4])
    for k in (0, 1, 3, 5):
        assert np.array_equal(out[k], rows(1, k) * 2)
    # one scan for the first call, one for the queued batch of six, one per request to find
    # the bad ones, one for the four good ones: the model saw only good rows
    assert scans == [1, 6, 1, 1, 1, 1, 1, 1, 4]
    assert model.calls[-1][1] == 4


def test_with_the_servers_word_a_request_alone_is_answered_without_a_hop() -> None:
    model = Model()
    others = {"under way": 0}

    async def main() -> None:
        b = AdaptiveBatcher(model, inline_max_ms=50, alone=lambda: others["under way"] == 0)
        await one_by_one(b, 3)  # the evidence, in the thread
        call = b.submit(rows(1))
        with pytest.raises(StopIteration) as done:  # answered before it ever suspends
            call.send(None)
        assert np.array_equal(done.value.value, rows(1) * 2)
        others["under way"] = 1  # another request is being handled: the model thread, even when idle
        await one_by_one(b, 2)
        await b.close()

    asyncio.run(main())
    assert model.on_loop() == [False] * 3 + [True] + [False] * 2


def test_an_answer_on_the_loop_does_not_ask_for_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """In Python 3.11 asyncio.get_running_loop() is a getpid() system call: the inline path skips it."""
    model = Model()
    asked: list[int] = []
    real = asyncio.get_running_loop

    def counting() -> asyncio.AbstractEventLoop:
        asked.append(1)
        return real()

    async def main() -> None:
        b = AdaptiveBatcher(model, inline_max_ms=50, alone=lambda: True)
        await one_by_one(b, 3)  # the evidence, in the thread: these need the loop
        monkeypatch.setattr(asyncio, "get_running_loop", counting)
        await one_by_one(b, 5)
        monkeypatch.setattr(asyncio, "get_running_loop", real)
        await b.close()

    asyncio.run(main())
    assert model.on_loop() == [False] * 3 + [True] * 5
    assert asked == []
