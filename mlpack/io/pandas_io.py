"""``PandasDataFrame``: a table in (JSON in any pandas orient, or CSV), a DataFrame to the API."""

from __future__ import annotations

import io as _io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..exceptions import BadInput, ConfigError, MlpackError
from .base import JSON_TYPES, IODescriptor, _check_shape, _decode_text, _dtype_name, _json_type, _loads
from .chunks import Chunk
from .readers import iter_chunks, json_rows, read_csv
from .tables import cast_frame
from .writer import _records, to_json_bytes

if TYPE_CHECKING:
    import pandas as pd

ORIENTS = ("records", "split", "columns", "index", "values")
CSV_TYPES = ("text/csv", "application/csv")


def _frame_json(df: pd.DataFrame, orient: str) -> Any:
    """A DataFrame as the plain object pandas would write for ``orient``."""
    if orient == "records":
        return _records(df)
    if orient == "values":
        return df.to_numpy()
    if orient == "split":
        return {"index": df.index.tolist(), "columns": df.columns.tolist(), "data": df.to_numpy(dtype=object).tolist()}
    if orient == "columns" and df.columns.is_unique and df.index.is_unique:
        index = df.index.tolist()
        return {col: dict(zip(index, series.tolist())) for col, series in df.items()}
    if orient == "index" and df.columns.is_unique and df.index.is_unique:
        return dict(zip(df.index.tolist(), _records(df)))
    raise MlpackError(f"cannot write a DataFrame with duplicate labels as JSON with orient={orient!r}")


