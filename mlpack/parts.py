"""Results of partitions: encoded on the workers, written in order on the client.

A worker encodes its partition's results the way ``ChunkWriter`` (or the Parquet writer of
``mlpack.offline``) would, but as pieces that join: a CSV header kept apart from the rows,
JSON items without the array's brackets, Parquet as one Arrow IPC stream. ``OrderedOutput``
joins them into one document with the bytes a local run writes, or writes each one as a
standalone part file of a folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .exceptions import BadInput, MlpackError

PART_EXTENSIONS = {"csv": ".csv", "json": ".json", "jsonl": ".jsonl", "parquet": ".parquet"}


@dataclass
class Part:
    fmt: str
    header: str | None = None  # csv: the header line of the first result with columns
    body: bytes = b""  # csv/jsonl: text; json: items joined by ",\n"; parquet: an Arrow IPC stream
    items: int = 0  # rows written


@dataclass
class PartWriter:
    """Collects one partition's results (``write`` per chunk), like ``ChunkWriter`` does a file's."""

    fmt: str
    _pieces: list[Any] = field(default_factory=list)
    _part: Part | None = None

    def __post_init__(self) -> None:
        self._part = Part(self.fmt)

    def write(self, obj: Any) -> None:
        from .io.writer import CSV_COLUMN_HEADER, _frame, _rows, csv_column, to_json_bytes

        part = self._part
        assert part is not None
        if self.fmt in ("json", "jsonl"):
            items = [to_json_bytes(item).decode() for item in _rows(obj)]
            if items:
                self._pieces.append(("\n" if self.fmt == "jsonl" else ",\n").join(items) + ("\n" if self.fmt == "jsonl" else ""))
            part.items += len(items)
            return
        rows = csv_column(obj) if self.fmt == "csv" else None
        if rows is not None:
            if part.header is None:
                part.header = CSV_COLUMN_HEADER
            self._pieces.append(rows)
            part.items += len(obj)
            return
        df = _frame(obj)
        if self.fmt == "parquet":
            self._pieces.append(_arrow_table(df))
            part.items += len(df)
            return
        if len(df.columns) == 0:
            return
        if part.header is None:
            part.header = df.head(0).to_csv(index=False, lineterminator="\n")
        self._pieces.append(df.to_csv(header=False, index=False, lineterminator="\n"))
        part.items += len(df)

    def result(self) -> Part:
        part = self._part
        assert part is not None
        if self.fmt == "parquet":
            part.body = _ipc(self._pieces)
        elif self.fmt == "json":
            part.body = ",\n".join(self._pieces).encode()
        else:
            part.body = "".join(self._pieces).encode()
        return part


def _arrow_table(df: Any) -> Any:
    import pyarrow as pa

    df.columns = [str(c) for c in df.columns]  # Parquet column names are strings
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise MlpackError(f"cannot write the results as Parquet: {exc}") from exc


def _ipc(tables: list[Any]) -> bytes:
    import pyarrow as pa

    if not tables:
        return b""
    schema = tables[0].schema
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        for table in tables:
            writer.write_table(table if table.schema.equals(schema) else table.cast(schema))
    return sink.getvalue().to_pybytes()


def _tables(body: bytes) -> list[Any]:
    import pyarrow as pa

    return list(pa.ipc.open_stream(body).read_all().to_batches()) if body else []


class OrderedOutput:
    """Parts written in order to one document (a file or a text stream) or to a folder of parts."""

    def __init__(self, fmt: str, stream: IO[Any] | None = None, folder: Path | None = None) -> None:
        self.fmt, self.stream, self.folder = fmt, stream, folder
        self.rows = 0
        self._header = False
        self._writer: Any = None

    def add(self, index: int, part: Part) -> None:
        if self.folder is not None:
            self._write_part_file(index, part)
        elif self.fmt == "parquet":
            self._add_parquet(part)
        elif self.fmt == "json":
            if part.items:
                self._text(("[\n" if self.rows == 0 else ",\n") + part.body.decode())
        elif self.fmt == "csv":
            if part.header is not None and not self._header:
                self._text(part.header)
                self._header = True
            self._text(part.body.decode())
        else:
            self._text(part.body.decode())
        self.rows += part.items

    def _text(self, text: str) -> None:
        if text:
            assert self.stream is not None
            self.stream.write(text)

    def _add_parquet(self, part: Part) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for batch in _tables(part.body):
            table = pa.Table.from_batches([batch])
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.stream, table.schema)
            elif not table.schema.equals(self._writer.schema):
                table = table.cast(self._writer.schema)  # e.g. an all-null column in a later part
            self._writer.write_table(table)

    def close(self) -> None:
        """Finish the document (``[]`` or the closing bracket, the Parquet footer)."""
        if self.folder is not None:
            return
        if self.fmt == "json":
            self._text("[]\n" if self.rows == 0 else "\n]\n")
        elif self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            if self._writer is None:
                pq.write_table(pa.table({}), self.stream)
            else:
                self._writer.close()

    def _write_part_file(self, index: int, part: Part) -> None:
        assert self.folder is not None
        path = self.folder / f"part-{index:05d}{PART_EXTENSIONS[self.fmt]}"
        if self.fmt == "parquet":
            with open(path, "wb") as f:
                one = OrderedOutput("parquet", f)
                one.add(index, part)
                one.close()
            return
        with open(path, "w", encoding="utf-8", newline="") as f:
            one = OrderedOutput(self.fmt, f)
            one.add(index, part)
            one.close()


@contextlib.contextmanager
def atomic_folder(path: Path):  # noqa: ANN201 - a context manager yielding the folder to fill
    """A temporary folder next to ``path``, renamed onto it on success (``path`` absent or empty)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BadInput(f"--output-dir {path} exists and is not an empty folder; choose another or remove it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        yield tmp
        if path.exists():
            path.rmdir()
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
