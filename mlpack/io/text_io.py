"""``Text``: plain text in and out; files are read as lines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..exceptions import BadInput
from .base import DEFAULT_CHUNK_SIZE, IODescriptor, _check_file, _decode_text
from .sources import open_source
from .writer import output_format, to_json_bytes


class Text(IODescriptor):
    """Plain text in and out. Files are read as lines; chunks are lists of lines."""

    media_type = "text/plain"
    accepted_types = ("text/plain",)

    def _accept(self, mime: str | None) -> str:
        if mime is not None and mime.startswith("text/"):
            return mime
        return super()._accept(mime)

    def _parse(self, body: bytes, mime: str, charset: str | None, source: str) -> str:
        return _decode_text(body, charset, source)

    def _encode(self, obj: Any) -> bytes:
        if isinstance(obj, bytes):
            return obj
        return (obj if isinstance(obj, str) else str(obj)).encode()

    def _parse_text(self, text: str, fmt: str | None) -> str:
        return text

    def from_cli(self, text: str | None = None, path: str | Path | None = None, fmt: str | None = None) -> str:
        if text is None and path is not None:
            _check_file(path)
            return _decode_text(Path(path).read_bytes(), None, str(path))
        return super().from_cli(text, path, fmt)

    def iter_file(self, path: str | Path, fmt: str | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[list[str]]:
        _check_file(path)
        if chunk_size < 1:
            raise BadInput(f"chunk size must be at least 1, not {chunk_size}")
        return self._iter(path, "text", chunk_size, str(path))

    def _iter(self, source: str | Path | IO[str], fmt: str, chunk_size: int, name: str) -> Iterator[list[str]]:
        with open_source(source) as f:
            lines: list[str] = []
            for line in f:
                lines.append(line.rstrip("\r\n"))
                if len(lines) == chunk_size:
                    yield lines
                    lines = []
            if lines:
                yield lines

    def _concat(self, chunks: list[Any]) -> str:
        return "\n".join(line for chunk in chunks for line in chunk)

    def to_cli(self, obj: Any, fmt: str = "json") -> str:
        """``table`` prints the text as it is; ``json`` gives a JSON string."""
        if output_format(None, fmt) == "table":
            return self._encode(obj).decode()
        if output_format(None, fmt) == "json":
            return to_json_bytes(obj).decode()
        return super().to_cli(obj, fmt)

    def openapi_schema(self, contract: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"type": "string"}

    def to_spec(self) -> dict[str, Any]:
        return {"type": "Text"}
