"""Input files: format detection (from ``--input-format`` or the extension) and opening.

``open_source`` opens a path, or passes through a text stream (CLI input), and reports a
file that cannot be read as ``BadInput``. Files are read through ``CheckedReader``: a line
with a NUL byte, invalid UTF-8 or more than ``MLPACK_MAX_LINE_BYTES`` (1 MiB) is an error
naming the line, found before the parsers see it (one 20 MB line once took ``run`` past 5 GB),
and so is a CSV line of more than ``MLPACK_MAX_COLUMNS`` (16,384) fields.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from ..exceptions import BadInput, ConfigError

EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
INPUT_FORMATS = ("csv", "json", "jsonl", "parquet")
_ALIASES = {"ndjson": "jsonl", "pq": "parquet"}
DEFAULT_MAX_LINE_BYTES = 1 << 20  # a row of a CSV or JSON Lines file; far above any real one
DEFAULT_MAX_COLUMNS = 1 << 14  # fields of a CSV row: 16,384 columns cost pandas ~35 MB a row
_one_per_line = "a file of one row per line (CSV, JSON Lines)"
ALLOWED = "csv (.csv), json (.json), jsonl (.jsonl, .ndjson), parquet (.parquet, .pq)"


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


@contextlib.contextmanager
def open_source(source: str | Path | IO[Any], mode: str = "r", *, lines: bool = True, fields: bool = False) -> Iterator[IO[Any]]:
    """A path opened for reading through ``CheckedReader``, or a stream (CLI input, already in
    memory) as it is. ``lines=False``: no line-length cap (whole JSON documents); ``fields``:
    a cap on comma-separated fields per line (CSV)."""
    if not isinstance(source, (str, Path)):
        yield source
        return
    try:
        raw = open(source, "rb", buffering=0)  # noqa: SIM115
    except OSError as exc:
        raise BadInput(f"cannot read {source}: {exc.strerror or exc}") from exc
    limits = (_limit("MLPACK_MAX_LINE_BYTES", DEFAULT_MAX_LINE_BYTES) if lines else None,
              _limit("MLPACK_MAX_COLUMNS", DEFAULT_MAX_COLUMNS) if fields else None)  # fmt: skip
    checked = io.BufferedReader(CheckedReader(raw, str(source), *limits), 1 << 16)
    f = checked if "b" in mode else io.TextIOWrapper(checked, encoding="utf-8", newline="")
    with f:
        yield f


def _limit(name: str, default: int, env: Mapping[str, str] | None = None) -> int:
    value = (os.environ if env is None else env).get(name, "")
    if not value:
        return default
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        raise ConfigError(f"{name}={value!r} is not a positive whole number")
    return limit


class LineError(BadInput):
    """A line of an input file that cannot be text: too long, a NUL byte, invalid UTF-8."""

    def __init__(self, name: str, line: int, problem: str) -> None:
        super().__init__(f"line {line} of {name} {problem}", status=422)
        self.name, self.line, self.problem = name, line, problem

    def as_row(self, header_lines: int | None) -> BadInput:
        """The same error in CSV terms: ``row R (line L of NAME) ...`` (as it is if the header is unknown)."""
        if header_lines is None:
            return self
        row = self.line - header_lines
        if row < 1:
            return self
        return BadInput(f"row {row} (line {self.line} of {self.name}) {self.problem}", status=422)


class CheckedReader(io.RawIOBase):
    """The bytes of a text input file, checked as they are read, at C speed.

    Stops with ``LineError`` at the first line that holds a NUL byte, is not UTF-8, is longer
    than ``max_line`` bytes or has more than ``max_fields`` comma-separated fields, so that
    a pathological file costs little memory before the error (a CSV line of 500,000 fields
    takes pandas over 1 GB). Each read is at most the smaller limit, so a line that lies
    inside one read is within both limits, and only the line crossing into a read needs
    counting: a few ``memchr``-like calls per read.
    """

    def __init__(self, raw: IO[bytes], name: str, max_line: int | None, max_fields: int | None = None) -> None:
        self._raw, self.name, self._max, self._max_fields = raw, name, max_line, max_fields
        self._read_size = min(1 << 16, max_line or 1 << 16, max_fields or 1 << 16)
        self._line = 1  # line of the next byte
        self._run = 0  # bytes of that line already read
        self._commas = 0  # commas of that line already read
        self._offset = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._error: LineError | None = None  # found ahead: raised when the reader gets there

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._error is not None:
            raise self._error
        view = memoryview(buffer).cast("B")[: self._read_size]
        n = self._raw.readinto(view)
        if not n:
            self._utf8(b"", final=True)
            return 0
        return self._check(bytes(view[:n]))

    def close(self) -> None:
        self._raw.close()
        super().close()

    def _check(self, data: bytes) -> int:
        """How many bytes of ``data`` to hand out: all, or those before a bad line."""
        first = data.find(b"\n")
        head = len(data) if first < 0 else first  # the end of the line that began before this read
        if self._max is not None:
            if self._run + head > self._max:
                raise LineError(
                    self.name, self._line, f"is longer than {self._max:,} bytes (MLPACK_MAX_LINE_BYTES): is it {_one_per_line}?"
                )
            self._run = self._run + len(data) if first < 0 else len(data) - data.rfind(b"\n") - 1
        if self._max_fields is not None:
            commas = self._commas + data.count(b",", 0, head)
            if commas >= self._max_fields:
                raise LineError(self.name, self._line, f"has more than {self._max_fields:,} fields (MLPACK_MAX_COLUMNS)")
            self._commas = commas if first < 0 else data.count(b",", data.rfind(b"\n") + 1)
        bad: tuple[int, str] | None = None
        if not data.isascii() or self._decoder.getstate()[0]:
            bad = self._utf8(data)
        nul = data.find(b"\0", 0, bad[0] if bad else len(data))
        if nul >= 0:
            bad = (nul, f"holds a NUL byte (byte {self._offset + nul}): is it a binary or UTF-16 file?")
        if bad is not None:
            return self._found(data, *bad)
        self._line += data.count(b"\n")
        self._offset += len(data)
        return len(data)

    def _found(self, data: bytes, pos: int, problem: str) -> int:
        """Hand out the lines before the bad one; the error comes with the next read."""
        start = data.rfind(b"\n", 0, max(pos, 0)) + 1  # where the bad line begins in ``data``
        self._error = LineError(self.name, self._line + data.count(b"\n", 0, start), problem)
        if start == 0:  # it began at or before the start of this read: fail now
            raise self._error
        self._line += data.count(b"\n", 0, start)
        self._offset += start
        return start

    def _utf8(self, data: bytes, final: bool = False) -> tuple[int, str] | None:
        """``(position in data, problem)`` of the first byte that is not UTF-8, else None."""
        held = len(self._decoder.getstate()[0])
        try:
            self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            pos = exc.start - held
            problem = f"is not valid UTF-8 text ({exc.reason} at byte {self._offset + pos}); save it as UTF-8"
            if final:
                raise LineError(self.name, self._line, problem) from None
            return pos, problem
        return None


def _csv_fields(line: str) -> list[str]:
    return next(csv.reader([line]), [])
