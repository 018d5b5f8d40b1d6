"""Chunked readers for offline input files (CSV, JSON, JSON Lines, Parquet).

``iter_chunks`` picks the reader for a format and yields ``Chunk``s of at most
``chunk_size`` rows; numeric CSV goes through ``mlpack.io.csv_numeric``. ``read_csv`` and
``json_rows`` read a whole document (HTTP bodies, ``--input`` text).

pandas, orjson and pyarrow are imported inside functions: ``mlpack.io`` imports this
module and must stay cheap to import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..exceptions import BadInput, MissingDependency
from .chunks import Chunk, _kind
from .csv_numeric import iter_numeric_csv
from .sources import ALLOWED, LineError, _csv_fields, open_source

if TYPE_CHECKING:
    import pandas as pd


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


def _first_fields(source: str | Path | IO[str]) -> list[str] | None:
    with open_source(source, fields=True) as f:
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
        # a path goes through open_source's checks (line length, NUL, UTF-8) before pandas parses it
        with (
            open_source(source, "rb", fields=True) as f,
            pd.read_csv(f, header=header, names=cols, chunksize=chunk_size) as reader,
        ):
            for df in reader:
                yield Chunk(df, start, name, first_line=header_lines + start + 1)
                start += len(df)
    except pd.errors.EmptyDataError:
        return
    except LineError as exc:
        raise exc.as_row(header_lines) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise _parser_error(exc, name, header_lines) from exc


# tokens of JavaScript, not JSON (RFC 8259): a number too large for a double, NaN, Infinity
_NON_STANDARD = re.compile(rb"NaN|Infinity|[0-9][eE]\+?[0-9]{3}")


def json_error(exc: Any, what: str) -> BadInput:
    """The 400 for a document orjson refuses; NaN, Infinity and overflowing numbers say so."""
    doc = exc.doc.encode() if isinstance(exc.doc, str) else exc.doc
    if isinstance(doc, (bytes, bytearray)) and exc.pos is not None:
        if _NON_STANDARD.match(doc, exc.pos) or _NON_STANDARD.match(doc, max(exc.pos - 1, 0)) or "infinity" in exc.msg:
            return BadInput(
                f"{what} is not standard JSON: NaN, Infinity and numbers beyond a double are not allowed "
                f"(at line {exc.lineno} column {exc.colno}); send null or a finite number"
            )
    return BadInput(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")


def check_standard_json(body: bytes | str, what: str) -> None:
    """400 if ``body`` has NaN or Infinity outside strings, for parsers that take them (pydantic's).

    Two substring searches (~1 us) clear nearly every document; orjson decides the rest.
    (A number beyond a double, ``1e400``, stays pydantic's to judge: it reads infinity.)
    """
    data = body.encode() if isinstance(body, str) else body
    if b"NaN" not in data and b"Infinity" not in data:
        return
    import orjson

    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise json_error(exc, what) from exc


def iter_json(
    source: str | Path | IO[str], chunk_size: int, name: str, *, frames: bool = True, orient: str | None = None
) -> Iterator[Chunk]:
    """A JSON document (read whole): an array of rows, or a pandas orient object."""
    import orjson

    with open_source(source, "rb", lines=False) as f:  # one document: no line-length cap
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
