"""Fast reader for CSV files of numbers (``NumpyNdarray``), with exact row checks.

Every ragged row is caught with its line: each block of lines is checked at once with
numpy, and only a block that fails the check is split into lines in Python to skip blank
lines and name the bad row.

numpy and pandas are imported inside functions: ``mlpack.io`` must stay cheap to import.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..exceptions import BadInput
from .chunks import Chunk, _names
from .sources import LineError, _csv_fields, open_source


def _num(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def iter_numeric_csv(source: str | Path | IO[str], chunk_size: int, name: str) -> Iterator[Chunk]:
    """CSV of numbers in chunks of ``chunk_size`` rows (see ``_iter_numeric_csv``)."""
    header_lines: list[int | None] = [None]  # known once the first line is read
    try:
        yield from _iter_numeric_csv(source, chunk_size, name, header_lines)
    except LineError as exc:  # from open_source's checks: say it in rows, as for other bad rows
        raise exc.as_row(header_lines[0]) from None


def _iter_numeric_csv(
    source: str | Path | IO[str], chunk_size: int, name: str, header_lines: list[int | None]
) -> Iterator[Chunk]:
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
        header_lines[0] = lineno if has_header else lineno - 1
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
        with open_source(source, "rb", fields=True) as f:
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
