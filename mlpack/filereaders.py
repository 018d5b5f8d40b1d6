"""Chunked readers for offline input files (CSV, JSON, JSON Lines, Parquet) and table checks.

Readers yield ``Chunk``s of at most ``chunk_size`` rows. A chunk remembers where its rows
came from, so a bad value is reported the way a user finds it in the file:
"row 17 (line 18 of iris.csv), column 'petal_width': 'abc' is not a number".
Rows are counted from 1 without the header; lines are physical lines of the file.

numpy, pandas, orjson and pyarrow are imported inside functions: ``mlpack.io`` imports
this module and must stay cheap to import.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .exceptions import BadInput, MissingDependency

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
INPUT_FORMATS = ("csv", "json", "jsonl", "parquet")
_ALIASES = {"ndjson": "jsonl", "pq": "parquet"}
ALLOWED = "csv (.csv), json (.json), jsonl (.jsonl, .ndjson), parquet (.parquet, .pq)"

Where = Callable[[int], str]


def file_format(path: str | Path | None, fmt: str | None = None) -> str:
    """The input format named by ``fmt``, else by the extension of ``path``."""
    if fmt:
        found = _ALIASES.get(fmt.lower().lstrip("."), fmt.lower().lstrip("."))
        if found not in INPUT_FORMATS:
            raise BadInput(f"unknown input format {fmt!r}; use one of {ALLOWED}")
        return found
    suffix = Path(path).suffix.lower() if path is not None else ""
    if suffix not in EXTENSIONS:
        raise BadInput(f"cannot tell the format of {path} from its extension; use one of {ALLOWED}")
    return EXTENSIONS[suffix]


def column_label(col: Any) -> str:
    # headerless files get integer labels; users count columns from 1
    return f"column {col + 1}" if isinstance(col, int) else f"column {col!r}"


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


def _num(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- table conversions


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
        raise BadInput(f"{where(i)}, {column_label(col)}: {value!r} is not a number", status=422)
    if converted:
        df = _replace(df, converted)
    return cast_array(df.to_numpy(), dtype, enforce, where, list(df.columns))


def _replace(df: pd.DataFrame, columns: dict[Any, Any]) -> pd.DataFrame:
    df = df.copy()
    for col, values in columns.items():
        df[col] = values
    return df


def cast_frame(df: pd.DataFrame, dtype: Any, enforce: bool, where: Where) -> pd.DataFrame:
    """Cast columns to ``dtype`` (one dtype or ``{column: dtype}``).

    With ``enforce`` a value that does not fit names its row and column; without it, a
    column that cannot be cast is left as it is.
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
            if kind in "iu":
                checks.append((series.isna(), "is missing"))
                if numbers.dtype.kind == "f":
                    checks.append((numbers.notna() & (numbers != numbers.round()), f"is not a valid {np.dtype(target)}"))
            for mask, what in checks:
                values = mask.to_numpy()
                if values.any():
                    i = int(values.argmax())
                    text = "a value" if what == "is missing" else repr(_plain(series.iloc[i]))
                    raise BadInput(f"{where(i)}, {column_label(col)}: {text} {what}", status=422)
            series = numbers
        try:
            out[col] = series.astype(target)
        except (ValueError, TypeError) as exc:
            if enforce:
                raise BadInput(f"{column_label(col)} cannot be read as {target}: {exc}", status=422) from exc
    return _replace(df, out) if out else df


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# ---------------------------------------------------------------- readers


