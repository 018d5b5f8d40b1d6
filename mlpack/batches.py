"""Joining request inputs into one batch along the batch dimension, and cutting its result back.

Arrays, lists, pandas frames and series, and scipy sparse matrices; kinds are told apart by
module name, so that batching numpy or lists never imports pandas or scipy.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from typing import Any

from mlpack.exceptions import MlpackError

__all__ = ["concat", "count_rows", "kind_of", "split"]


def kind_of(x: Any) -> str:
    """"pandas", "sparse", "list" or "array": by module name (no pandas or scipy import)."""
    for cls in type(x).__mro__:
        if cls.__module__.startswith("pandas."):
            return "pandas"
        if cls.__module__.startswith("scipy.sparse"):
            return "sparse"
    return "list" if isinstance(x, (list, tuple)) else "array"


def count_rows(x: Any, dim: int = 0) -> int:
    """Size of ``x`` along ``dim``: ``shape[dim]`` for arrays, frames and sparse matrices, ``len`` for lists."""
    if x is None or isinstance(x, (str, bytes, dict)):
        raise TypeError(f"cannot count rows of {type(x).__name__}")
    shape = getattr(x, "shape", None)
    if shape is None:
        if dim == 0 and hasattr(x, "__len__"):
            return len(x)
        import numpy as np

        shape = np.asarray(x).shape
    if dim >= len(shape):
        raise ValueError(f"{type(x).__name__} with {len(shape)} dimension(s) has no batch dimension {dim}")
    return int(shape[dim])


def concat(items: Sequence[Any], dim: int = 0) -> tuple[Any, list[int]]:
    """Join ``items`` along ``dim``; return the batch and each item's row count.

    Lists join as a list along dim 0 (as numpy along other dims), DataFrames or Series
    with ``pd.concat`` (dim 0 only, fresh RangeIndex), sparse matrices with
    vstack/hstack, anything else with ``np.concatenate``. Raises TypeError or
    ValueError when the items cannot form one batch (mixed kinds, other columns...).
    """
    if not items:
        raise ValueError("nothing to concatenate")
    first = items[0]
    cls = type(first)
    if cls.__name__ == "ndarray" and cls.__module__ == "numpy" and all(type(x) is cls for x in items):
        # the usual batch (plain arrays from JSON bodies): no per-item kind or row checks
        np = sys.modules["numpy"]
        try:
            return np.concatenate(items, axis=dim), [x.shape[dim] for x in items]
        except IndexError:  # an item without that dimension: the general path says so
            pass
    sizes = [count_rows(x, dim) for x in items]
    kinds = {kind_of(x) for x in items}
    if kinds == {"list"} and dim == 0:
        return [row for x in items for row in x], sizes
    if kinds == {"pandas"}:
        if dim != 0:
            raise TypeError("pandas inputs can only be batched along dim 0")
        if any(type(x) is not type(first) for x in items):
            raise TypeError("cannot batch DataFrames together with Series")
        # pd.concat would silently fill columns missing from some frames with NaN.
        if hasattr(first, "columns") and not all(x.columns.equals(first.columns) for x in items):
            raise ValueError("DataFrames have different columns")
        import pandas as pd

        # A fresh index: callers' indexes may overlap, which breaks index-aligned models.
        return pd.concat(list(items), ignore_index=True), sizes
    if kinds == {"sparse"}:
        import scipy.sparse as sp

        join = sp.vstack if dim == 0 else sp.hstack
        return join(list(items), format=first.format), sizes
    if kinds <= {"list", "array"}:
        import numpy as np

        return np.concatenate([np.asarray(x) for x in items], axis=dim), sizes
    raise TypeError(f"cannot batch {' and '.join(sorted(kinds))} inputs together")


def split(result: Any, sizes: Sequence[int], dim: int = 0, *, like: Sequence[Any] | None = None) -> list[Any]:
    """Cut ``result`` along ``dim`` into consecutive parts of ``sizes`` rows.

    Raises MlpackError unless ``result`` has ``sum(sizes)`` rows. With ``like`` (the
    inputs, in order), a pandas part gets back the index of its pandas input.
    """
    offsets = list(itertools.accumulate(sizes, initial=0))
    try:
        n = count_rows(result, dim)
    except (TypeError, ValueError) as exc:
        raise MlpackError(f"cannot split the model output between requests: {exc}") from exc
    if n != offsets[-1]:
        raise MlpackError(
            f"model returned {n} rows along batch dimension {dim} for a batch of {offsets[-1]} input rows"
        )
    bounds = list(itertools.pairwise(offsets))
    kind = kind_of(result)
    if kind == "list" and dim == 0:
        return [result[a:b] for a, b in bounds]
    if kind == "pandas":
        if dim != 0:
            return [result.iloc[:, a:b] for a, b in bounds]
        parts = [result.iloc[a:b] for a, b in bounds]
        originals = like if like is not None else [None] * len(parts)
        return [p.set_axis(x.index, axis=0) if kind_of(x) == "pandas" else p for p, x in zip(parts, originals)]
    if kind == "sparse":
        result = result.tocsr() if dim == 0 else result.tocsc()  # coo cannot be sliced
    elif kind == "list" or not hasattr(result, "shape"):
        import numpy as np

        result = np.asarray(result)
    lead = (slice(None),) * dim
    return [result[(*lead, slice(a, b))] if dim else result[a:b] for a, b in bounds]
