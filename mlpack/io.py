"""IO descriptors: how an API reads its input and writes its output.

``JSON``, ``NumpyNdarray``, ``PandasDataFrame`` and ``Text`` each read an HTTP request,
write an HTTP response, read CLI input (``--input`` text, ``--input-file``), stream input
files in chunks (``iter_file``), write CLI output and describe themselves in OpenAPI.

Offline output of many chunks goes through ``ChunkWriter`` and is always one valid document:

- ``json``: one JSON array holding the rows of every chunk in order (elements of arrays,
  lists and Series; DataFrame rows as records; any other result is one item);
- ``jsonl``: the same items, one per line;
- ``csv``: a header once, then the rows; ``table``: aligned text for a terminal.

numpy, pandas, pyarrow, starlette, pydantic and orjson are imported inside functions so
that ``import mlpack.io`` (and so the CLI) stays fast.
"""

from __future__ import annotations

import abc
import copy
import io as _io
from collections.abc import Callable, Iterator
from functools import cached_property, lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from . import filereaders as fr
from .exceptions import BadInput, ConfigError, MlpackError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from pydantic import BaseModel
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = [
    "JSON", "OUTPUT_FORMATS", "ChunkWriter", "IODescriptor", "NumpyNdarray", "PandasDataFrame", "Text",
    "output_format", "to_json_bytes",
]  # fmt: skip

DEFAULT_CHUNK_SIZE = 10_000
OUTPUT_FORMATS = ("json", "jsonl", "csv", "table")
ORIENTS = ("records", "split", "columns", "index", "values")
JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv", "application/csv")
_OUTPUT_EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "table"}
_UTF8 = (None, "utf-8", "utf8", "us-ascii", "ascii")
_REF = "#/components/schemas/{model}"


def output_format(path: str | Path | None = None, fmt: str | None = None) -> str:
    """The CLI output format: ``fmt`` if given, else from the output file's extension, else json."""
    if fmt:
        fmt = "jsonl" if fmt.lower() == "ndjson" else fmt.lower()
        if fmt not in OUTPUT_FORMATS:
            raise BadInput(f"unknown output format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}")
        return fmt
    return _OUTPUT_EXTENSIONS.get(Path(path).suffix.lower(), "json") if path else "json"


# ---------------------------------------------------------------- JSON encoding


