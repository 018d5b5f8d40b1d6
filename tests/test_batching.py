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


def test_exception_fails_only_the_request_that_fails_alone():
    gate = Gate()
    calls = []

    def fn(batch):
        calls.append(list(batch))
        if batch[0] == "block":
            gate.hold()
        if "bad" in batch:
            raise ValueError("boom")
        return [s.upper() for s in batch]

    async def main():
        b = AdaptiveBatcher(fn, alone_error=lambda exc: BadInput(f"alone: {exc}", status=422))
        first, outs = await queue_behind_blocker(b, gate, ["block"], [["a"], ["bad"], ["c"]])
        after = await b.submit(["d"])
        await b.close()
        return first, outs, after

    first, outs, after = asyncio.run(main())
    assert first == ["BLOCK"]
    assert outs[0] == ["A"] and outs[2] == ["C"]
    assert isinstance(outs[1], BadInput) and outs[1].http_status == 422 and str(outs[1]) == "alone: boom"
    assert after == ["D"]
    # the batch, then its halves [a] and [bad, c], then [bad] and [c]
    assert calls[1:] == [["a", "bad", "c"], ["a"], ["bad", "c"], ["bad"], ["c"], ["d"]]


def test_wrong_output_length_never_misassigns_rows():
    gate = Gate()

    def fn(batch):
        if batch[0] == "block":
            gate.hold()
        return batch[:-1] if len(batch) > 1 else [s.upper() for s in batch]  # wrong for batches only

    async def main():
        b = AdaptiveBatcher(fn)
        _, outs = await queue_behind_blocker(b, gate, ["block"], [["a"], ["c"]])
        await b.close()
        return outs

    # The batch's output cannot be split (1 row for 2): each request is answered by a call of its own.
    assert asyncio.run(main()) == [["A"], ["C"]]
    with pytest.raises(MlpackError, match="2 rows .* 3 input rows"):
        split(["a", "b"], [2, 1])


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


# ---------------------------------------------------------------- isolation strategy


def isolate_with(n, bad, *, everyone=False):
    """Run ``isolate`` over ``n`` requests where ``bad`` fail (or all, with ``everyone``)."""
    from mlpack.isolation import isolate

    calls = []

    async def run(group):
        calls.append(list(group))
        if everyone or any(i in bad for i in group):
            raise ValueError(f"bad in {group[:3]}")
        return [i * 10 for i in group]

    iso = asyncio.run(isolate(n, run))
    assert iso.calls == len(calls)
    return iso, calls


def bound(n, k):
    """The documented bound on extra calls (mlpack.isolation)."""
    levels = math.ceil(math.log2(n))
    return 2 + levels + 2 + 2 * k * levels


@pytest.mark.parametrize("n,bad", [(2, {1}), (3, {0}), (4, {1, 3}), (7, {0, 1, 2, 3, 4, 5}), (64, {17}), (63, {0, 62}),
                                   (1000, {5, 500, 501, 999}), (64, set(range(0, 64, 2))),
                                   (100, set(range(100)) - {50})])  # fmt: skip
def test_isolation_answers_all_but_the_failing_requests(n, bad):
    from mlpack.isolation import Failed

    iso, calls = isolate_with(n, bad)
    for i, outcome in enumerate(iso.outcomes):
        if i in bad:
            assert isinstance(outcome, Failed) and outcome.alone, i
            assert str(outcome.error) == f"bad in {[i]}"
        else:
            assert outcome == i * 10, i
    assert sorted(iso.failed_alone) == sorted(bad)
    assert not iso.everyone_fails
    assert len(calls) <= bound(n, len(bad))
    assert all(calls), "never an empty call"


def test_isolation_of_one_failing_request_costs_two_calls_per_level():
    iso, calls = isolate_with(1024, {300})
    assert len(calls) == 2 * 10  # two halves at each of the 10 levels
    assert max(len(c) for c in calls) == 512