def iter_chunks(
    source: str | Path | IO[str],
    fmt: str,
    chunk_size: int,
    *,
    numeric: bool = False,
    names: list[Any] | None = None,
    frames: bool = True,
    orient: str | None = None,
    name: str | None = None,
) -> Iterator[Chunk]:
    """Chunks of ``source`` (a path, or a text stream for CLI input) in format ``fmt``.

    ``numeric`` reads CSV line by line with exact row checks (for arrays); ``names`` are
    declared columns (used for a CSV without header); ``frames=False`` keeps a JSON object
    that is not a table as one record.
    """
    if chunk_size < 1:
        raise BadInput(f"chunk size must be at least 1, not {chunk_size}")
    if name is None:
        name = str(source) if isinstance(source, (str, Path)) else "input"
    if fmt == "csv":
        return iter_numeric_csv(source, chunk_size, name) if numeric else iter_csv(source, chunk_size, name, names)
    if fmt == "json":
        return iter_json(source, chunk_size, name, frames=frames, orient=orient)
    if fmt == "jsonl":
        return iter_jsonl(source, chunk_size, name)
    if fmt == "parquet":
        if not isinstance(source, (str, Path)):
            raise BadInput("parquet input must be a file")
        return iter_parquet(source, chunk_size, name)
    raise BadInput(f"unknown input format {fmt!r}; use one of {ALLOWED}")


@contextlib.contextmanager
def open_source(source: str | Path | IO[Any], mode: str = "r") -> Iterator[IO[Any]]:
    if not isinstance(source, (str, Path)):
        yield source
        return
    try:
        f = open(source, mode, newline="") if "b" not in mode else open(source, mode)  # noqa: SIM115
    except OSError as exc:
        raise BadInput(f"cannot read {source}: {exc.strerror or exc}") from exc
    with f:
        yield f


def _csv_fields(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def _first_fields(source: str | Path | IO[str]) -> list[str] | None:
    with open_source(source) as f:
        pos = f.tell() if not isinstance(source, (str, Path)) else None
        try:
            for line in f:
                if line.strip():
                    return _csv_fields(line)
            return None
        finally:
            if pos is not None:
                f.seek(pos)


def _csv_header(source: str | Path | IO[str], names: list[Any] | None) -> tuple[int | None, list[Any] | None]:
    """pandas ``header``/``names``: a header row, unless declared columns fit a headerless file."""
    if names:
        fields = _first_fields(source)
        if fields is not None and len(fields) == len(names) and not set(fields) & {str(n) for n in names}:
            return None, list(names)
    return 0, None


def _parser_error(exc: Exception, name: str, header_lines: int) -> BadInput:
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if m:
        want, line, saw = (int(g) for g in m.groups())
        return BadInput(f"row {line - header_lines} (line {line} of {name}): expected {want} fields, found {saw}", status=422)
    return BadInput(f"{name} is not valid CSV: {str(exc).strip()}")


def read_csv(source: str | Path | IO[str], name: str, names: list[Any] | None = None) -> pd.DataFrame:
    """A whole CSV as a DataFrame (the HTTP ``text/csv`` body, ``--input`` text)."""
    import pandas as pd

    header, cols = _csv_header(source, names)
    try:
        return pd.read_csv(source, header=header, names=cols)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=names or [])
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise _parser_error(exc, name, 1 if header == 0 else 0) from exc


def iter_csv(source: str | Path | IO[str], chunk_size: int, name: str, names: list[Any] | None = None) -> Iterator[Chunk]:
    """CSV through pandas' C parser (quoted fields, mixed types). Short rows read as missing values."""
    import pandas as pd

    header, cols = _csv_header(source, names)
    header_lines = 1 if header == 0 else 0
    start = 0
    try:
        with pd.read_csv(source, header=header, names=cols, chunksize=chunk_size) as reader:
            for df in reader:
                yield Chunk(df, start, name, first_line=header_lines + start + 1)
                start += len(df)
    except pd.errors.EmptyDataError:
        return
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise _parser_error(exc, name, header_lines) from exc