class PandasDataFrame(IODescriptor):
    """A table in (JSON in any pandas orient, or ``text/csv``), a DataFrame to the API.

    ``columns`` names headerless input and selects and orders columns (a missing one is an
    error); ``dtype`` is one dtype or ``{column: dtype}``; ``shape`` is (rows, columns).
    Results (DataFrame, Series, ndarray) are written as JSON in ``orient``.
    """

    accepted_types = JSON_TYPES + CSV_TYPES

    def __init__(
        self,
        orient: str = "records",
        columns: list[Any] | None = None,
        dtype: Any = None,
        enforce_dtype: bool = False,
        shape: tuple[int | None, ...] | None = None,
        enforce_shape: bool = False,
    ) -> None:
        if orient not in ORIENTS:
            raise ConfigError(f"PandasDataFrame: orient must be one of {', '.join(ORIENTS)}, not {orient!r}")
        if enforce_dtype and dtype is None:
            raise ConfigError("PandasDataFrame(enforce_dtype=True) needs a dtype")
        if enforce_shape and shape is None:
            raise ConfigError("PandasDataFrame(enforce_shape=True) needs a shape")
        self.orient = orient
        self.columns = list(columns) if columns is not None else None
        self.dtype = dtype
        self.enforce_dtype = enforce_dtype
        self.shape = tuple(-1 if d is None else int(d) for d in shape) if shape is not None else None
        self.enforce_shape = enforce_shape

    def _request_types(self) -> tuple[str, ...]:
        return ("application/json", "text/csv")

    def openapi_request_body(self, contract: dict[str, Any] | None = None) -> dict[str, Any]:
        body = super().openapi_request_body(contract)
        body["content"]["text/csv"]["schema"] = self._csv_schema()
        return body

    def _csv_schema(self) -> dict[str, Any]:
        """A CSV body; with declared numeric columns, a pattern of exactly what is accepted:
        an optional header of the columns, then one or more rows of numbers."""
        schema: dict[str, Any] = {"type": "string", "minLength": 1}
        if not self.columns:
            return schema
        cells = []
        for col in self.columns:
            kind = self._cell_schema(col).get("type")
            if kind not in ("number", "integer"):
                return schema
            number = "-?[0-9]{1,15}" + ("([.][0-9]{1,15})?" if kind == "number" else "")
            # an empty cell is a missing value, but an empty line is no row at all
            cells.append(f"({number})?" if kind == "number" and len(self.columns) > 1 else number)
        header = ",".join(re.escape(str(c)) for c in self.columns)
        row = ",".join(cells)
        schema["pattern"] = f"^({header}\\r?\\n)?({row}\\r?\\n)*{row}(\\r?\\n)?$"
        return schema

    def _parse(self, body: bytes, mime: str, charset: str | None, source: str) -> pd.DataFrame:
        if mime in CSV_TYPES:
            text = _decode_text(body, charset, source)
            df = read_csv(_io.StringIO(text), source, self.columns)
        else:
            df = self._from_json(_loads(body, charset, source), source)
        if len(df) == 0:
            raise BadInput(f"{source} has no rows", status=422)
        return self._check(df, source, lambda i: f"row {i + 1}", batch=False, strict=mime not in CSV_TYPES)

    def _parse_text(self, text: str, fmt: str | None) -> Any:
        if fmt is None and text.lstrip()[:1] not in ("[", "{"):
            fmt = "csv"  # `--input 'a,b\n1,2'`
        return super()._parse_text(text, fmt)

    def _from_json(self, value: Any, source: str) -> pd.DataFrame:
        rows, columns = json_rows(value, source, orient=self.orient)
        chunk = Chunk(rows, 0, source, columns=columns)
        if not isinstance(rows, list):
            return rows
        chunk.check_rows()
        if self.columns and rows and isinstance(rows[0], dict):
            _check_records(rows, self.columns, source)
        elif rows and isinstance(rows[0], list) and self.orient == "records" and not self._row_schema():
            names = ", ".join(f'"{c}": ...' for c in self.columns or ())
            raise BadInput(f"{source}: send records ({{{names}}}): list rows cannot say which value is which type", status=422)
        if columns is None and self.columns and rows and isinstance(rows[0], list) and len(rows[0]) == len(self.columns):
            chunk.columns = self.columns
        try:
            df = chunk.frame()
            if isinstance(value, dict) and isinstance(value.get("index"), list) and "schema" not in value:
                df.index = value["index"]
        except ValueError as exc:
            raise BadInput(f"{source} is not a table: {exc}", status=422) from exc
        return df

    def _check(
        self, df: pd.DataFrame, source: str, where: Callable[[int], str], batch: bool, strict: bool = False
    ) -> pd.DataFrame:
        import pandas as pd

        if self.columns is not None:
            if isinstance(df.columns, pd.RangeIndex) and len(df.columns) == len(self.columns):
                df.columns = self.columns
            missing = [c for c in self.columns if c not in df.columns]
            if missing:
                raise BadInput(f"{source}: missing column(s) {', '.join(map(repr, missing))}", status=422)
            if list(df.columns) != self.columns:
                df = df[self.columns]
        df = cast_frame(df, self.dtype, self.enforce_dtype, where, strict)
        if self.enforce_shape:
            _check_shape(df.shape, self.shape, source, batch)  # type: ignore[arg-type]
        return df

    def _iter(self, source: str | Path | IO[str], fmt: str, chunk_size: int, name: str) -> Iterator[pd.DataFrame]:
        cols = None
        for chunk in iter_chunks(source, fmt, chunk_size, names=self.columns, orient=self.orient, name=name):
            chunk.check_rows()
            rows = chunk.rows
            if self.columns and chunk.columns is None and isinstance(rows, list) and rows and isinstance(rows[0], list):
                chunk.columns = self.columns if len(rows[0]) == len(self.columns) else None
            df = chunk.frame()
            if self.columns is None:  # keep the first chunk's columns so that chunks concatenate
                if cols is None:
                    cols = list(df.columns)
                elif list(df.columns) != cols:
                    df = df.reindex(columns=cols)
            yield self._check(df, name, chunk.where, batch=True)

    def _concat(self, chunks: list[Any]) -> pd.DataFrame:
        import pandas as pd

        return pd.concat(chunks) if chunks else pd.DataFrame(columns=self.columns or [])

    def _encode(self, obj: Any) -> bytes:
        import numpy as np
        import pandas as pd

        if isinstance(obj, np.ndarray) and obj.ndim == 2:
            obj = pd.DataFrame(obj)
        if isinstance(obj, pd.Series):
            obj = obj.tolist() if self.orient in ("records", "values") else obj.to_frame()
        return to_json_bytes(_frame_json(obj, self.orient) if isinstance(obj, pd.DataFrame) else obj)

    def openapi_schema(self, contract: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the server accepts. Declared ``columns`` are required in every record (and
        give the width of list rows); cells are typed with ``enforce_dtype``. An HTTP body
        needs at least one row. ``records`` and ``values`` take both records and list rows.
        The model's input contract is not applied: a frame's columns are the user's choice.
        """
        record: dict[str, Any] = {"type": "object"}
        if self.columns:
            record["required"] = [str(c) for c in self.columns]
            record["properties"] = {str(c): self._cell_schema(c) for c in self.columns}
        row = self._row_schema()
        if not row and self.orient == "values":
            row = {"type": "array", "minItems": len(self.columns or ()), "maxItems": len(self.columns or ())}
        records = {"type": "array", "minItems": 1, "items": record}
        rows = {"type": "array", "minItems": 1, "items": row}
        if self.orient in ("records", "values"):
            shapes = [records, rows] if self.orient == "records" else [rows, records]
            return {"anyOf": shapes} if row else records
        if self.orient == "split":
            return {"type": "object", "required": ["data"], "properties": {
                "columns": {"type": "array"}, "index": {"type": "array"}, "data": rows}}  # fmt: skip
        if self.orient == "columns":
            return {"type": "object", "minProperties": 1, "additionalProperties": {"type": "object"}}
        return {"type": "object", "minProperties": 1, "additionalProperties": record}  # index

    def _row_schema(self) -> dict[str, Any]:
        """A list row; {} when declared columns have different types, which OpenAPI 3.0
        cannot give by position (the ``records`` orient then takes records only)."""
        row: dict[str, Any] = {"type": "array"}
        if self.columns:
            cells = [self._cell_schema(c) for c in self.columns]
            if len({json.dumps(cell, sort_keys=True) for cell in cells}) > 1:
                return {}
            row["minItems"] = row["maxItems"] = len(self.columns)
            if cells[0]:
                row["items"] = cells[0]
        return row

    def _cell_schema(self, col: Any) -> dict[str, Any]:
        dtype = self.dtype.get(col) if isinstance(self.dtype, dict) else self.dtype
        if not self.enforce_dtype or dtype is None:
            return {}
        cell = _json_type(dtype)
        if cell.get("type") == "number":
            cell["nullable"] = True  # null is a missing value (NaN)
        return cell

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "PandasDataFrame", "orient": self.orient}
        if self.columns is not None:
            spec["columns"] = list(self.columns)
        if self.dtype is not None:
            dtype = self.dtype
            spec["dtype"] = {str(k): _dtype_name(v) for k, v in dtype.items()} if isinstance(dtype, dict) else _dtype_name(dtype)
        if self.enforce_dtype:
            spec["enforce_dtype"] = True
        if self.shape is not None:
            spec["shape"] = list(self.shape)
        if self.enforce_shape:
            spec["enforce_shape"] = True
        return spec


def _check_records(rows: list[Any], columns: list[Any], source: str) -> None:
    """422 naming the first record that lacks a declared column (pandas would fill in NaN)."""
    want = set(columns)
    for i, row in enumerate(rows):
        if isinstance(row, dict) and not row.keys() >= want:
            missing = [c for c in columns if c not in row]
            raise BadInput(f"{source}: row {i + 1} is missing column(s) {', '.join(map(repr, missing))}", status=422)
