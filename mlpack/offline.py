"""Offline prediction (``mlpack run``): a service's API over an input file, without HTTP.

The file is read in chunks (``api.input.iter_file``) and each chunk goes through the API's
own function, so user pre- and post-processing runs and the models run through the same
Runner the server uses. Results are streamed chunk by chunk to the output writer: memory is
bounded by the chunk size and rows keep their order.

- Table-shaped inputs (``NumpyNdarray``, ``PandasDataFrame``) get the whole chunk in one call.
- Per-record inputs (``JSON``, ``Text``) get one call per record (a validated pydantic
  model, a JSON value, a line). Async functions of a chunk run concurrently, a window at a
  time, so that the runner's micro-batcher can merge their model calls.
- An output file is written next to its final path and renamed at the end: a failed run
  leaves no half-written file.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .exceptions import BadInput, MissingDependency, MlpackError

if TYPE_CHECKING:
    from .service import API, Service

__all__ = ["DEFAULT_BATCH_SIZE", "RunStats", "get_api", "run_chunks", "run_file", "run_text"]

# A numeric CSV reads ~1.6x faster in 50k-row chunks than in 10k-row ones (fewer parser
# and model calls), and 50k rows of a few dozen float columns are still only tens of MB.
DEFAULT_BATCH_SIZE = 50_000
# Async per-record calls in flight at once: enough to fill the micro-batcher's batches,
# few enough that none waits past the batcher's latency deadline.
RECORD_WINDOW = 256
PARQUET_SUFFIXES = (".parquet", ".pq")

Progress = Callable[[int], None]


@dataclass(frozen=True)
class RunStats:
    rows: int  # input rows (records, lines) processed
    chunks: int
    seconds: float


def get_api(service: Service, name: str) -> API:
    """The API called ``name``; BadInput listing the service's APIs otherwise."""
    api = service.apis.get(name)
    if api is None:
        names = ", ".join(service.apis) or "none"
        raise BadInput(f"service {service.name} has no API {name!r}; its APIs: {names}")
    return api


