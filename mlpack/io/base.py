"""``IODescriptor``, the base of every descriptor, and the helpers descriptors share:
content types, text decoding, JSON parsing, shape checks and dtype names."""

from __future__ import annotations

import abc
import io as _io
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from ..exceptions import BadInput
from .readers import json_error
from .sources import file_format
from .writer import ChunkWriter, output_format, to_json_bytes

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

DEFAULT_CHUNK_SIZE = 10_000
JSON_TYPES = ("application/json",)
_UTF8 = (None, "utf-8", "utf8", "us-ascii", "ascii")


@lru_cache(maxsize=256)  # clients send the same few headers over and over
def _content_type(value: str | None) -> tuple[str | None, str | None]:
    """``(media type, charset)`` of a content-type header, lower-cased."""
    if not value:
        return None, None
    mime, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, val = param.strip().partition("=")
        if key.lower() == "charset":
            charset = val.strip().strip('"').lower() or None
    return mime.strip().lower() or None, charset


def _decode_text(body: bytes, charset: str | None, source: str) -> str:
    try:
        return body.decode(charset or "utf-8")
    except LookupError as exc:
        raise BadInput(f"unknown charset {charset!r}", status=415) from exc
    except UnicodeDecodeError as exc:
        raise BadInput(f"{source} is not valid {charset or 'utf-8'} text: {exc.reason} at byte {exc.start}") from exc


def _loads(body: bytes, charset: str | None, source: str) -> Any:
    import orjson

    if not body or body.isspace():
        raise BadInput(f"{source} is empty; expected JSON")
    data: bytes | str = body if charset in _UTF8 else _decode_text(body, charset, source)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise json_error(exc, source) from exc


def json_kind(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", dict: "an object", list: "an array"}.get(type(value), type(value).__name__)


def _check_shape(got: tuple[int, ...], want: tuple[int, ...], source: str, batch: bool) -> None:
    """``want`` with -1 for any size; in a batch (a file chunk) the first axis is free."""
    if len(got) == len(want) and all(w in (-1, g) or (batch and i == 0) for i, (w, g) in enumerate(zip(want, got))):
        return
    if batch and len(got) == len(want) == 2:
        raise BadInput(f"rows of {source} have {got[1]} values, expected {want[1]}", status=422)
    raise BadInput(f"{source} has shape {tuple(got)}, expected {tuple(want)} (-1: any size)", status=422)


def _json_type(dtype: Any) -> dict[str, Any]:
    """JSON Schema of one value of a numpy/pandas dtype."""
    import numpy as np

    try:
        kind = np.dtype(dtype).kind
    except TypeError:  # pandas-only dtypes ("category", "string")
        return {}
    return {"f": {"type": "number"}, "i": {"type": "integer"}, "u": {"type": "integer"}, "b": {"type": "boolean"},
            "U": {"type": "string"}, "S": {"type": "string"},
            "M": {"type": "string", "format": "date-time"}}.get(kind, {})  # fmt: skip


def _dtype_name(dtype: Any) -> str:
    import numpy as np

    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype)


# ---------------------------------------------------------------- descriptors


