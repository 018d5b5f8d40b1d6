"""``Chunk``: up to ``chunk_size`` consecutive rows of an input file, with their origin.

Readers yield ``Chunk``s of at most ``chunk_size`` rows. A chunk remembers where its rows
came from, so a bad value is reported the way a user finds it in the file:
"row 17 (line 18 of iris.csv), column 'petal_width': 'abc' is not a number".
Rows are counted from 1 without the header; lines are physical lines of the file.

numpy and pandas are imported inside functions: ``mlpack.io`` must stay cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import BadInput
from .tables import cast_array, frame_to_array

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass
class Chunk:
    """Up to ``chunk_size`` consecutive rows of a file, with their origin for messages."""

    rows: Any  # list of parsed JSON rows, a DataFrame, or a pyarrow RecordBatch
    start: int  # 0-based index of the first row in the file
    name: str  # the file, as shown in messages
    lines: list[int] | None = None  # 1-based line of each row, when rows skip lines
    first_line: int | None = None  # line of the first row, when rows are consecutive lines
    columns: list[Any] | None = None  # labels of list rows (split orient, CSV header)

    def __len__(self) -> int:
        return len(self.rows)

    def where(self, i: int) -> str:
        """Where row ``i`` of this chunk is in the file."""
        row = self.start + i + 1
        line = self.lines[i] if self.lines is not None else None
        if line is None and self.first_line is not None:
            line = self.first_line + i
        return f"row {row} (line {line} of {self.name})" if line else f"row {row} of {self.name}"

    def check_rows(self, keys: list[Any] | None = None) -> None:
        """Refuse ragged list rows, mixed row kinds and, with ``keys``, records with other keys."""
        rows = self.rows
        if not isinstance(rows, list) or not rows:
            return
        first = rows[0]
        if isinstance(first, list):
            width = len(self.columns) if self.columns is not None else len(first)
            for i, row in enumerate(rows):
                if not isinstance(row, list) or len(row) != width:
                    found = f"{len(row)} values" if isinstance(row, list) else f"a {_kind(row)}"
                    raise BadInput(f"{self.where(i)}: expected a list of {width} values, found {found}", status=422)
        elif isinstance(first, dict):
            want = set(keys) if keys is not None else None
            for i, row in enumerate(rows):
                if not isinstance(row, dict):
                    raise BadInput(f"{self.where(i)}: expected an object like the rows before, found a {_kind(row)}", status=422)
                if want is not None and row.keys() != want:
                    missing = [k for k in keys if k not in row]  # type: ignore[union-attr]
                    if missing:
                        raise BadInput(f"{self.where(i)}: missing column(s) {_names(missing)}", status=422)
                    extra = [k for k in row if k not in want]
                    raise BadInput(f"{self.where(i)}: unexpected column(s) {_names(extra)}", status=422)
        else:
            for i, row in enumerate(rows):
                if isinstance(row, (list, dict)):
                    raise BadInput(
                        f"{self.where(i)}: expected a single value like the rows before, found a {_kind(row)}", status=422
                    )

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame indexed by their position in the file."""
        import pandas as pd

        rows = self.rows
        if isinstance(rows, pd.DataFrame):
            return rows
        if isinstance(rows, list):
            if rows and isinstance(rows[0], list):
                df = pd.DataFrame(rows, columns=self.columns)
            else:
                df = pd.DataFrame(rows)
        else:  # pyarrow RecordBatch
            df = rows.to_pandas()
        if self.start:  # pandas already numbers the first chunk from 0
            df.index = pd.RangeIndex(self.start, self.start + len(df))
        return df

    def records(self) -> list[Any]:
        """The rows as plain Python objects: records for tables, parsed rows for JSON."""
        import pandas as pd

        rows = self.rows
        if isinstance(rows, list):
            if self.columns is not None:
                return [dict(zip(self.columns, row)) for row in rows]
            return rows
        if isinstance(rows, pd.DataFrame):
            # NaN is how pandas spells a missing CSV field; validators want None
            return rows.astype(object).where(rows.notna(), None).to_dict("records")
        return rows.to_pylist()

    def to_array(self, dtype: Any = None, enforce: bool = False, columns: list[Any] | None = None) -> np.ndarray:
        """The rows as a numeric ndarray; a non-numeric value names its row and column.

        ``columns`` orders the keys of record rows.
        """
        import numpy as np

        rows = self.rows
        if isinstance(rows, list) and (not rows or not isinstance(rows[0], dict)):
            self.check_rows()
            try:
                arr = np.asarray(rows)
            except ValueError as exc:
                last = self.start + len(rows)
                msg = f"rows {self.start + 1}-{last} of {self.name} do not form a rectangular array"
                raise BadInput(msg, status=422) from exc
            if arr.dtype.kind in "iufb":
                return cast_array(arr, dtype, enforce, self.where, None)
            if not rows or not isinstance(rows[0], list):
                return frame_to_array(self.frame(), dtype, enforce, self.where)[:, 0]
        df = self.frame()
        if columns is not None:
            df = df[columns]
        return frame_to_array(df, dtype, enforce, self.where)


def _kind(value: Any) -> str:
    return {list: "list", dict: "object", str: "string"}.get(type(value), type(value).__name__)


def _names(cols: list[Any]) -> str:
    return ", ".join(repr(c) for c in cols)