def run_file(
    service: Service,
    api_name: str,
    input_path: str | Path,
    output: str | Path | IO[str],
    *,
    fmt: str | None = None,
    out_fmt: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> RunStats:
    """Run API ``api_name`` over every row of ``input_path`` and write the results to ``output``.

    ``output`` is a path (written atomically; ``.parquet`` writes Parquet) or a text stream.
    ``fmt`` is the input format (default: from the extension), ``out_fmt`` the output format
    (default: from the output file's extension, else json). ``progress(rows)`` is called after
    each chunk with the number of rows it held.
    """
    api = get_api(service, api_name)
    chunks = api.input.iter_file(input_path, fmt, chunk_size=batch_size)  # checks file and format now
    started = time.perf_counter()
    with _open_output(output, out_fmt, api) as writer:
        rows, count = run_chunks(service, api, chunks, writer.write, progress=progress)
    return RunStats(rows, count, time.perf_counter() - started)


def run_chunks(
    service: Service, api: API, chunks: Iterable[Any], write: Callable[[Any], Any], *, progress: Progress | None = None
) -> tuple[int, int]:
    """The work of one input, shared by the local and Dask engines: ``(rows, chunks)`` done.

    Each chunk (as the API's input descriptor reads it) goes through the API function and
    its result to ``write``. Rows are numbered from 1 within ``chunks`` in error messages.
    """
    per_record = _per_record(api)
    rows = count = 0
    with _Caller(service, api) as call:
        for chunk in chunks:
            n = len(chunk)
            write(call(chunk, per_record, rows))
            rows += n
            count += 1
            if progress is not None:
                progress(n)
    return rows, count


def run_text(
    service: Service,
    api_name: str,
    text: str,
    output: str | Path | IO[str],
    *,
    fmt: str | None = None,
    out_fmt: str | None = None,
) -> RunStats:
    """Call API ``api_name`` once on ``--input`` text (JSON unless ``fmt``), like an HTTP request.

    The result is written as the HTTP response would be for json output (one document,
    not an array of rows); other formats write its rows.
    """
    api = get_api(service, api_name)
    value = api.input.from_cli(text=text, fmt=fmt)
    started = time.perf_counter()
    out_fmt = _output_format(output, out_fmt)
    with _Caller(service, api) as call:
        result = call(value, False, 0)
    if out_fmt == "parquet":
        with _open_output(output, out_fmt, api) as writer:
            writer.write(result)
    else:
        with _atomic(output, binary=False) as stream:
            stream.write(api.output.to_cli(result, out_fmt) + "\n")
    return RunStats(1, 1, time.perf_counter() - started)


def _per_record(api: API) -> bool:
    from .io import JSON, Text

    return isinstance(api.input, (JSON, Text)) and not api.batch


# ---------------------------------------------------------------- calling the API


class _Caller:
    """Calls an API function outside a server: sync ones directly, async ones on one event loop.

    Loads every runner of the service first, so that a model error shows before any output.
    """

    def __init__(self, service: Service, api: API) -> None:
        self.service, self.api = service, api
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> _Caller:
        for runner in self.service.runners:
            runner.load()
        return self

    def __exit__(self, *_: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.run_until_complete(self._close_runners())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
            self._loop = None

    async def _close_runners(self) -> None:
        for runner in self.service.runners:
            await runner.close()

    def __call__(self, value: Any, per_record: bool, start: int) -> Any:
        """The API's result for ``value`` (a list of results when ``per_record``)."""
        func = self.api.func
        if self.api.is_async:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(self._call_async(value, per_record, start))
        if not per_record:
            return self._guard(func, value, _rows_label(start, value))
        return [self._guard(func, record, f"row {start + i + 1}") for i, record in enumerate(value)]

    async def _call_async(self, value: Any, per_record: bool, start: int) -> Any:
        func = self.api.func
        if not per_record:
            try:
                return await func(value)
            except Exception as exc:
                raise self._failed(exc, _rows_label(start, value)) from exc
        out: list[Any] = []
        for lo in range(0, len(value), RECORD_WINDOW):
            window = value[lo : lo + RECORD_WINDOW]
            # return_exceptions: every call of the window ends before we raise, and the
            # error reported is the one of the first failing row, whatever the timing
            results = await asyncio.gather(*(func(record) for record in window), return_exceptions=True)
            for i, res in enumerate(results):
                if isinstance(res, BaseException):
                    if not isinstance(res, Exception):
                        raise res
                    raise self._failed(res, f"row {start + lo + i + 1}") from res
            out.extend(results)
        return out

    def _guard(self, func: Callable[[Any], Any], value: Any, where: str) -> Any:
        try:
            return func(value)
        except Exception as exc:
            raise self._failed(exc, where) from exc

    def _failed(self, exc: Exception, where: str) -> Exception:
        if isinstance(exc, MlpackError):  # already says what is wrong (bad input, overload...)
            return exc
        return MlpackError(f"API {self.api.name!r} failed on {where}: {type(exc).__name__}: {exc}")


def _rows_label(start: int, value: Any) -> str:
    try:
        n = len(value)
    except TypeError:  # a scalar or 0-d array from --input
        n = 1
    return f"row {start + 1}" if n == 1 else f"rows {start + 1}-{start + n}"


# ---------------------------------------------------------------- output


def _output_format(output: str | Path | IO[str], fmt: str | None) -> str:
    """``fmt``, else the output file's extension (``.parquet``: parquet), else json."""
    from .io import output_format

    path = None if hasattr(output, "write") else Path(output)  # type: ignore[arg-type]
    if (fmt or "").lower() in ("parquet", "pq"):
        return "parquet"
    if fmt is None and path is not None and path.suffix.lower() in PARQUET_SUFFIXES:
        return "parquet"
    return output_format(path, fmt)


@contextlib.contextmanager
def _open_output(output: str | Path | IO[str], fmt: str | None, api: API) -> Iterator[Any]:
    """A chunk writer on ``output``; closed (the document finished) only on success."""
    out_fmt = _output_format(output, fmt)
    if out_fmt == "parquet":
        if hasattr(output, "write"):
            raise BadInput("parquet output needs an output file")
        _parquet_modules()  # fail before any work when pyarrow is missing
    with _atomic(output, binary=out_fmt == "parquet") as stream:
        writer = _ParquetWriter(stream) if out_fmt == "parquet" else api.output.writer(stream, out_fmt)
        yield writer
        writer.close()


@contextlib.contextmanager
def _atomic(output: str | Path | IO[Any], binary: bool) -> Iterator[IO[Any]]:
    """A stream as is, or a new file beside the path (umask honoured), renamed onto it on success."""
    if hasattr(output, "write"):
        yield _StreamGuard(output)  # type: ignore[arg-type]
        return
    from .fsutil import atomic_output

    with atomic_output(output, binary=binary) as stream:  # type: ignore[arg-type]
        yield stream


class _StreamGuard:
    """Writes to a stream (stdout) whose failure (a full disk, a closed terminal) is one clear error."""

    def __init__(self, raw: IO[Any]) -> None:
        self.raw = raw

    def write(self, data: Any) -> int:
        try:
            return self.raw.write(data)
        except BrokenPipeError:
            raise  # `| head`: the CLI ends quietly
        except OSError as exc:
            from .fsutil import os_error

            raise os_error(exc, "write the results to", getattr(self.raw, "name", "the output")) from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def _parquet_modules() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependency("writing Parquet files needs pyarrow: pip install 'mlpack[parquet]'") from exc
    return pa, pq


class _ParquetWriter:
    """Each chunk's result as a table (as for csv output), appended as Parquet row groups."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.rows = 0
        self._writer: Any = None

    def write(self, obj: Any) -> int:
        from .io import _frame

        pa, pq = _parquet_modules()
        df = _frame(obj)
        df.columns = [str(c) for c in df.columns]  # Parquet column names are strings
        try:
            table = pa.Table.from_pandas(df, preserve_index=False)
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.stream, table.schema)
            elif not table.schema.equals(self._writer.schema):
                table = table.cast(self._writer.schema)  # e.g. an all-null column in a later chunk
            self._writer.write_table(table)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise MlpackError(f"cannot write the results as Parquet: {exc}") from exc
        self.rows += len(df)
        return len(df)

    def close(self) -> None:
        pa, pq = _parquet_modules()
        if self._writer is None:  # no rows: still a valid (empty) file
            pq.write_table(pa.table({}), self.stream)
        else:
            self._writer.close()