def iter_numeric_csv(source: str | Path | IO[str], chunk_size: int, name: str) -> Iterator[Chunk]:
    """CSV of numbers, in blocks of ``chunk_size`` lines, so that every ragged row is caught with its line.

    The first line is a header when none of its fields is a number. Each block is checked
    at once with numpy (a comma count per line); only a block that fails the check (a
    ragged, blank or quoted line) is split into lines in Python to skip blank lines and
    name the bad row. Blocks are parsed by pandas' C parser from bytes.
    """
    import pandas as pd

    with _open_binary(source) as f:
        lineno = 0
        for raw in f:
            lineno += 1
            if raw.strip():
                break
        else:
            return
        fields = _csv_fields(_decode(raw.removeprefix(b"\xef\xbb\xbf") if lineno == 1 else raw, name, lineno))
        has_header = not any(_num(x) for x in fields)
        if has_header and len(set(fields)) < len(fields):
            repeated = [f for i, f in enumerate(fields) if f in fields[:i]]
            raise BadInput(f"line {lineno} of {name}: the header repeats column(s) {_names(repeated)}", status=422)
        columns: list[Any] = fields if has_header else list(range(len(fields)))
        width = len(fields)
        next_line = lineno + 1 if has_header else lineno
        what = "fields (as in the header)" if has_header else "fields (as in the first row)"
        start = 0
        for block, count in _line_blocks(f, b"" if has_header else raw, chunk_size):
            first, next_line = next_line, next_line + count
            numbers: list[int] | None = None
            data: bytes | str = block
            if not _regular(block, width):
                kept: list[str] = []
                numbers = []
                for k, r in enumerate(_split_lines(block, name, first)):
                    if not r.strip():
                        continue
                    n = len(_csv_fields(r)) if '"' in r else r.count(",") + 1
                    if n != width:
                        row = start + len(kept) + 1
                        raise BadInput(f"row {row} (line {first + k} of {name}): expected {width} {what}, found {n}", status=422)
                    kept.append(r)
                    numbers.append(first + k)
                if not kept:
                    continue
                data = "".join(kept)
            buffer = io.BytesIO(data) if isinstance(data, bytes) else io.StringIO(data)
            try:
                df = pd.read_csv(buffer, header=None, names=columns, index_col=False)
            except UnicodeDecodeError as exc:
                raise BadInput(f"{name} is not valid utf-8 text (lines {first}-{next_line - 1})") from exc
            df.index = pd.RangeIndex(start, start + len(df))
            yield Chunk(df, start, name, lines=numbers, first_line=first, columns=columns)
            start += len(df)


@contextlib.contextmanager
def _open_binary(source: str | Path | IO[Any]) -> Iterator[IO[bytes]]:
    if isinstance(source, (str, Path)):
        with open_source(source, "rb") as f:
            yield f
        return
    data = source.read()  # a text stream holds CLI input: small
    yield io.BytesIO(data.encode() if isinstance(data, str) else data)


def _decode(raw: bytes, name: str, lineno: int) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise BadInput(f"line {lineno} of {name} is not valid utf-8 text: {exc.reason} at byte {exc.start}") from exc


def _line_blocks(f: IO[bytes], pending: bytes, n: int) -> Iterator[tuple[bytes, int]]:
    """Consecutive blocks of ``n`` lines (the last one may hold fewer) and their line counts."""
    import numpy as np

    buf = bytearray(pending)
    count = buf.count(b"\n")
    line_bytes = 64  # average line length, refined from each block
    eof = False
    while True:
        while count < n and not eof:
            more = f.read(max((n - count) * line_bytes, 1 << 16))
            eof = not more
            count += more.count(b"\n")
            buf += more
        if count >= n:
            if n == 1:
                cut = buf.index(b"\n") + 1
            else:
                ends = np.flatnonzero(np.frombuffer(buf, np.uint8) == 10)  # a temporary view of buf
                cut = int(ends[n - 1]) + 1
            yield bytes(buf[:cut]), n
            del buf[:cut]
            count -= n
            line_bytes = cut // n + 1
        else:
            if buf:
                yield bytes(buf), count + (not buf.endswith(b"\n"))
            return


