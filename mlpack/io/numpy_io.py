"""``NumpyNdarray``: a JSON array (or a table file) in, an ndarray to the API."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..exceptions import BadInput, ConfigError
from .base import IODescriptor, _check_shape, _dtype_name, _json_type, _loads, json_kind
from .readers import iter_chunks

if TYPE_CHECKING:
    import numpy as np


class NumpyNdarray(IODescriptor):
    """A JSON array in, an ndarray to the API; an array-like result out as a JSON list.

    ``dtype`` casts the input (without ``enforce_dtype`` a failed cast keeps the parsed
    array). ``shape`` uses -1 or None for any size and is checked with ``enforce_shape``.

    The OpenAPI schema states what is enforced: item types with ``enforce_dtype`` (a numeric
    dtype then refuses strings, booleans and nulls), sizes with ``enforce_shape``. The body
    must be a JSON array; booleans mixed with numbers are refused (numpy would silently make
    them 0 and 1). When neither is declared, ``openapi_schema(contract)`` takes the width and
    dtype from the model's input contract (see ``mlpack.openapi``).
    """

    def __init__(
        self,
        dtype: Any = None,
        shape: tuple[int | None, ...] | None = None,
        enforce_dtype: bool = False,
        enforce_shape: bool = False,
    ) -> None:
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
        if not isinstance(value, list) and (self.shape is None or self.shape):
            raise BadInput(f"{source}: expected a JSON array, found {json_kind(value)}", status=422)
        try:
            arr = np.asarray(value)
        except ValueError as exc:
            raise BadInput(f"{source} is not a rectangular array: {_ragged(value)}", status=422) from exc
        if (b"true" in body or b"false" in body) and arr.dtype.kind in "iufc":
            _refuse_non_numbers(arr.shape, value, source, "a number")
        if self.enforce_dtype:
            dtype = self._dtype
            if dtype is not None and dtype.kind in "iufc" and arr.dtype.kind not in "iuf":
                _refuse_non_numbers(arr.shape, value, source, f"a valid {dtype}")
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
                    raise BadInput(
                        f"{source}: {arr[idx].item()!r} at index {list(idx)} is not a valid {dtype}", status=422
                    ) from None
            raise BadInput(f"{source} cannot be read as {dtype}", status=422) from None
        if self.enforce_dtype and dtype.kind in "iu" and arr.dtype.kind in "iufb":
            lossy = out != arr  # a fraction, NaN or overflow would silently change the value
            if lossy.any():
                idx = tuple(int(i) for i in np.argwhere(lossy)[0])
                raise BadInput(f"{source}: {arr[idx].item()!r} at index {list(idx)} is not a valid {dtype}", status=422)
        return out

    def _iter(self, source: str | Path | IO[str], fmt: str, chunk_size: int, name: str) -> Iterator[np.ndarray]:
        keys = None
        for chunk in iter_chunks(source, fmt, chunk_size, numeric=True, name=name):
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

    def openapi_schema(self, contract: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the server accepts: typed items with ``enforce_dtype``, sized arrays with
        ``enforce_shape``; ``contract`` (a model's input contract) fills in what is left open."""
        item: dict[str, Any] = {}
        if self.enforce_dtype:
            item = _json_type(self._dtype)
        elif self.dtype is None and contract and contract.get("dtype"):
            item = _json_type(contract["dtype"])
        if self.shape is not None and self.enforce_shape:
            schema = item
            for depth, size in reversed(list(enumerate(self.shape))):
                schema = {"type": "array", "items": schema}
                if size >= 0:
                    schema["minItems"] = schema["maxItems"] = size
                elif depth < len(self.shape) - 1:
                    schema["minItems"] = 1  # numpy reads [] as one axis: the inner ones would be lost
            return schema
        width = contract.get("n_features") if contract and self.shape is None else None
        if isinstance(width, int) and width > 0:  # rows of the model's features
            row = {"type": "array", "items": item, "minItems": width, "maxItems": width}
            # at least one row: numpy reads [] as one empty axis, which no model of n features takes
            return {"type": "array", "items": row, "minItems": 1}
        schema = {"type": "array"}  # the rank is open: nested arrays of any depth
        if self.dtype is not None:
            schema["description"] = f"An array of {_dtype_name(self.dtype)} values, of any rank."
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


def _refuse_non_numbers(shape: tuple[int, ...], value: Any, source: str, what: str) -> None:
    """422 naming the first boolean, string or null of ``value``, the nested lists numpy read."""
    import numpy as np

    for idx in np.ndindex(shape):
        item = value
        for i in idx:
            item = item[i]
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            shown = "null" if item is None else str(item).lower() if isinstance(item, bool) else repr(item)
            raise BadInput(f"{source}: {shown} at index {list(idx)} is not {what}", status=422)
