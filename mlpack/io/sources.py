"""Input files: format detection (from ``--input-format`` or the extension) and opening.

``open_source`` opens a path, or passes through a text stream (CLI input), and reports a
file that cannot be read as ``BadInput``.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..exceptions import BadInput

EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
INPUT_FORMATS = ("csv", "json", "jsonl", "parquet")
_ALIASES = {"ndjson": "jsonl", "pq": "parquet"}
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
