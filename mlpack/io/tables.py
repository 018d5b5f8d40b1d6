"""Table conversions: numeric arrays and DataFrames cast to a dtype, naming the bad cell.

A value that does not fit is reported the way a user finds it in the file, through a
``where`` function from row index to place ("row 17 (line 18 of iris.csv)"), followed by
the column: "row 17 (line 18 of iris.csv), column 'petal_width': 'abc' is not a number".

numpy and pandas are imported inside functions: ``mlpack.io`` must stay cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..exceptions import BadInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Where = Callable[[int], str]


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error message stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]} ({len(text):,} characters)"


def column_label(col: Any) -> str:
    # headerless files get integer labels; users count columns from 1
    return f"column {col + 1}" if isinstance(col, int) else f"column {col!r}"


def cast_array(arr: np.ndarray, dtype: Any, enforce: bool, where: Where, columns: list[Any] | None) -> np.ndarray:
    """Cast a numeric 2-D (or 1-D) array to ``dtype``; missing or lossy values name their cell."""
    import numpy as np

    if dtype is None or arr.dtype == dtype:
        return arr
    target = np.dtype(dtype)
    if target.kind in "iu" and arr.dtype.kind == "f":
        bad = np.isnan(arr)
        if bad.any():
            raise BadInput(_cell(arr, bad, where, columns, "is missing"), status=422)
        out = arr.astype(target)
        if enforce and (lossy := out != arr).any():
            raise BadInput(_cell(arr, lossy, where, columns, f"is not a valid {target}"), status=422)
        return out
    return arr.astype(target)


def _cell(arr: np.ndarray, mask: np.ndarray, where: Where, columns: list[Any] | None, what: str) -> str:
    import numpy as np

    pos = np.argwhere(mask)[0]
    value = arr[tuple(pos)]
    text = "a value" if what == "is missing" else repr(value.item() if hasattr(value, "item") else value)
    if arr.ndim < 2:
        return f"{where(int(pos[0]))}: {text} {what}"
    col = columns[pos[1]] if columns is not None else int(pos[1])
    return f"{where(int(pos[0]))}, {column_label(col)}: {text} {what}"


def frame_to_array(df: pd.DataFrame, dtype: Any, enforce: bool, where: Where) -> np.ndarray:
    """A DataFrame of numbers as an ndarray; the first non-numeric cell names its row and column."""
    import numpy as np
    import pandas as pd
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if dtype is not None and np.dtype(dtype).kind not in "iufcb":
        return df.to_numpy(dtype=dtype)
    first: tuple[int, Any, Any] | None = None
    converted = {}
    for col in df.columns:
        series = df[col]
        if is_numeric_dtype(series) or is_bool_dtype(series):
            continue
        numbers = pd.to_numeric(series, errors="coerce")
        bad = (numbers.isna() & series.notna()).to_numpy()
        if bad.any():
            i = int(bad.argmax())
            if first is None or i < first[0]:
                first = (i, col, series.iloc[i])
        converted[col] = numbers
    if first is not None:
        i, col, value = first
        raise BadInput(f"{where(i)}, {column_label(col)}: {shown(value)} is not a number", status=422)
    if converted:
        df = _replace(df, converted)
    return cast_array(df.to_numpy(), dtype, enforce, where, list(df.columns))


def _replace(df: pd.DataFrame, columns: dict[Any, Any]) -> pd.DataFrame:
    df = df.copy()
    for col, values in columns.items():
        df[col] = values
    return df


def cast_frame(df: pd.DataFrame, dtype: Any, enforce: bool, where: Where, strict: bool = False) -> pd.DataFrame:
    """Cast columns to ``dtype`` (one dtype or ``{column: dtype}``).

    With ``enforce`` a value that does not fit names its row and column; without it, a
    column that cannot be cast is left as it is. ``strict`` (cells parsed from JSON, which
    are typed) also refuses strings and booleans where a number is wanted.
    """
    import numpy as np
    import pandas as pd

    if dtype is None:
        return df
    targets = dict(dtype) if isinstance(dtype, dict) else {col: dtype for col in df.columns}
    targets = {col: t for col, t in targets.items() if col in df.columns}
    out: dict[Any, Any] = {}
    for col, target in targets.items():
        series = df[col]
        try:
            kind = np.dtype(target).kind
        except TypeError:  # pandas-only dtypes ("category", "string")
            kind = "O"
        if enforce and kind in "iufb":
            numbers = pd.to_numeric(series, errors="coerce") if series.dtype.kind not in "iufb" else series
            checks = [(numbers.isna() & series.notna(), "is not a number")]
            if strict and kind in "iuf" and series.dtype.kind in "bO":
                checks.insert(0, (series.map(_not_a_number).astype(bool), "is not a number"))
            if kind in "iu":
                checks.append((series.isna(), "is missing"))
                if numbers.dtype.kind == "f":
                    checks.append((numbers.notna() & (numbers != numbers.round()), f"is not a valid {np.dtype(target)}"))
            for mask, what in checks:
                values = mask.to_numpy()
                if values.any():
                    i = int(values.argmax())
                    text = "a value" if what == "is missing" else shown(_plain(series.iloc[i]))
                    raise BadInput(f"{where(i)}, {column_label(col)}: {text} {what}", status=422)
            series = numbers
        try:
            out[col] = series.astype(target)
        except (ValueError, TypeError) as exc:
            if enforce:
                raise BadInput(f"{column_label(col)} cannot be read as {target}: {exc}", status=422) from exc
    return _replace(df, out) if out else df


def _not_a_number(value: Any) -> bool:
    return isinstance(value, (bool, str)) or type(value).__name__ == "bool_"


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
