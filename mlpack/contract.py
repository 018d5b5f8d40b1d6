"""A model's input contract, recorded in ``model.yaml`` at save time (as MLflow records signatures).

```yaml
input_contract:
  n_features: 4            # int or null
  feature_names: [a, b]    # list[str] or null
  feature_types: null      # list[str] or null (xgboost's feature types: "float", "int", "q", "c"...)
  dtype: float64           # the numeric dtype the model computes in: float64 (sklearn), float32 (xgboost)
  allow_nan: false         # whether NaN (a missing value) is acceptable input
```

The runner checks every request against it before it joins a batch (``InputContract.check``):
a 2-D table (numpy array, list of rows, DataFrame, scipy sparse matrix) of at least one row,
``n_features`` columns (a DataFrame with string column names: exactly ``feature_names``, in
order), numbers only, finite (NaN only if ``allow_nan``), within float32's range when the model
computes in float32. Anything else (e.g. an ``xgboost.DMatrix``) is passed on unchecked.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .exceptions import BadInput, IntegrityError

__all__ = ["InputContract"]

DTYPES = ("float64", "float32")
# the smallest double that float32 rounds to infinity: anything below it is a finite float32
FLOAT32_INF = float(2**128 - 2**103)
# up to this many values, the float scan is a sum in Python (see _check_floats)
_FEW = 64
_KEYS = ("n_features", "feature_names", "feature_types", "dtype", "allow_nan")


def _bad(message: str) -> BadInput:
    return BadInput(message, status=422)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class InputContract:
    """What a model accepts; ``check(x)`` raises ``BadInput`` (422) naming what is wrong with ``x``."""

    n_features: int | None = None
    feature_names: tuple[str, ...] | None = None
    feature_types: tuple[str, ...] | None = None
    dtype: str = "float64"
    allow_nan: bool = False

    def __post_init__(self) -> None:
        n = self.n_features
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise ValueError(f"n_features must be a count or null, not {n!r}")
        for key in ("feature_names", "feature_types"):
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{key} must be a list of strings or null")
            object.__setattr__(self, key, tuple(value))
            if n is not None and len(value) != n:
                raise ValueError(f"{key} has {len(value)} entries for {n} features")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        # the largest magnitude the model computes with (precomputed: checked on every request)
        # the largest double that is still finite as float32 (or as float64)
        limit = math.nextafter(FLOAT32_INF, 0.0) if self.dtype == "float32" else sys.float_info.max
        object.__setattr__(self, "_limit", limit)
        if not isinstance(self.allow_nan, bool):
            raise ValueError(f"allow_nan must be true or false, not {self.allow_nan!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputContract:
        """From ``model.yaml``'s ``input_contract``; IntegrityError if it is malformed."""
        if not isinstance(data, Mapping):
            raise IntegrityError(f"model.yaml: input_contract must be a mapping, not {type(data).__name__}")
        unknown = set(data) - set(_KEYS)
        if unknown:
            raise IntegrityError(f"model.yaml: input_contract has unknown keys {sorted(unknown)}")
        try:
            return cls(**{k: data[k] for k in _KEYS if k in data})
        except (TypeError, ValueError) as exc:
            raise IntegrityError(f"model.yaml: invalid input_contract: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_features": self.n_features,
            "feature_names": list(self.feature_names) if self.feature_names is not None else None,
            "feature_types": list(self.feature_types) if self.feature_types is not None else None,
            "dtype": self.dtype,
            "allow_nan": self.allow_nan,
        }

    # ------------------------------------------------------------------ checking requests

    def check(self, x: Any, values: bool = True) -> None:
        """Raise BadInput (422) unless ``x`` is a table this model can take.

        ``values=False`` leaves out the scan of float values (NaN, infinities, the float32
        range) for ``check_values``, which a batcher runs once over a whole batch.
        """
        cls = type(x)
        if cls.__name__ == "ndarray" and cls.__module__ == "numpy":  # the usual request: no walk of the MRO
            shape, n = x.shape, self.n_features
            if len(shape) == 2 and shape[0] and (n is None or shape[1] == n) and x.dtype.kind == "f":
                if values:  # a table of floats of the right width: only the values are left to see
                    self._check_floats(x)
                return None
            return self._check_array(x, values)
        for cls in type(x).__mro__:
            module = cls.__module__
            if module.startswith("numpy"):
                return self._check_array(x, values)
            if module.startswith("pandas."):
                if hasattr(x, "columns"):
                    return self._check_frame(x, values)
                raise _bad(f"expected a table of rows, got a 1-D {type(x).__name__} of {len(x)} values")
            if module.startswith("scipy.sparse"):
                return self._check_sparse(x)
        if isinstance(x, (list, tuple)):
            import numpy as np

            try:
                arr = np.asarray(x)
            except ValueError:
                raise _bad("the rows of the input have different lengths") from None
            return self._check_array(arr)
        return None  # e.g. an xgboost.DMatrix: the model's own type, not ours to judge

    def check_values(self, x: Any) -> None:
        """The part of ``check`` that ``values=False`` left out, for an array or frame that passed it."""
        cls = type(x)
        if cls.__name__ == "ndarray" and cls.__module__ == "numpy":  # the usual batch
            if x.dtype.kind == "f" and x.ndim == 2:
                self._check_floats(x)
            return
        for cls in type(x).__mro__:
            module = cls.__module__
            if module.startswith("numpy"):
                if x.dtype.kind == "f" and x.ndim == 2:
                    self._check_floats(x)
                return
            if module.startswith("pandas."):
                if hasattr(x, "columns"):
                    floats = [j for j, dtype in enumerate(x.dtypes) if getattr(dtype, "kind", "O") == "f"]
                    if floats:
                        self._check_float_columns(x, floats)
                return

    def _check_shape(self, shape: tuple[int, ...], what: str) -> None:
        n = self.n_features
        if len(shape) != 2 or shape[0] == 0:
            if shape and shape[0] == 0:
                raise _bad("the input has no rows: send at least one row")
            rows = f"rows of {n} values" if n is not None else "rows of values"
            what = f"a {len(shape)}-D {what}" if what == "array" else f"a {what}"
            raise _bad(f"expected a 2-D table ({rows}), got {what} of shape {list(shape)}")
        if n is not None and shape[1] != n:
            raise _bad(f"expected {n} columns, got {shape[1]}")

    def _check_array(self, a: Any, values: bool = True) -> None:
        self._check_shape(a.shape, "array")
        kind = a.dtype.kind
        if kind == "f":
            if values:
                self._check_floats(a)
        elif kind == "O":
            self._check_objects(a)
        elif kind == "b":
            # true/false are not numbers to a client (the schema says number); numpy would
            # silently make them 0/1. DataFrames keep boolean columns: those are real features.
            where = self._where(0)
            raise _bad(f"{where} of row 0 is a boolean ({str(bool(a.flat[0])).lower()}), not a number")
        elif kind not in "iu":
            self._not_numbers(a)

    def _check_floats(self, a: Any, columns: Sequence[Any] | None = None) -> None:
        # The hot path says whether all is well in one pass, through which NaN and inf propagate:
        # for a few values (a request's row or two) a sum in Python, cheaper than a numpy call
        # (a finite sum means no NaN and no infinity; an overflowing one takes the exact path);
        # else one reduction.
        if a.size <= _FEW and self.dtype == "float64":
            if math.isfinite(sum(a.ravel().tolist())):
                return
        elif float(abs(a).max()) <= self._limit:
            return
        import numpy as np

        with np.errstate(invalid="ignore", over="ignore"):
            wrong = np.isinf(a)
            if self.dtype == "float32":
                wrong |= np.abs(a) >= FLOAT32_INF  # NaN compares False
            if not self.allow_nan:
                wrong |= np.isnan(a)
        found = np.argwhere(wrong)
        if len(found):
            i, j = (int(v) for v in found[0])
            self._refuse_value(i, columns[j] if columns is not None else j, a[i, j])

    def _refuse_value(self, row: int, column: Any, value: Any) -> None:
        import math

        where = self._where(column)
        value = float(value)
        if math.isnan(value):
            raise _bad(f"row {row} has a value that is not a number (NaN) in {where}; this model does not accept missing values")
        if math.isinf(value):
            raise _bad(f"row {row} has a value that is not finite ({value}) in {where}")
        raise _bad(
            f"row {row} has a value too large for float32 ({value:g}) in {where}; this model computes in float32 (at most 3.4e38)"
        )

    def _where(self, column: Any) -> str:
        """``column 'debt'`` for a named one, ``column 3 ('debt')`` when the model knows the name."""
        if isinstance(column, str):
            return f"column {column!r}"
        names = self.feature_names
        if names is not None and isinstance(column, int) and 0 <= column < len(names):
            return f"column {column} ({names[column]!r})"
        return f"column {column}"

    def _check_objects(self, a: Any, columns: Sequence[Any] | None = None) -> None:
        """The slow path: an object array (nulls, strings or nested lists among numbers)."""
        import math

        import numpy as np

        for i, row in enumerate(a):
            for j, v in enumerate(row):
                column = columns[j] if columns is not None else j
                if v is None:
                    if self.allow_nan:
                        continue
                    where = self._where(column)
                    raise _bad(f"{where} of row {i} is null; this model does not accept missing values")
                if isinstance(v, (bool, np.bool_)) and columns is None:
                    raise _bad(f"{self._where(column)} of row {i} is a boolean ({str(bool(v)).lower()}), not a number")
                if not isinstance(v, (int, float, np.integer, np.floating)):
                    where = self._where(column)
                    raise _bad(f"{where} of row {i} is not a number ({_show(v)})")
                f = float(v)
                if (math.isnan(f) and not self.allow_nan) or math.isinf(f) or (self.dtype == "float32" and abs(f) >= FLOAT32_INF):
                    self._refuse_value(i, column, f)

    def _not_numbers(self, a: Any, columns: Sequence[Any] | None = None) -> None:
        """Strings, dates, complex numbers...: name the first value that is not a number."""
        first = None
        for i, row in enumerate(a):
            for j, v in enumerate(row):
                if first is None:
                    first = (i, j, v)
                if isinstance(v, complex) or getattr(v, "dtype", None) is not None and v.dtype.kind == "c":
                    first = (i, j, v)
                    break
                try:
                    float(v)
                except (TypeError, ValueError):
                    first = (i, j, v)
                    break
            else:
                continue
            break
        i, j, v = first if first is not None else (0, 0, None)
        where = self._where(columns[j] if columns is not None else j)
        raise _bad(f"{where} of row {i} is not a number ({_show(v.item() if hasattr(v, 'item') else v)})")

    def _check_frame(self, df: Any, values: bool = True) -> None:
        names, cols = self.feature_names, list(df.columns)
        if names is not None and cols and all(isinstance(c, str) for c in cols):
            if tuple(cols) != names:
                missing = [n for n in names if n not in set(cols)]
                extra = [c for c in cols if c not in set(names)]
                if missing:
                    raise _bad(f"missing column(s): {', '.join(missing)}")
                if extra:
                    raise _bad(f"unexpected column(s): {', '.join(extra)}; the model takes {', '.join(names)}")
                raise _bad(f"columns must come in the order the model was trained with: {', '.join(names)}")
        self._check_shape(df.shape, "DataFrame")
        categorical = {j for j, t in enumerate(self.feature_types or ()) if t == "c"}
        floats = []
        for j, dtype in enumerate(df.dtypes):
            kind = getattr(dtype, "kind", "O")
            if kind == "f":
                floats.append(j)
            elif kind in "biu" or (j in categorical and str(dtype) == "category"):
                continue
            elif kind == "O":
                self._check_objects(df.iloc[:, [j]].to_numpy(), [cols[j]])
            else:
                self._not_numbers(df.iloc[:, [j]].to_numpy(), [cols[j]])
        if floats and values:
            self._check_float_columns(df, floats)

    def _check_float_columns(self, df: Any, floats: list[int]) -> None:
        cols = list(df.columns)
        block = df.iloc[:, floats].to_numpy() if len(floats) < len(cols) else df.to_numpy()
        self._check_floats(block, [cols[j] for j in floats])

    def _check_sparse(self, m: Any) -> None:
        self._check_shape(m.shape, "sparse matrix")
        kind = m.dtype.kind
        if kind in "biu":
            return
        if kind != "f":
            raise _bad(f"the sparse matrix holds {m.dtype} values, not numbers")
        coo = m if m.format == "coo" else None
        data = m.data if m.format in ("csr", "csc", "coo", "bsr") else (coo := m.tocoo()).data
        import numpy as np

        with np.errstate(invalid="ignore", over="ignore"):
            top = float(np.abs(data).max()) if data.size else 0.0
        if top <= self._limit:
            return
        coo = coo if coo is not None else m.tocoo()
        for i, j, v in zip(coo.row, coo.col, coo.data):
            f = float(v)
            if (f != f and not self.allow_nan) or abs(f) == np.inf or (self.dtype == "float32" and abs(f) >= FLOAT32_INF):
                self._refuse_value(int(i), int(j), f)
