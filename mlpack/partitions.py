"""Input partitions for distributed runs: planned on the client, read on the workers.

The client only lists the input files and finds partition boundaries: byte ranges that
start at a line start for CSV, JSON Lines and text (a few small reads per boundary), groups
of row groups for Parquet (from the footer), a whole file for a JSON document. A worker
reads its own partition (local path or any fsspec URL) and hands the descriptor a stream
that reads like a small file: a CSV partition after the first gets the file's header line
in front, so the descriptor sees what a local run sees.

Messages of a partition number rows and lines from its start; ``place`` turns them into the
file's own numbers once the partitions before it have reported how many rows and lines
they held.
"""

from __future__ import annotations

import glob
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from .exceptions import BadInput, MissingDependency
from .io.sources import ALLOWED, EXTENSIONS, _csv_fields, file_format

DEFAULT_PARTITION_BYTES = 64 << 20
MIN_PARTITION_BYTES = 1 << 20
_LINE_FORMATS = ("csv", "jsonl", "text")


@dataclass(frozen=True)
class Partition:
    """Rows ``[lo, hi)`` of one input file: bytes for line formats, row groups for Parquet."""

    index: int  # position in the output
    url: str  # what a worker opens: an absolute path or an fsspec URL
    name: str  # the file as messages show it
    fmt: str  # csv, jsonl, json, parquet or text
    lo: int = 0
    hi: int = -1  # -1: to the end
    header: bytes | None = None  # the header line, put in front of a CSV partition after the first
    first: bool = True  # the first partition of its file
    row_groups: tuple[int, ...] = ()


def _is_url(spec: str) -> bool:
    return "://" in spec and not spec.startswith("file://")