class IODescriptor(abc.ABC):
    """How one API reads its input or writes its output."""

    media_type: ClassVar[str] = "application/json"
    accepted_types: ClassVar[tuple[str, ...]] = JSON_TYPES  # request content types

    # -- HTTP

    async def from_http_request(self, request: Request) -> Any:
        """The API's argument from a request; BadInput 400 (syntax), 415 (type) or 422 (validation)."""
        mime, charset = self.http_content_type(request.headers.get("content-type"))
        return self._parse(await request.body(), mime, charset, "request body")

    def http_content_type(self, value: str | None) -> tuple[str, str | None]:
        """``(media type, charset)`` this descriptor reads a request with that content-type as; BadInput 415."""
        mime, charset = _content_type(value)
        return self._accept(mime), charset

    def from_http_body(self, body: bytes, mime: str, charset: str | None) -> Any:
        """The API's argument from a whole request body (the server's path without a Request object)."""
        return self._parse(body, mime, charset, "request body")

    def _accept(self, mime: str | None) -> str:
        if mime is None or mime == "*/*":
            return self.media_type
        if mime in self.accepted_types:
            return mime
        if mime.endswith("+json") and "application/json" in self.accepted_types:
            return "application/json"
        hint = f" (curl: -H 'content-type: {self.media_type}')" if mime == "application/x-www-form-urlencoded" else ""
        raise BadInput(f"unsupported content-type {mime!r}; this API accepts {', '.join(self.accepted_types)}{hint}", status=415)

    @abc.abstractmethod
    def _parse(self, body: bytes, mime: str, charset: str | None, source: str) -> Any:
        """The API's argument from a body of type ``mime`` (request, ``--input``, a .json file)."""

    def _encode(self, obj: Any) -> bytes:
        """The response body, in ``media_type``."""
        return to_json_bytes(obj)

    def to_http_response(self, obj: Any, status_code: int = 200) -> Response:
        from starlette.responses import Response

        return Response(self._encode(obj), status_code=status_code, media_type=self.media_type)

    # -- CLI and files

    def from_cli(self, text: str | None = None, path: str | Path | None = None, fmt: str | None = None) -> Any:
        """The API's argument from ``--input`` text (JSON unless ``fmt``) or a whole ``--input-file``."""
        if (text is None) == (path is None):
            raise BadInput("give either input text or an input file")
        if text is not None:
            return self._parse_text(text, fmt)
        _check_file(path)
        fmt = file_format(path, fmt)
        if fmt == "json":  # a .json file is what an HTTP client would send
            return self._parse(Path(path).read_bytes(), "application/json", None, str(path))
        return self._concat(list(self._iter(path, fmt, DEFAULT_CHUNK_SIZE, str(path))))

    def _parse_text(self, text: str, fmt: str | None) -> Any:
        fmt = file_format(None, fmt) if fmt else "json"
        if fmt == "json":
            return self._parse(text.encode(), "application/json", None, "input")
        return self._concat(list(self._iter(_io.StringIO(text), fmt, DEFAULT_CHUNK_SIZE, "input")))

    def iter_file(self, path: str | Path, fmt: str | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[Any]:
        """Chunks of at most ``chunk_size`` rows of a csv/json/jsonl/parquet file, in order.

        Format and file are checked now; rows are read as the iterator advances.
        """
        _check_file(path)
        fmt = file_format(path, fmt)
        if chunk_size < 1:
            raise BadInput(f"chunk size must be at least 1, not {chunk_size}")
        return self._iter(path, fmt, chunk_size, str(path))

    @abc.abstractmethod
    def _iter(self, source: str | Path | IO[str], fmt: str, chunk_size: int, name: str) -> Iterator[Any]: ...

    @abc.abstractmethod
    def _concat(self, chunks: list[Any]) -> Any: ...

    def to_cli(self, obj: Any, fmt: str = "json") -> str:
        """One result as text for the terminal (no trailing newline)."""
        fmt = output_format(None, fmt)
        if fmt == "json":
            return self._encode(obj).decode()
        buf = _io.StringIO()
        with self.writer(buf, fmt) as writer:
            writer.write(obj)
        return buf.getvalue().rstrip("\n")

    def writer(self, stream: IO[str], fmt: str = "json") -> ChunkWriter:
        """A writer that turns the results of many chunks into one document."""
        return ChunkWriter(stream, fmt)

    # -- OpenAPI and bundle.yaml

    @abc.abstractmethod
    def openapi_schema(self, contract: dict[str, Any] | None = None) -> dict[str, Any]:
        """JSON Schema of the payload: what the server accepts, no more and no less.

        ``contract`` is a model's input contract (``model.yaml``'s ``input_contract``), for
        descriptors that leave shape or dtype open; the others ignore it.
        """

    def openapi_components(self) -> dict[str, Any]:
        """Schemas the payload schema refers to, ``{name: schema}``, for ``components.schemas``."""
        return {}

    def _request_types(self) -> tuple[str, ...]:
        return (self.media_type,)

    def openapi_request_body(self, contract: dict[str, Any] | None = None) -> dict[str, Any]:
        schema = self.openapi_schema(contract)
        content = {
            t: {"schema": schema if t in JSON_TYPES + ("text/plain",) else {"type": "string"}} for t in self._request_types()
        }
        return {"required": True, "content": content}

    def openapi_responses(self) -> dict[str, Any]:
        """The OpenAPI response object of a successful call (``responses["200"]``)."""
        return {"description": "Successful Response", "content": {self.media_type: {"schema": self.openapi_schema()}}}

    @abc.abstractmethod
    def to_spec(self) -> dict[str, Any]:
        """A small description for bundle.yaml."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_spec().items() if k != "type")
        return f"{type(self).__name__}({args})"


def _check_file(path: str | Path) -> None:
    """A readable input file, or an error that says why not (before its format is looked at)."""
    p = Path(path)
    if p.is_dir():
        raise BadInput(f"{path} is a directory, not an input file")
    if not p.exists():
        raise BadInput(f"no such file: {path}")