def _regular(block: bytes, width: int) -> bool:
    """Whether every line of ``block`` has ``width`` fields with no quotes and no blank line."""
    import numpy as np

    if b'"' in block:
        return False
    if width == 1:  # rare; a blank line is what must not pass
        return b"," not in block and all(line.strip() for line in block.removesuffix(b"\n").split(b"\n"))
    arr = np.frombuffer(block, np.uint8)
    ends = np.flatnonzero(arr == 10)
    if not block.endswith(b"\n"):
        ends = np.append(ends, len(arr))
    commas = np.searchsorted(np.flatnonzero(arr == 44), ends)  # commas before each line end
    return bool((np.diff(commas, prepend=0) == width - 1).all())


def _split_lines(block: bytes, name: str, first: int) -> list[str]:
    """The lines of a block, with their line endings."""
    lines = []
    for k, raw in enumerate(block.split(b"\n")):
        lines.append(_decode(raw, name, first + k) + "\n")
    if block.endswith(b"\n"):
        lines.pop()  # the empty piece after the last line ending
    else:
        lines[-1] = lines[-1][:-1]
    return lines


def json_error(exc: Any, what: str) -> BadInput:
    return BadInput(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")


def iter_json(
    source: str | Path | IO[str], chunk_size: int, name: str, *, frames: bool = True, orient: str | None = None
) -> Iterator[Chunk]:
    """A JSON document (read whole): an array of rows, or a pandas orient object."""
    import orjson

    with open_source(source, "rb") as f:
        data = f.read()
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise json_error(exc, name) from exc
    rows, columns = json_rows(value, name, frames=frames, orient=orient)
    for start in range(0, len(rows), chunk_size):
        part = rows[start : start + chunk_size] if isinstance(rows, list) else rows.iloc[start : start + chunk_size]
        yield Chunk(part, start, name, columns=columns)


def json_rows(value: Any, name: str, *, frames: bool = True, orient: str | None = None) -> tuple[Any, list[Any] | None]:
    """Rows of a parsed JSON document: ``(list or DataFrame, column labels of list rows)``."""
    if isinstance(value, list):
        return value, None
    if not isinstance(value, dict):
        raise BadInput(f"{name}: expected a JSON array of rows or an object, found a {_kind(value)}", status=422)
    data = value.get("data")
    if isinstance(data, list) and ("columns" in value or "index" in value or "schema" in value):
        if "schema" in value:  # orient="table": records plus the index under the primary key
            keys = set(value["schema"].get("primaryKey") or ()) if isinstance(value["schema"], dict) else set()
            return [{k: v for k, v in r.items() if k not in keys} if isinstance(r, dict) else r for r in data], None
        columns = value.get("columns")
        return data, list(columns) if columns is not None else None
    if frames and value and all(isinstance(v, (dict, list)) for v in value.values()):
        import pandas as pd

        try:
            if orient == "index":
                return pd.DataFrame.from_dict(value, orient="index"), None
            return pd.DataFrame(value), None
        except ValueError as exc:
            raise BadInput(f"{name}: not a table: {exc}", status=422) from exc
    return [value], None  # one record


def iter_jsonl(source: str | Path | IO[str], chunk_size: int, name: str) -> Iterator[Chunk]:
    """JSON Lines, parsed lazily: one row per non-blank line."""
    import orjson

    with open_source(source, "rb") as f:
        rows: list[Any] = []
        lines: list[int] = []
        start = 0
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise BadInput(f"line {lineno} of {name} is not valid JSON: {exc.msg} at column {exc.colno}") from exc
            lines.append(lineno)
            if len(rows) == chunk_size:
                yield Chunk(rows, start, name, lines=lines)
                start += len(rows)
                rows, lines = [], []
        if rows:
            yield Chunk(rows, start, name, lines=lines)


def iter_parquet(path: str | Path, chunk_size: int, name: str) -> Iterator[Chunk]:
    """Parquet record batches, so memory stays bounded by ``chunk_size`` rows."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependency("reading Parquet files needs pyarrow: pip install 'mlpack[parquet]'") from exc
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise BadInput(f"{name} is not a readable Parquet file: {exc}") from exc
    start = 0
    try:
        for batch in pf.iter_batches(batch_size=chunk_size):
            yield Chunk(batch, start, name)
            start += batch.num_rows
    finally:
        pf.close()