def _fs(url: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec comes with dask
        raise MissingDependency("reading URLs needs fsspec: pip install 'mlpack[dask]'") from exc
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise MissingDependency(f"cannot read {url}: {exc} (for s3:// URLs: pip install 'mlpack[s3]')") from exc


def list_inputs(spec: str, fmt: str | None) -> list[tuple[str, str]]:
    """``(url, name)`` of every input file ``spec`` names (a file, a glob or a folder), sorted."""
    wanted = (lambda name: True) if fmt else (lambda name: Path(name).suffix.lower() in EXTENSIONS)
    if not _is_url(spec):
        spec = spec.removeprefix("file://")
        if os.path.isdir(spec):
            names = sorted(os.path.join(spec, n) for n in os.listdir(spec) if not n.startswith((".", "_")))
            found = [n for n in names if os.path.isfile(n) and wanted(n)]
        elif glob.has_magic(spec):
            found = sorted(n for n in glob.glob(spec) if os.path.isfile(n))
        else:
            found = [spec] if os.path.isfile(spec) else []
        if not found:
            many = os.path.isdir(spec) or glob.has_magic(spec)
            raise BadInput(f"no input files in {spec}" if many else f"no such file: {spec}")
        return [(os.path.abspath(n), n) for n in found]
    fs, root = _fs(spec)
    protocol = spec.split("://", 1)[0]
    if glob.has_magic(root):
        paths = sorted(fs.glob(root))
    elif fs.isdir(root):
        paths = sorted(p for p in fs.ls(root, detail=False) if not Path(p).name.startswith((".", "_")) and wanted(p))
    elif fs.isfile(root):
        paths = [root]
    else:
        raise BadInput(f"no such file: {spec}")
    paths = [p for p in paths if fs.isfile(p)]
    if not paths:
        raise BadInput(f"no input files in {spec}")
    return [(f"{protocol}://{p}", f"{protocol}://{p}") for p in paths]


def open_input(url: str) -> IO[bytes]:
    if not _is_url(url):
        try:
            return open(url, "rb")  # noqa: SIM115
        except OSError as exc:
            raise BadInput(f"cannot read {url}: {exc.strerror or exc}") from exc
    fs, path = _fs(url)
    return fs.open(path, "rb")


def plan(spec: str, fmt: str | None, descriptor: Any, partition_bytes: int | None, workers: int = 2) -> list[Partition]:
    """The partitions of every input file, in output order.

    ``partition_bytes`` None: sizes that shrink as the input goes (``shrinking_sizes``).
    """
    from .io import Text

    files = list_inputs(spec, fmt)
    sizes = [_size(url) for url, _ in files]
    block = (lambda done: partition_bytes) if partition_bytes else shrinking_sizes(sum(sizes), workers)
    parts: list[Partition] = []
    done = 0  # bytes of the files before this one
    for (url, name), size in zip(files, sizes):
        kind = "text" if isinstance(descriptor, Text) else file_format(name, fmt)
        here = lambda offset, done=done: block(done + offset)  # noqa: E731 - sizes by position in the whole input
        if kind == "parquet":
            found = _parquet_parts(url, name, here)
        elif kind in _LINE_FORMATS:
            found = _line_parts(url, name, kind, size, here, descriptor)
        else:
            found = [Partition(0, url, name, kind)]
        parts += [replace(p, index=len(parts) + i) for i, p in enumerate(found)]
        done += size
    return parts


def shrinking_sizes(total: int, workers: int) -> Callable[[int], int]:
    """Partition size by position: a share of what is left, so that the last partitions are small.

    Each partition is 1/(2 x workers) of the bytes left from its start (between
    ``MIN_PARTITION_BYTES`` and ``DEFAULT_PARTITION_BYTES``): few partitions, so that each
    costs little per row, and the last ones small, so that no worker finishes long after
    the others (guided self-scheduling).
    """
    share = 2 * max(workers, 1)
    return lambda done: min(DEFAULT_PARTITION_BYTES, max(MIN_PARTITION_BYTES, (total - done) // share + 1))


def _size(url: str) -> int:
    if not _is_url(url):
        return os.path.getsize(url)
    fs, path = _fs(url)
    return int(fs.size(path))


def _line_parts(url: str, name: str, fmt: str, size: int, block: Callable[[int], int], descriptor: Any) -> list[Partition]:
    with open_input(url) as f:
        header = None
        start = 0
        if fmt == "csv":
            for line in iter(f.readline, b""):
                if line.strip():
                    header = line.removeprefix(b"\xef\xbb\xbf")
                    start = f.tell()
                    break
            if header is not None and not _has_header(descriptor, header):
                header = None
        bounds = [0]
        pos = max(block(0), start)
        while pos < size:
            f.seek(pos)
            f.readline()  # to the start of the next line
            end = f.tell()
            if end >= size:
                break
            bounds.append(end)
            pos = end + block(end)
    bounds.append(size)
    return [
        Partition(0, url, name, fmt, lo, hi, header if i else None, first=i == 0)
        for i, (lo, hi) in enumerate(zip(bounds, bounds[1:]))
    ]


def _has_header(descriptor: Any, line: bytes) -> bool:
    """Whether the descriptor's reader takes this first line as a header (as ``mlpack.io`` decides)."""
    from .io import NumpyNdarray, PandasDataFrame
    from .io.csv_numeric import _num

    try:
        fields = _csv_fields(line.decode())
    except UnicodeDecodeError:
        return True  # the worker's reader reports it with its line
    if isinstance(descriptor, NumpyNdarray):
        return not any(_num(x) for x in fields)
    names = descriptor.columns if isinstance(descriptor, PandasDataFrame) else None
    return not (names and len(fields) == len(names) and not set(fields) & {str(n) for n in names})


def _parquet_parts(url: str, name: str, block: Callable[[int], int]) -> list[Partition]:
    pq = _pyarrow_parquet()
    try:
        with open_input(url) as f:
            meta = pq.ParquetFile(f).metadata
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError...
        raise BadInput(f"{name} is not a readable Parquet file: {exc}") from exc
    sizes = [meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)]
    # ``block`` takes a position in the file's bytes; row groups count theirs uncompressed
    ratio = max(sum(sizes), 1) / max(_size(url), 1)
    groups: list[list[int]] = []
    filled = wanted = offset = 0  # offset: uncompressed bytes of the groups before
    for i, group in enumerate(sizes):
        if filled >= wanted:
            groups.append([])
            filled, wanted = 0, block(int(offset / ratio))
        groups[-1].append(i)
        filled += group
        offset += group
    if not groups:
        return [Partition(0, url, name, "parquet")]
    return [Partition(0, url, name, "parquet", row_groups=tuple(g), first=i == 0) for i, g in enumerate(groups)]


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependency("reading Parquet files needs pyarrow: pip install 'mlpack[parquet]'") from exc
    return pq


# ---------------------------------------------------------------- on the worker


@dataclass
class Opened:
    """A partition as the descriptor reads it, and what it held (for placing later messages)."""

    source: Any  # a stream, or a path to a temporary Parquet file
    newlines: int  # line endings in the partition's own bytes
    prefix_lines: int  # lines put in front (the header)


def read(part: Partition, scratch: Path) -> Opened:
    """Read a partition on a worker; ``scratch`` holds a temporary file for Parquet."""
    if part.fmt == "parquet":
        pq = _pyarrow_parquet()
        with open_input(part.url) as f:
            pf = pq.ParquetFile(f)
            table = pf.read_row_groups(list(part.row_groups)) if part.row_groups else pf.read()
        fd, tmp = tempfile.mkstemp(suffix=".parquet", dir=scratch)
        os.close(fd)
        pq.write_table(table, tmp)
        return Opened(tmp, 0, 0)
    with open_input(part.url) as f:
        f.seek(part.lo)
        data = f.read() if part.hi < 0 else f.read(part.hi - part.lo)
    newlines = data.count(b"\n")
    prefix = part.header or b""
    if prefix and not prefix.endswith(b"\n"):
        prefix += b"\n"
    buf = io.BytesIO(prefix + data if prefix else data)
    if part.fmt in ("csv", "text"):
        return Opened(io.TextIOWrapper(buf, encoding="utf-8", newline=""), newlines, int(bool(prefix)))
    return Opened(buf, newlines, 0)


def chunks(descriptor: Any, opened: Opened, part: Partition, chunk_size: int) -> Iterator[Any]:
    """The descriptor's chunks of an opened partition, named after the input file."""
    return descriptor._iter(opened.source, part.fmt, chunk_size, part.name)


# ---------------------------------------------------------------- messages

_ROW = re.compile(r"\b(rows?) (\d+)(?:-(\d+))?(?=[ :,)]| of )")
_LINE = re.compile(r"\b(lines?) (\d+)(?:-(\d+))?(?= of |\))")


def place(message: str, rows_before: int, lines_before: int, prefix_lines: int) -> str:
    """A partition's message with the file's row and line numbers (the first of each)."""

    def shifter(shift: int):  # noqa: ANN202
        def sub(m: re.Match[str]) -> str:
            a = int(m.group(2)) + shift
            b = f"-{int(m.group(3)) + shift}" if m.group(3) else ""
            return f"{m.group(1)} {a}{b}"

        return sub

    message = _ROW.sub(shifter(rows_before), message, count=1)
    return _LINE.sub(shifter(lines_before - prefix_lines), message, count=1)


__all__ = ["ALLOWED", "Partition", "chunks", "list_inputs", "place", "plan", "read"]
