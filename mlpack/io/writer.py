"""Writing results: JSON bytes for any result, and ``ChunkWriter`` for the output of many chunks.

``ChunkWriter`` output is always one valid document:

- ``json``: one JSON array holding the rows of every chunk in order (elements of arrays,
  lists and Series; DataFrame rows as records; any other result is one item);
- ``jsonl``: the same items, one per line;
- ``csv``: a header once, then the rows; ``table``: aligned text for a terminal.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..exceptions import BadInput, MlpackError

if TYPE_CHECKING:
    import pandas as pd

OUTPUT_FORMATS = ("json", "jsonl", "csv", "table")
PARQUET_EXTENSIONS = (".parquet", ".pq")  # written by ``mlpack run`` itself, not by ChunkWriter
_OUTPUT_EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "table"}


def output_format(path: str | Path | None = None, fmt: str | None = None) -> str:
    """The CLI output format: ``fmt`` if given, else from the output file's extension, else json."""
    if fmt:
        fmt = "jsonl" if fmt.lower() == "ndjson" else fmt.lower()
        if fmt not in OUTPUT_FORMATS:
            raise BadInput(f"unknown output format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower() if path else ""
    if not suffix:
        return "json"
    if suffix not in _OUTPUT_EXTENSIONS:
        known = ", ".join([*_OUTPUT_EXTENSIONS, *PARQUET_EXTENSIONS])
        raise BadInput(
            f"cannot tell the output format of {path} from its extension {suffix!r}; "
            f"use one of {known}, or give -o {'|'.join(OUTPUT_FORMATS)}"
        )
    return _OUTPUT_EXTENSIONS[suffix]


# ---------------------------------------------------------------- JSON encoding


def _default(obj: Any) -> Any:
    """What orjson cannot write by itself (OPT_SERIALIZE_NUMPY skips views and object arrays)."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    root = type(obj).__module__.partition(".")[0]
    if root == "pandas":
        import pandas as pd

        if isinstance(obj, pd.DataFrame):
            return _records(obj)
        if obj is pd.NaT or obj is pd.NA:
            return None
        if isinstance(obj, (pd.Series, pd.Index, pd.Categorical)):
            return obj.tolist()
        return obj.isoformat() if hasattr(obj, "isoformat") else str(obj)
    if hasattr(obj, "tolist"):  # numpy, pyarrow and tensor-likes
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if type(obj).__name__ == "Decimal":
        return float(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def to_json_bytes(obj: Any) -> bytes:
    """JSON for any API result: plain objects, numpy, pandas, pydantic models."""
    import orjson

    try:
        return orjson.dumps(obj, default=_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise MlpackError(f"cannot write {type(obj).__name__} as JSON: {exc}") from exc


def _records(df: pd.DataFrame) -> list[dict[Any, Any]]:
    # to_dict("records") goes row by row through pandas: 10-100 times slower; missing
    # values come out as nan/NaT/NA, which to_json_bytes writes as null
    cols = df.columns.tolist()
    return [dict(zip(cols, row)) for row in df.to_numpy(dtype=object).tolist()]


# ---------------------------------------------------------------- output rows


def _rows(obj: Any) -> list[Any]:
    """The items a result contributes to a json/jsonl document."""
    root = type(obj).__module__.partition(".")[0]
    if root == "numpy" and hasattr(obj, "ndim"):
        return [obj.tolist()] if obj.ndim == 0 else obj.tolist()
    if root == "pandas":
        import pandas as pd

        if isinstance(obj, pd.DataFrame):
            return _records(obj)
        if isinstance(obj, (pd.Series, pd.Index)):
            return obj.tolist()
    if isinstance(obj, (list, tuple)):
        return list(obj)
    return [obj]


def _frame(obj: Any) -> pd.DataFrame:
    """A result as a table for csv/table output; bare values go in a ``result`` column."""
    import numpy as np
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        return obj
    if isinstance(obj, pd.Series):
        return obj.to_frame(name=obj.name if obj.name is not None else "result")
    if isinstance(obj, np.ndarray):
        if obj.ndim > 2:
            raise MlpackError(f"cannot write a {obj.ndim}-D array as a table; use json output")
        return pd.DataFrame(obj) if obj.ndim == 2 else pd.DataFrame({"result": obj.reshape(-1)})
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    if isinstance(obj, dict):
        return pd.DataFrame([obj])
    if isinstance(obj, (list, tuple)):
        items = [i.model_dump(mode="json") if hasattr(i, "model_dump") else i for i in obj]
        if items and all(isinstance(i, dict) for i in items):
            return pd.DataFrame(items)
        if items and all(isinstance(i, (list, tuple)) for i in items):
            return pd.DataFrame(items)
        return pd.DataFrame({"result": items})
    return pd.DataFrame({"result": [obj]})


def csv_column(obj: Any) -> str | None:
    """The csv rows of a 1-D array of integers or booleans (a ``result`` column), else None.

    The bytes ``DataFrame.to_csv`` writes for that column (a number or True/False per line,
    nothing to quote, no missing values), three times faster: the common result of a
    classifier's predict. Labels 0-9 (most classifiers' classes) are written as bytes by
    numpy, a hundred times faster again: a tenth of a second per million rows.
    """
    if type(obj).__module__ != "numpy" or getattr(obj, "ndim", None) != 1 or obj.dtype.kind not in "iub":
        return None
    if not len(obj):
        return ""
    if obj.dtype.kind != "b" and 0 <= obj.min() and obj.max() <= 9:
        return _digit_lines(obj)
    return "\n".join(map(str, obj.tolist())) + "\n"


def _digit_lines(obj: Any) -> str:
    """``"d\\n"`` for each digit of a 1-D array of integers 0-9."""
    import numpy as np

    out = np.empty(2 * len(obj), dtype=np.uint8)
    out[0::2] = obj
    out[0::2] += ord("0")
    out[1::2] = ord("\n")
    return out.tobytes().decode("ascii")


CSV_COLUMN_HEADER = "result\n"  # _frame's name for a bare array's column


class ChunkWriter:
    """Writes the results of many chunks to a text stream as one document.

    ``json`` opens the array on the first row and closes it in ``close()`` (``[]`` when
    nothing was written); ``csv`` and ``table`` write the header once. Use as a context
    manager, or call ``close()`` after the last chunk.
    """

    def __init__(self, stream: IO[str], fmt: str = "json") -> None:
        self.stream = stream
        self.fmt = output_format(None, fmt)
        self.rows = 0
        self._header = False

    def write(self, obj: Any) -> int:
        """Write one chunk's result; returns the number of rows written."""
        if self.fmt in ("json", "jsonl"):
            items = [to_json_bytes(item).decode() for item in _rows(obj)]
            if items and self.fmt == "jsonl":
                self.stream.write("\n".join(items) + "\n")
            elif items:
                self.stream.write(("[\n" if self.rows == 0 else ",\n") + ",\n".join(items))
            self.rows += len(items)
            return len(items)
        rows = csv_column(obj) if self.fmt == "csv" else None
        if rows is not None:
            self.stream.write(rows if self._header else CSV_COLUMN_HEADER + rows)
            self._header = True
            self.rows += len(obj)
            return len(obj)
        df = _frame(obj)
        if len(df.columns) == 0:
            return 0
        if self.fmt == "csv":
            df.to_csv(self.stream, header=not self._header, index=False, lineterminator="\n")
        elif len(df):
            self.stream.write(df.to_string(index=False, header=not self._header) + "\n")
        self._header = self._header or self.fmt == "csv" or len(df) > 0
        self.rows += len(df)
        return len(df)

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("[]\n" if self.rows == 0 else "\n]\n")

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:  # after an error the output is incomplete anyway
            self.close()
