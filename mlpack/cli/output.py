"""Rendering results: aligned tables on stdout, json/yaml for machines, one-line errors."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

FORMATS = ("table", "json", "yaml")


def _color(stream: Any) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def error_line(message: str) -> None:
    """One red line on stderr."""
    text = " ".join(message.split("\n"))
    prefix = "\033[31merror:\033[0m" if _color(sys.stderr) else "error:"
    sys.stderr.write(f"{prefix} {text}\n")


def info_line(message: str) -> None:
    sys.stderr.write(f"{message}\n")


@contextlib.contextmanager
def _stdout_errors() -> Iterator[None]:
    """A full disk or closed file behind stdout is one error line (a gone reader stays quiet)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        from ..fsutil import os_error

        raise os_error(exc, "write to", "stdout") from exc


def write_stdout(text: str) -> None:
    with _stdout_errors():
        sys.stdout.write(text)


def emit(data: Any, fmt: str) -> None:
    """Write ``data`` to stdout as json or yaml."""
    if fmt == "json":
        write_stdout(json.dumps(data, indent=2, default=str) + "\n")
    elif fmt == "yaml":
        from ..yamlio import dumps_yaml

        write_stdout(dumps_yaml(data))
    else:
        raise ValueError(fmt)


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Aligned columns, the header bold on a terminal; cells are never cut (tags get copied).

    Written out rather than drawn with rich: with fixed widths, no box and no wrapping there is
    nothing left for rich to do but the bold header, and importing it cost ``models list`` a
    third of its start-up.
    """
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    header = line(columns)
    if _color(sys.stdout):
        header = f"\033[1m{header}\033[0m"
    write_stdout("\n".join([header, *(line(row) for row in rows)]) + "\n")


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def local_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def parse_labels(pairs: Sequence[str] | None) -> dict[str, str]:
    from ..exceptions import BadInput

    labels = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadInput(f"label {pair!r} is not key=value")
        labels[key] = value
    return labels
