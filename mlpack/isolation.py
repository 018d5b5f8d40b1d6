"""Find the requests of a failed micro-batch that fail on their own, so that the others get answers.

When a batch of ``n`` requests fails, ``isolate`` re-runs parts of it:

1. Split the batch in two halves (by request) and run each.
2. If only one half fails, bisect it: split it in two, run both, recurse into what fails, down to
   single requests. A request that fails when run alone has failed *on its own*.
3. If both halves fail and the batch has ``PROBE_FROM`` (16) or more requests, the model may fail
   for everyone. Probe ``P = ceil(log2 n)`` single requests spread over the batch, stopping at the
   first that succeeds. If every probe fails, the model is taken to fail for everyone: no more
   calls, and every request gets the error of its half (a batch-wide error, not one caused by its
   own data). If one succeeds, bisect both halves (requests already probed are answered and left
   out). Smaller batches are bisected in full, which costs at most ``2n - 2 < 30`` calls.

Bound, for ``k`` requests that fail alone among ``n >= 2`` (``L = ceil(log2 n)``), in calls beyond
the failed batch: at most ``2`` (halves) ``+ L`` (probes) ``+ 2`` (re-running the halves less
their probes) ``+ 2 k L`` (bisection: two calls per level on each failing request's path). When the
model fails for everyone it is exactly ``2 + L`` extra calls and ``n + L`` extra rows for
``n >= 16`` (``2n - 2`` calls below): the batch costs about twice its rows once, however large.
An attacker whose requests fail alone pays O(log n) calls per request. Declaring "fails for
everyone" wrongly takes all ``L >= 4`` probes to hit requests that fail alone: about ``q ** L``
for a share ``q`` of such requests (3e-6 at 4%), or an attacker who fills most of a batch with
input the input contract did not already refuse.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PROBE_FROM", "Failed", "Isolation", "isolate", "probe_positions"]

PROBE_FROM = 16  # smaller batches are bisected in full: cheap, and probes there would guess too often


@dataclass(frozen=True)
class Failed:
    """A request's error; ``alone`` when it failed in a call of its own (its own data is to blame)."""

    error: Exception
    alone: bool


@dataclass
class Isolation:
    """Per request, a result or a ``Failed``; ``calls``: model calls made to find out."""

    outcomes: list[Any]
    calls: int = 0
    everyone_fails: bool = False
    failed_alone: list[int] = field(default_factory=list)


def probe_positions(n: int) -> list[int]:
    """``ceil(log2 n)`` distinct request indices spread evenly over a batch of ``n``."""
    count = max(1, math.ceil(math.log2(n)))
    return sorted({int((j + 0.5) * n / count) for j in range(count)})


_PENDING = object()


async def isolate(n: int, run: Callable[[list[int]], Awaitable[Sequence[Any]]]) -> Isolation:
    """Answer what can be answered of a failed batch of ``n`` requests.

    ``run(indices)`` runs the model on those requests (in order) and returns one result per
    request, or raises. Never raises itself. ``n`` must be at least 2.
    """
    if n < 2:
        raise ValueError("isolate needs a batch of two or more requests")
    iso = Isolation([_PENDING] * n)

    async def attempt(group: list[int]) -> Exception | None:
        iso.calls += 1
        try:
            results = await run(group)
        except Exception as exc:  # noqa: BLE001 - any model error is an outcome here
            if len(group) == 1:
                iso.outcomes[group[0]] = Failed(exc, alone=True)
                iso.failed_alone.append(group[0])
            return exc
        for i, res in zip(group, results):
            iso.outcomes[i] = res
        return None

    async def bisect(group: list[int]) -> None:
        """``group`` (two or more requests) is known to fail: find who fails alone."""
        mid = len(group) // 2
        for half in (group[:mid], group[mid:]):
            if await attempt(half) is not None and len(half) > 1:
                await bisect(half)

    everyone = list(range(n))
    mid = n // 2
    halves = [everyone[:mid], everyone[mid:]]
    errors = [await attempt(half) for half in halves]
    if n >= PROBE_FROM and all(e is not None for e in errors):
        probed: set[int] = set()
        mixed = False
        for i in probe_positions(n):
            probed.add(i)
            if await attempt([i]) is None:
                mixed = True
                break
        if not mixed:
            iso.everyone_fails = True
            iso.failed_alone.clear()
            for half, error in zip(halves, errors):
                for i in half:
                    outcome = iso.outcomes[i]
                    iso.outcomes[i] = Failed(outcome.error if isinstance(outcome, Failed) else error, alone=False)  # type: ignore[arg-type]
            return iso
        for half in halves:
            rest = [i for i in half if i not in probed]
            if not rest:
                continue
            if len(rest) < len(half):  # a probe was taken out: the rest may well succeed now
                if await attempt(rest) is None or len(rest) == 1:
                    continue
            await bisect(rest)
        return iso
    for half, error in zip(halves, errors):
        if error is not None and len(half) > 1:
            await bisect(half)
    return iso
