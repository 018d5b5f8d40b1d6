from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mlpack.batching import AdaptiveBatcher, concat, count_rows, split
from mlpack.exceptions import BadInput, MlpackError, ServiceUnavailable


class Gate:
    """Holds the first model call until released, so that later requests queue up."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()

    def hold(self) -> None:
        self.started.set()
        self.release.wait(2)
        self.finished.set()

    async def wait_started(self) -> None:
        assert await asyncio.to_thread(self.started.wait, 2)


async def queue_behind_blocker(batcher: AdaptiveBatcher, gate: Gate, blocker, inputs):
    """Start ``blocker`` (whose call holds ``gate``), queue ``inputs``, release; return results."""
    first = asyncio.create_task(batcher.submit(blocker))
    await gate.wait_started()
    tasks = [asyncio.create_task(batcher.submit(x)) for x in inputs]
    await asyncio.sleep(0)
    assert batcher.queue_depth == len(inputs)
    gate.release.set()
    return await first, await asyncio.gather(*tasks, return_exceptions=True)


def test_idle_request_runs_at_once_with_exact_input():
    calls = []
    x = np.arange(6).reshape(2, 3)

    def fn(batch):
        calls.append(batch)
        return batch * 2

    async def main():
        b = AdaptiveBatcher(fn, max_latency_ms=60_000)
        # With a 60 s latency budget, a batcher that waited for a window would time out here.
        out = await asyncio.wait_for(b.submit(x), 1.0)
        await b.close()
        return out

    out = asyncio.run(main())
    assert len(calls) == 1 and calls[0] is x
    np.testing.assert_array_equal(out, x * 2)


def test_concurrent_requests_are_batched_and_split_back():
    sizes, notified = [], []

    def fn(batch):
        sizes.append(len(batch))
        time.sleep(0.02)
        return batch * 2

    async def main():
        b = AdaptiveBatcher(fn, max_batch_size=16, on_batch=notified.append)
        inputs = [np.array([[i, -i]]) for i in range(64)]
        outs = await asyncio.gather(*(b.submit(x) for x in inputs))
        await b.close()
        return inputs, outs

    inputs, outs = asyncio.run(main())
    for x, out in zip(inputs, outs):
        np.testing.assert_array_equal(out, x * 2)
    assert len(sizes) <= math.ceil(64 / 16) + 2
    assert max(sizes) <= 16 and sum(sizes) == 64
    assert max(sizes) > 1  # batching happened
    assert notified == sizes


def test_max_batch_size_one():
    sizes = []

    def fn(batch):
        sizes.append(len(batch))
        return [v + 1 for v in batch]

    async def main():
        b = AdaptiveBatcher(fn, max_batch_size=1)
        outs = await asyncio.gather(*(b.submit([i]) for i in range(64)))
        await b.close()
        return outs

    assert asyncio.run(main()) == [[i + 1] for i in range(64)]
    assert sizes == [1] * 64


def test_queued_request_expires_while_batch_runs():
    gate, calls = Gate(), []

    def fn(batch):
        calls.append(list(batch))
        if batch[0] == "block":
            gate.hold()
        return batch

    async def main():
        b = AdaptiveBatcher(fn, max_latency_ms=50)
        first = asyncio.create_task(b.submit(["block"]))
        await gate.wait_started()
        with pytest.raises(ServiceUnavailable) as info:
            await b.submit(["queued"])
        # Answered at its deadline, while the running batch was still held.
        assert not gate.finished.is_set()
        assert b.queue_depth == 0
        gate.release.set()
        assert await first == ["block"]  # a dispatched request is not cancelled
        await b.close()
        return info.value

    err = asyncio.run(main())
    assert err.retry_after > 0 and err.http_status == 503
    assert calls == [["block"]]


def test_exception_fails_only_its_batch():
    gate = Gate()

    def fn(batch):
        if batch[0] == "block":
            gate.hold()
        if "bad" in batch:
            raise ValueError("boom")
        return [s.upper() for s in batch]

    async def main():
        b = AdaptiveBatcher(fn)
        first, outs = await queue_behind_blocker(b, gate, ["block"], [["a"], ["bad"], ["c"]])
        after = await b.submit(["d"])
        await b.close()
        return first, outs, after

    first, outs, after = asyncio.run(main())
    assert first == ["BLOCK"]
    assert all(isinstance(e, ValueError) for e in outs)
    assert outs[0] is outs[1] is outs[2]  # the same exception object
    assert after == ["D"]


def test_wrong_output_length_is_a_clear_error():
    gate = Gate()

    def fn(batch):
        if batch[0] == "block":
            gate.hold()
        return batch[:-1]

    async def main():
        b = AdaptiveBatcher(fn)
        _, outs = await queue_behind_blocker(b, gate, ["block"], [["a", "b"], ["c"]])
        await b.close()
        return outs

    outs = asyncio.run(main())
    assert all(type(e) is MlpackError for e in outs)
    assert "2 rows" in str(outs[0]) and "3 input rows" in str(outs[0])


def test_cancelled_queued_request_is_dropped():
    gate, calls = Gate(), []

    def fn(batch):
        calls.append(list(batch))
        if batch[0] == "block":
            gate.hold()
        return batch

    async def main():
        b = AdaptiveBatcher(fn)
        first = asyncio.create_task(b.submit(["block"]))
        await gate.wait_started()
        tasks = [asyncio.create_task(b.submit([s])) for s in "abc"]
        await asyncio.sleep(0)
        assert b.queue_depth == 3
        tasks[1].cancel()
        with pytest.raises(asyncio.CancelledError):
            await tasks[1]
        assert b.queue_depth == 2
        gate.release.set()
        await first
        outs = [await tasks[0], await tasks[2]]
        await b.close()
        return outs

    assert asyncio.run(main()) == [["a"], ["c"]]
    assert calls == [["block"], ["a", "c"]]


def run_batch(fn, inputs, **kwargs):
    """Submit all inputs at once (they form one batch behind the first); return outputs and calls."""
    calls = []

    def recording(batch):
        calls.append(batch)
        return fn(batch)

    async def main():
        b = AdaptiveBatcher(recording, **kwargs)
        outs = await asyncio.gather(*(b.submit(x) for x in inputs))
        await b.close()
        return outs

    outs = asyncio.run(main())
    assert len(calls) < len(inputs)  # something was actually merged
    return outs, calls


def test_numpy_2d_rows():
    inputs = [np.arange(3 * k, dtype=float).reshape(k, 3) + k for k in (1, 2, 3)]
    outs, _ = run_batch(lambda x: x.sum(axis=1), inputs)
    for x, out in zip(inputs, outs):
        np.testing.assert_array_equal(out, x.sum(axis=1))


def test_numpy_batch_dim_1_and_pair():
    inputs = [np.arange(3 * k).reshape(3, k) for k in (1, 2, 4)]
    outs, _ = run_batch(lambda x: x * 2, inputs, batch_dim=1)
    for x, out in zip(inputs, outs):
        np.testing.assert_array_equal(out, x * 2)
    # Samples as columns in, as rows out.
    outs, _ = run_batch(lambda x: x.T.sum(axis=1), inputs, batch_dim=(1, 0))
    for x, out in zip(inputs, outs):
        np.testing.assert_array_equal(out, x.T.sum(axis=1))


def test_dataframe_in_numpy_out_and_frame_index_kept():
    inputs = [pd.DataFrame({"a": [1, 2], "b": [3, 4]}, index=[7, 8]), pd.DataFrame({"a": [5], "b": [6]}, index=[7])]
    outs, calls = run_batch(lambda df: (df["a"] + df["b"]).to_numpy(), inputs)
    assert any(len(c) == 3 for c in calls)
    np.testing.assert_array_equal(outs[0], [4, 6])
    np.testing.assert_array_equal(outs[1], [11])
    outs, _ = run_batch(lambda df: df * 10, inputs)
    for x, out in zip(inputs, outs):
        pd.testing.assert_frame_equal(out, x * 10)


def test_series_and_lists():
    inputs = [pd.Series([1.0, 2.0], index=["x", "y"]), pd.Series([3.0])]
    outs, _ = run_batch(lambda s: s + 1, inputs)
    for x, out in zip(inputs, outs):
        pd.testing.assert_series_equal(out, x + 1)
    outs, _ = run_batch(lambda xs: [v * 3 for v in xs], [[1, 2], [3], [4, 5, 6]])
    assert outs == [[3, 6], [9], [12, 15, 18]]


def test_sparse_rows():
    inputs = [sp.csr_matrix(np.eye(3)[:k] * (k + 1)) for k in (1, 2, 3)]
    outs, calls = run_batch(lambda m: np.asarray(m.sum(axis=1)).ravel(), inputs)
    assert any(sp.issparse(c) and c.shape[0] == 6 for c in calls)
    for x, out in zip(inputs, outs):
        np.testing.assert_array_equal(out, np.asarray(x.sum(axis=1)).ravel())
    outs, _ = run_batch(lambda m: m * 2, inputs)  # sparse out
    for x, out in zip(inputs, outs):
        assert (out != x * 2).nnz == 0


def test_oversized_request_runs_alone():
    sizes = []

    def fn(batch):
        sizes.append(len(batch))
        return batch + 1

    async def main():
        b = AdaptiveBatcher(fn, max_batch_size=4)
        inputs = [np.zeros((n, 2)) + i for i, n in enumerate([1, 2, 10, 1, 3])]
        outs = await asyncio.gather(*(b.submit(x) for x in inputs))
        await b.close()
        return inputs, outs

    inputs, outs = asyncio.run(main())
    for x, out in zip(inputs, outs):
        np.testing.assert_array_equal(out, x + 1)
    assert 10 in sizes and all(s <= 4 for s in sizes if s != 10)
    assert sum(sizes) == 17


def test_incompatible_inputs_run_one_by_one():
    calls = []

    def fn(x):
        calls.append(x.shape)
        return x.sum(axis=1)

    async def main():
        b = AdaptiveBatcher(fn)
        inputs = [np.ones((1, 3)), np.ones((2, 4)), np.ones((1, 3))]
        outs = await asyncio.gather(*(b.submit(x) for x in inputs))
        await b.close()
        return outs

    outs = asyncio.run(main())
    assert [o.tolist() for o in outs] == [[3.0], [4.0, 4.0], [3.0]]
    # One batch that could not be concatenated, so each request ran on its own.
    assert calls == [(1, 3), (2, 4), (1, 3)]


def test_input_without_batch_dim_is_bad_input():
    async def main():
        b = AdaptiveBatcher(lambda x: x, batch_dim=1)
        with pytest.raises(BadInput):
            await b.submit(np.arange(3))
        await b.close()

    asyncio.run(main())


def test_close_refuses_new_requests_and_batcher_survives_loops():
    b = AdaptiveBatcher(lambda x: x)
    assert asyncio.run(b.submit([1])) == [1]
    assert asyncio.run(b.submit([2])) == [2]  # a second event loop
    asyncio.run(b.close())
    with pytest.raises(ServiceUnavailable):
        asyncio.run(b.submit([3]))


def test_helpers():
    batch, sizes = concat([[1], [2, 3]], 0)
    assert batch == [1, 2, 3] and sizes == [1, 2]
    batch, sizes = concat([[[1], [2]], [[3, 4], [5, 6]]], 1)
    np.testing.assert_array_equal(batch, [[1, 3, 4], [2, 5, 6]])
    assert sizes == [1, 2]
    assert [p.tolist() for p in split(batch, sizes, 1)] == [[[1], [2]], [[3, 4], [5, 6]]]
    with pytest.raises(ValueError):
        concat([pd.DataFrame({"a": [1]}), pd.DataFrame({"b": [1]})], 0)
    with pytest.raises(MlpackError, match="4 rows"):
        split(np.zeros(4), [2, 3], 0)
    assert count_rows(sp.csr_matrix((5, 2)), 1) == 2
    with pytest.raises(TypeError):
        count_rows("abc")


def test_import_is_light():
    code = (
        "import sys, mlpack.batching\n"
        "heavy = [m for m in ('numpy', 'pandas', 'scipy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