def test_isolation_when_the_model_fails_for_everyone_is_cheap():
    from mlpack.isolation import Failed, probe_positions

    iso, calls = isolate_with(15, set(), everyone=True)  # small: bisected in full, no guessing
    assert len(calls) == 2 * 15 - 2 and iso.failed_alone == list(range(15)) and not iso.everyone_fails
    for n in (16, 64, 1000):
        iso, calls = isolate_with(n, set(), everyone=True)
        probes = probe_positions(n)
        assert len(probes) == math.ceil(math.log2(n))
        assert len(calls) == 2 + len(probes)  # halves, then the probes, then nothing
        assert sum(len(c) for c in calls) == n + len(probes)
        assert iso.everyone_fails and iso.failed_alone == []
        assert all(isinstance(o, Failed) and not o.alone for o in iso.outcomes)


def test_isolation_gives_up_when_every_probe_fails():
    # The documented limit: when all probes fail alone, the batch is taken to fail as a whole.
    from mlpack.isolation import probe_positions

    bad = set(range(95))
    assert max(probe_positions(100)) < 95
    iso, calls = isolate_with(100, bad)
    assert iso.everyone_fails and len(calls) == 2 + len(probe_positions(100))
    assert all(not o.alone for o in iso.outcomes)


def test_isolation_keeps_going_when_a_probe_succeeds():
    # both halves fail, the first probe (index 8 of 64: not bad) succeeds: bisect the rest
    bad = {1, 40}
    iso, calls = isolate_with(64, bad)
    assert calls[:3] == [list(range(32)), list(range(32, 64)), [5]]
    assert sorted(iso.failed_alone) == [1, 40]
    assert [o for i, o in enumerate(iso.outcomes) if i not in bad] == [i * 10 for i in range(64) if i not in bad]


def test_batcher_isolates_within_a_large_batch_and_counts_calls():
    gate, calls, isolations = Gate(), [], []

    def fn(batch):
        calls.append(batch.shape[0])
        if batch[0, 0] == -1:
            gate.hold()
        if np.isnan(batch).any():
            raise ValueError("Input X contains NaN.")
        return batch[:, 0] * 2

    async def main():
        b = AdaptiveBatcher(fn, max_batch_size=1000, alone_error=lambda e: BadInput(str(e), status=422),
                            on_isolate=lambda extra, alone: isolations.append((extra, alone)))  # fmt: skip
        inputs = [np.array([[float(i), 1.0]]) for i in range(200)]
        for i in (3, 150):
            inputs[i] = np.array([[np.nan, 1.0]])
        return await queue_behind_blocker(b, gate, np.array([[-1.0, 0.0]]), inputs)

    first, outs = asyncio.run(main())
    assert first.tolist() == [-2.0]
    for i, out in enumerate(outs):
        if i in (3, 150):
            assert isinstance(out, BadInput) and out.http_status == 422 and "NaN" in str(out)
        else:
            assert out.tolist() == [2.0 * i]
    assert calls[1] == 200  # one batch of all queued requests
    assert len(isolations) == 1
    extra, alone = isolations[0]
    assert alone == 2 and extra == len(calls) - 2 and extra <= bound(200, 2)


def test_lone_failures_are_the_requests_fault_only_for_value_and_type_errors():
    from mlpack.runner import own_fault

    gate = Gate()

    def fn(batch):
        if batch[0] == "block":
            gate.hold()
        for kind, exc in (("value", ValueError("Input X contains NaN.\nmore")), ("type", TypeError("not a dict")),
                          ("bug", RuntimeError("model bug")), ("ours", MlpackError("split"))):  # fmt: skip
            if kind in batch:
                raise exc
        return list(batch)

    async def main():
        b = AdaptiveBatcher(fn, alone_error=own_fault)
        _, outs = await queue_behind_blocker(b, gate, ["block"], [["ok"], ["value"], ["type"], ["bug"], ["ours"], ["ok2"]])
        await b.close()
        return outs

    ok, value, type_, bug, ours, ok2 = asyncio.run(main())
    assert ok == ["ok"] and ok2 == ["ok2"]
    assert isinstance(value, BadInput) and value.http_status == 422
    assert str(value) == "the model cannot take this input: Input X contains NaN."  # first line only
    assert isinstance(value.__cause__, ValueError)
    assert isinstance(type_, BadInput) and "not a dict" in str(type_)
    assert type(bug) is RuntimeError and type(ours) is MlpackError  # the service's fault: 500s