def _default(obj: Any) -> Any:
    """What orjson cannot write by itself (OPT_SERIALIZE_NUMPY skips views and object arrays)."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    root = type(obj).__module__.partition(".")[0]
    if root == "pandas":
        import pandas as pd

        if isinstance(obj, pd.DataFrame):
            return _records(obj)
        if obj is pd.NaT or obj is pd.NA:
            return None
        if isinstance(obj, (pd.Series, pd.Index, pd.Categorical)):
            return obj.tolist()
        return obj.isoformat() if hasattr(obj, "isoformat") else str(obj)
    if hasattr(obj, "tolist"):  # numpy, pyarrow and tensor-likes
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if type(obj).__name__ == "Decimal":
        return float(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def to_json_bytes(obj: Any) -> bytes:
    """JSON for any API result: plain objects, numpy, pandas, pydantic models."""
    import orjson

    try:
        return orjson.dumps(obj, default=_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise MlpackError(f"cannot write {type(obj).__name__} as JSON: {exc}") from exc


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
        raise fr.json_error(exc, source) from exc


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
    except TypeError:
        return {}
    return {"f": {"type": "number"}, "i": {"type": "integer"}, "u": {"type": "integer"}, "b": {"type": "boolean"},
            "U": {"type": "string"}, "S": {"type": "string"}, "M": {"type": "string", "format": "date-time"}}.get(kind, {})  # fmt: skip


def _dtype_name(dtype: Any) -> str:
    import numpy as np

    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype)


def _records(df: pd.DataFrame) -> list[dict[Any, Any]]:
    # to_dict("records") goes row by row through pandas: 10-100 times slower; missing
    # values come out as nan/NaT/NA, which to_json_bytes writes as null
    cols = df.columns.tolist()
    return [dict(zip(cols, row)) for row in df.to_numpy(dtype=object).tolist()]


def _frame_json(df: pd.DataFrame, orient: str) -> Any:
    """A DataFrame as the plain object pandas would write for ``orient``."""
    if orient == "records":
        return _records(df)
    if orient == "values":
        return df.to_numpy()
    if orient == "split":
        return {"index": df.index.tolist(), "columns": df.columns.tolist(), "data": df.to_numpy(dtype=object).tolist()}
    if orient == "columns" and df.columns.is_unique and df.index.is_unique:
        index = df.index.tolist()
        return {col: dict(zip(index, series.tolist())) for col, series in df.items()}
    if orient == "index" and df.columns.is_unique and df.index.is_unique:
        return dict(zip(df.index.tolist(), _records(df)))
    raise MlpackError(f"cannot write a DataFrame with duplicate labels as JSON with orient={orient!r}")


# ---------------------------------------------------------------- output rows


def _rows(obj: Any) -> list[Any]:
    """The items a result contributes to a json/jsonl document."""
    root = type(obj).__module__.partition(".")[0]
    if root == "numpy" and hasattr(obj, "ndim"):
        return [obj.tolist()] if obj.ndim == 0 else obj.tolist()
    if root == "pandas":
        import pandas as pd

        if isinstance(obj, pd.DataFrame):
            return _records(obj)
        if isinstance(obj, (pd.Series, pd.Index)):
            return obj.tolist()
    if isinstance(obj, (list, tuple)):
        return list(obj)
    return [obj]


def _frame(obj: Any) -> pd.DataFrame:
    """A result as a table for csv/table output; bare values go in a ``result`` column."""
    import numpy as np
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        return obj
    if isinstance(obj, pd.Series):
        return obj.to_frame(name=obj.name if obj.name is not None else "result")
    if isinstance(obj, np.ndarray):
        if obj.ndim > 2:
            raise MlpackError(f"cannot write a {obj.ndim}-D array as a table; use json output")
        return pd.DataFrame(obj) if obj.ndim == 2 else pd.DataFrame({"result": obj.reshape(-1)})
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    if isinstance(obj, dict):
        return pd.DataFrame([obj])
    if isinstance(obj, (list, tuple)):
        items = [i.model_dump(mode="json") if hasattr(i, "model_dump") else i for i in obj]
        if items and all(isinstance(i, dict) for i in items):
            return pd.DataFrame(items)
        if items and all(isinstance(i, (list, tuple)) for i in items):
            return pd.DataFrame(items)
        return pd.DataFrame({"result": items})
    return pd.DataFrame({"result": [obj]})


class ChunkWriter:
    """Writes the results of many chunks to a text stream as one document.

    ``json`` opens the array on the first row and closes it in ``close()`` (``[]`` when
    nothing was written); ``csv`` and ``table`` write the header once. Use as a context
    manager, or call ``close()`` after the last chunk.
    """

    def __init__(self, stream: IO[str], fmt: str = "json") -> None:
        self.stream = stream
        self.fmt = output_format(None, fmt)
        self.rows = 0
        self._header = False

    def write(self, obj: Any) -> int:
        """Write one chunk's result; returns the number of rows written."""
        if self.fmt in ("json", "jsonl"):
            items = [to_json_bytes(item).decode() for item in _rows(obj)]
            if items and self.fmt == "jsonl":
                self.stream.write("\n".join(items) + "\n")
            elif items:
                self.stream.write(("[\n" if self.rows == 0 else ",\n") + ",\n".join(items))
            self.rows += len(items)
            return len(items)
        df = _frame(obj)
        if len(df.columns) == 0:
            return 0
        if self.fmt == "csv":
            df.to_csv(self.stream, header=not self._header, index=False, lineterminator="\n")
        elif len(df):
            self.stream.write(df.to_string(index=False, header=not self._header) + "\n")
        self._header = self._header or self.fmt == "csv" or len(df) > 0
        self.rows += len(df)
        return len(df)

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("[]\n" if self.rows == 0 else "\n]\n")

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:  # after an error the output is incomplete anyway
            self.close()


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
        fmt = fr.file_format(path, fmt)
        _check_file(path)
        if fmt == "json":  # a .json file is what an HTTP client would send
            return self._parse(Path(path).read_bytes(), "application/json", None, str(path))
        return self._concat(list(self._iter(path, fmt, DEFAULT_CHUNK_SIZE, str(path))))

    def _parse_text(self, text: str, fmt: str | None) -> Any:
        fmt = fr.file_format(None, fmt) if fmt else "json"
        if fmt == "json":
            return self._parse(text.encode(), "application/json", None, "input")
        return self._concat(list(self._iter(_io.StringIO(text), fmt, DEFAULT_CHUNK_SIZE, "input")))

    def iter_file(self, path: str | Path, fmt: str | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[Any]:
        """Chunks of at most ``chunk_size`` rows of a csv/json/jsonl/parquet file, in order.

        Format and file are checked now; rows are read as the iterator advances.
        """
        fmt = fr.file_format(path, fmt)
        _check_file(path)
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
    def openapi_schema(self) -> dict[str, Any]:
        """JSON Schema of the payload."""

    def openapi_components(self) -> dict[str, Any]:
        """Schemas the payload schema refers to, ``{name: schema}``, for ``components.schemas``."""
        return {}

    def _request_types(self) -> tuple[str, ...]:
        return (self.media_type,)

    def openapi_request_body(self) -> dict[str, Any]:
        schema = self.openapi_schema()
        content = {t: {"schema": schema if t in JSON_TYPES + ("text/plain",) else {"type": "string"}} for t in self._request_types()}
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
    if not Path(path).is_file():
        raise BadInput(f"no such file: {path}")


class JSON(IODescriptor):
    """JSON in and out. With ``pydantic_model`` the API gets a validated model instance."""

    def __init__(self, pydantic_model: type[BaseModel] | None = None, validate_json: bool | None = None) -> None:
        self.pydantic_model = pydantic_model
        self.validate_json = validate_json  # False: keep the model for the docs only

    @property
    def _validates(self) -> bool:
        return self.pydantic_model is not None and self.validate_json is not False

    @cached_property
    def _adapter(self) -> Any:
        from pydantic import TypeAdapter

        return TypeAdapter(self.pydantic_model)

    def _invalid(self, exc: Any, what: str) -> BadInput:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
        parts = [f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in errors[:10]]
        more = f"; and {len(errors) - 10} more" if len(errors) > 10 else ""
        name = getattr(self.pydantic_model, "__name__", str(self.pydantic_model))
        return BadInput(f"{what} does not match {name}: {'; '.join(parts)}{more}", status=422, details=details)

    def _parse(self, body: bytes, mime: str, charset: str | None, source: str) -> Any:
        if not self._validates:
            return _loads(body, charset, source)
        from pydantic import ValidationError

        if not body or body.isspace():
            raise BadInput(f"{source} is empty; expected JSON")
        try:  # pydantic parses and validates in one pass
            return self._adapter.validate_json(body if charset in _UTF8 else _decode_text(body, charset, source))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            if first["type"] == "json_invalid":
                raise BadInput(f"{source} is not valid JSON: {first['ctx']['error']}") from exc
            raise self._invalid(exc, source) from exc

    def _iter(self, source: str | Path | IO[str], fmt: str, chunk_size: int, name: str) -> Iterator[list[Any]]:
        for chunk in fr.iter_chunks(source, fmt, chunk_size, frames=False, name=name):
            records = chunk.records()
            yield self._validate_rows(records, chunk.where) if self._validates else records

    def _validate_rows(self, records: list[Any], where: Callable[[int], str]) -> list[Any]:
        from pydantic import ValidationError

        validate = self._adapter.validate_python
        out = []
        for i, record in enumerate(records):
            try:
                out.append(validate(record))
            except ValidationError as exc:
                raise self._invalid(exc, where(i)) from exc
        return out

    def _concat(self, chunks: list[Any]) -> Any:
        return [record for chunk in chunks for record in chunk]

    @cached_property
    def _schema(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(schema, component schemas)`` with nested ``$defs`` hoisted into the components."""
        if self.pydantic_model is None:
            return {}, {}
        schema = self._adapter.json_schema(ref_template=_REF)
        defs = schema.pop("$defs", {})
        name = getattr(self.pydantic_model, "__name__", None)
        if name and "properties" in schema:  # a model: refer to it by name
            return {"$ref": _REF.format(model=name)}, {**defs, name: schema}
        return schema, defs

    def openapi_schema(self) -> dict[str, Any]:
        return copy.deepcopy(self._schema[0])

    def openapi_components(self) -> dict[str, Any]:
        return copy.deepcopy(self._schema[1])

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "JSON"}
        if self.pydantic_model is not None:
            model = self.pydantic_model
            spec["pydantic_model"] = f"{model.__module__}.{getattr(model, '__qualname__', model)}"
        if self.validate_json is not None:
            spec["validate_json"] = self.validate_json
        return spec


class NumpyNdarray(IODescriptor):
    """A JSON array in, an ndarray to the API; an array-like result out as a JSON list.

    ``dtype`` casts the input (without ``enforce_dtype`` a failed cast keeps the parsed
    array). ``shape`` uses -1 or None for any size and is checked with ``enforce_shape``.
    """

    def __init__(self, dtype: Any = None, shape: tuple[int | None, ...] | None = None, enforce_dtype: bool = False, enforce_shape: bool = False) -> None:  # fmt: skip
        if enforce_dtype and dtype is None:
            raise ConfigError("NumpyNdarray(enforce_dtype=True) needs a dtype")
        if enforce_shape and shape is None:
            raise ConfigError("NumpyNdarray(enforce_shape=True) needs a shape")
        self.dtype = dtype
        self.shape = tuple(-1 if d is None else int(d) for d in shape) if shape is not None else None
        self.enforce_dtype = enforce_dtype
        self.enforce_shape = enforce_shape

    @cached_property
    def _dtype(self) -> np.dtype | None:
        import numpy as np

        try:
            return np.dtype(self.dtype) if self.dtype is not None else None
        except TypeError as exc:
            raise ConfigError(f"NumpyNdarray: {self.dtype!r} is not a numpy dtype") from exc

    def _parse(self, body: bytes, mime: str, charset: str | None, source: str) -> np.ndarray:
        import numpy as np

        value = _loads(body, charset, source)
        if isinstance(value, dict):
            raise BadInput(f"{source}: expected a JSON array, found an object", status=422)
        try:
            arr = np.asarray(value)
        except ValueError as exc:
            raise BadInput(f"{source} is not a rectangular array: {_ragged(value)}", status=422) from exc
        arr = self._cast(arr, source)
        if self.enforce_shape:
            _check_shape(arr.shape, self.shape, source, batch=False)  # type: ignore[arg-type]
        return arr

    def _cast(self, arr: np.ndarray, source: str) -> np.ndarray:
        import numpy as np

        dtype = self._dtype
        if dtype is None or arr.dtype == dtype:
            return arr
        try:
            out = arr.astype(dtype)
        except (ValueError, TypeError, OverflowError):
            if not self.enforce_dtype:
                return arr  # best effort: the model may take the parsed array
            for idx in np.ndindex(arr.shape):
                try:
                    np.asarray(arr[idx]).astype(dtype)
                except (ValueError, TypeError, OverflowError):
                    raise BadInput(f"{source}: {arr[idx].item()!r} at index {list(idx)} is not a valid {dtype}", status=422) from None
            raise BadInput(f"{source} cannot be read as {dtype}", status=422) from None
        if self.enforce_dtype and dtype.kind in "iu" and arr.dtype.kind in "iufb":
            lossy = out != arr  # a fraction, NaN or overflow would silently change the value
            if lossy.any():
                idx = tuple(int(i) for i in np.argwhere(lossy)[0])
                raise BadInput(f"{source}: {arr[idx].item()!r} at index {list(idx)} is not a valid {dtype}", status=422)
        return out

    def _iter(self, source: str | Path | IO[str], fmt: str, chunk_size: int, name: str) -> Iterator[np.ndarray]:
        keys = None
        for chunk in fr.iter_chunks(source, fmt, chunk_size, numeric=True, name=name):
            if isinstance(chunk.rows, list) and chunk.rows and isinstance(chunk.rows[0], dict):
                keys = keys or list(chunk.rows[0])  # every record needs the keys of the first, in that order
                chunk.check_rows(keys)
            arr = chunk.to_array(self._dtype, self.enforce_dtype, keys)
            if self.enforce_shape:
                _check_shape(arr.shape, self.shape, name, batch=True)  # type: ignore[arg-type]
            yield arr

    def _concat(self, chunks: list[Any]) -> np.ndarray:
        import numpy as np

        return np.concatenate(chunks) if chunks else np.empty((0,), dtype=self._dtype or float)

    def openapi_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = _json_type(self._dtype) if self._dtype is not None else {"type": "number"}
        if self.shape is None:
            return {"type": "array", "items": {}}
        for size in reversed(self.shape):
            schema = {"type": "array", "items": schema}
            if self.enforce_shape and size >= 0:
                schema["minItems"] = schema["maxItems"] = size
        return schema

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "NumpyNdarray"}
        if self.dtype is not None:
            spec["dtype"] = _dtype_name(self.dtype)
        if self.shape is not None:
            spec["shape"] = list(self.shape)
        if self.enforce_dtype:
            spec["enforce_dtype"] = True
        if self.enforce_shape:
            spec["enforce_shape"] = True
        return spec


def _ragged(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], list):
        width = len(value[0])
        for i, row in enumerate(value):
            if not isinstance(row, list) or len(row) != width:
                found = len(row) if isinstance(row, list) else "not a list"
                return f"row {i + 1} has {found} values, row 1 has {width}"
    return "rows have different lengths"


class PandasDataFrame(IODescriptor):
    """A table in (JSON in any pandas orient, or ``text/csv``), a DataFrame to the API.

    ``columns`` names headerless input and selects and orders columns (a missing one is an
    error); ``dtype`` is one dtype or ``{column: dtype}``; ``shape`` is (rows, columns).
    Results (DataFrame, Series, ndarray) are written as JSON in ``orient``.
    """

    accepted_types = JSON_TYPES + CSV_TYPES

    def __init__(
        self,
        orient: str = "records",
        columns: list[Any] | None = None,
        dtype: Any = None,
        enforce_dtype: bool = False,
        shape: tuple[int | None, ...] | None = None,
        enforce_shape: bool = False,
    ) -> None:
        if orient not in ORIENTS:
            raise ConfigError(f"PandasDataFrame: orient must be one of {', '.join(ORIENTS)}, not {orient!r}")
        if enforce_dtype and dtype is None:
            raise ConfigError("PandasDataFrame(enforce_dtype=True) needs a dtype")
        if enforce_shape and shape is None:
            raise ConfigError("PandasDataFrame(enforce_shape=True) needs a shape")
        self.orient = orient
        self.columns = list(columns) if columns is not None else None
        self.dtype = dtype
        self.enforce_dtype = enforce_dtype
        self.shape = tuple(-1 if d is None else int(d) for d in shape) if shape is not None else None
        self.enforce_shape = enforce_shape

    def _request_types(self) -> tuple[str, ...]:
        return ("application/json", "text/csv")

    def _parse(self, body: bytes, mime: str, charset: str | None, source: str) -> pd.DataFrame:
        if mime in CSV_TYPES:
            text = _decode_text(body, charset, source)
            df = fr.read_csv(_io.StringIO(text), source, self.columns)
        else:
            df = self._from_json(_loads(body, charset, source), source)
        return self._check(df, source, lambda i: f"row {i + 1}", batch=False)

    def _parse_text(self, text: str, fmt: str | None) -> Any:
        if fmt is None and text.lstrip()[:1] not in ("[", "{"):
            fmt = "csv"  # `--input 'a,b\n1,2'`
        return super()._parse_text(text, fmt)

    def _from_json(self, value: Any, source: str) -> pd.DataFrame:
        rows, columns = fr.json_rows(value, source, orient=self.orient)
        chunk = fr.Chunk(rows, 0, source, columns=columns)
        if not isinstance(rows, list):
            return rows
        chunk.check_rows()
        if columns is None and self.columns and rows and isinstance(rows[0], list) and len(rows[0]) == len(self.columns):
            chunk.columns = self.columns
        try:
            df = chunk.frame()
            if isinstance(value, dict) and isinstance(value.get("index"), list) and "schema" not in value:
                df.index = value["index"]
        except ValueError as exc:
            raise BadInput(f"{source} is not a table: {exc}", status=422) from exc
        return df

    def _check(self, df: pd.DataFrame, source: str, where: Callable[[int], str], batch: bool) -> pd.DataFrame:
        import pandas as pd

        if self.columns is not None:
            if isinstance(df.columns, pd.RangeIndex) and len(df.columns) == len(self.columns):
                df.columns = self.columns
            missing = [c for c in self.columns if c not in df.columns]
            if missing:
                raise BadInput(f"{source}: missing column(s) {', '.join(map(repr, missing))}", status=422)
            if list(df.columns) != self.columns:
                df = df[self.columns]
        df = fr.cast_frame(df, self.dtype, self.enforce_dtype, where)
        if self.enforce_shape:
            _check_shape(df.shape, self.shape, source, batch)  # type: ignore[arg-type]
        return df

    def _iter(self, source: str | Path | IO[str], fmt: str, chunk_size: int, name: str) -> Iterator[pd.DataFrame]:
        cols = None
        for chunk in fr.iter_chunks(source, fmt, chunk_size, names=self.columns, orient=self.orient, name=name):
            chunk.check_rows()
            rows = chunk.rows
            if self.columns and chunk.columns is None and isinstance(rows, list) and rows and isinstance(rows[0], list):
                chunk.columns = self.columns if len(rows[0]) == len(self.columns) else None
            df = chunk.frame()
            if self.columns is None:  # keep the first chunk's columns so that chunks concatenate
                if cols is None:
                    cols = list(df.columns)
                elif list(df.columns) != cols:
                    df = df.reindex(columns=cols)
            yield self._check(df, name, chunk.where, batch=True)

    def _concat(self, chunks: list[Any]) -> pd.DataFrame:
        import pandas as pd

        return pd.concat(chunks) if chunks else pd.DataFrame(columns=self.columns or [])

    def _encode(self, obj: Any) -> bytes:
        import numpy as np
        import pandas as pd

        if isinstance(obj, np.ndarray) and obj.ndim == 2:
            obj = pd.DataFrame(obj)
        if isinstance(obj, pd.Series):
            obj = obj.tolist() if self.orient in ("records", "values") else obj.to_frame()
        return to_json_bytes(_frame_json(obj, self.orient) if isinstance(obj, pd.DataFrame) else obj)

    def openapi_schema(self) -> dict[str, Any]:
        def cell(col: Any) -> dict[str, Any]:
            dtype = self.dtype.get(col) if isinstance(self.dtype, dict) else self.dtype
            return _json_type(dtype) if dtype is not None else {}

        row: dict[str, Any] = {"type": "object"}
        if self.columns:
            row["properties"] = {str(c): cell(c) for c in self.columns}
        table = {"type": "array", "items": {"type": "array", "items": {}}}
        return {
            "records": {"type": "array", "items": row},
            "values": table,
            "split": {"type": "object", "required": ["data"], "properties": {
                "columns": {"type": "array", "items": {}}, "index": {"type": "array", "items": {}}, "data": table}},
            "columns": {"type": "object", "additionalProperties": {"type": "object"}},
            "index": {"type": "object", "additionalProperties": row},
        }[self.orient]  # fmt: skip

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "PandasDataFrame", "orient": self.orient}
        if self.columns is not None:
            spec["columns"] = list(self.columns)
        if self.dtype is not None:
            spec["dtype"] = {str(k): _dtype_name(v) for k, v in self.dtype.items()} if isinstance(self.dtype, dict) else _dtype_name(self.dtype)
        if self.enforce_dtype:
            spec["enforce_dtype"] = True
        if self.shape is not None:
            spec["shape"] = list(self.shape)
        if self.enforce_shape:
            spec["enforce_shape"] = True
        return spec


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
        with fr.open_source(source) as f:
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

    def openapi_schema(self) -> dict[str, Any]:
        return {"type": "string"}

    def to_spec(self) -> dict[str, Any]:
        return {"type": "Text"}
