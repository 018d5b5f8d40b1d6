"""Open Inference Protocol v2 tensors: datatypes, JSON ``data`` and the binary tensor extension.

A tensor on the wire is ``{"name", "datatype", "shape", "data" | parameters.binary_data_size}``.
JSON data is row-major, nested or flat. Binary data is the raw little-endian bytes, appended
after the JSON header (whose length is the ``Inference-Header-Content-Length`` header); BYTES
elements are each prefixed with their length as a 4-byte little-endian integer.
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, Any

from ..exceptions import BadInput

if TYPE_CHECKING:
    import numpy as np

# v2 datatype -> numpy dtype string (little-endian); BYTES is handled apart
NUMERIC = {
    "BOOL": "|b1",
    "UINT8": "|u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "|i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
DATATYPES = (*NUMERIC, "BYTES")
MAX_RANK = 32


def datatype_of(dtype: Any) -> str:
    """The v2 datatype of a numpy dtype (strings and objects are BYTES)."""
    import numpy as np

    dtype = np.dtype(dtype)
    if dtype.kind in "OSUV":
        return "BYTES"
    for name, code in NUMERIC.items():
        if np.dtype(code) == dtype.newbyteorder("<") or np.dtype(code) == dtype:
            return name
    raise BadInput(f"a {dtype} result has no v2 datatype", status=500)


def _bad(message: str) -> BadInput:
    return BadInput(message, status=400)


def check_header(tensor: Any, where: str) -> tuple[str, str, list[int]]:
    """``(name, datatype, shape)`` of a tensor description; 400 when malformed."""
    if not isinstance(tensor, dict):
        raise _bad(f"{where} must be an object with name, datatype and shape")
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if not isinstance(name, str) or not name:
        raise _bad(f"{where}: 'name' must be a non-empty string")
    if datatype not in DATATYPES:
        raise _bad(f"{where} ({name}): unknown datatype {datatype!r}; expected one of {', '.join(DATATYPES)}")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_RANK
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise _bad(f"{where} ({name}): 'shape' must be a list of sizes (integers >= 0)")
    params = tensor.get("parameters", {})
    if not isinstance(params, dict):
        raise _bad(f"{where} ({name}): 'parameters' must be an object")
    return name, datatype, shape


def _flatten(data: Any, out: list[Any]) -> None:
    if isinstance(data, list):
        for item in data:
            _flatten(item, out)
    else:
        out.append(data)


def from_json(name: str, datatype: str, shape: list[int], data: Any) -> np.ndarray:
    """The ndarray of a tensor sent as JSON ``data`` (nested or flat, row-major)."""
    import numpy as np

    flat: list[Any] = []
    _flatten(data, flat)
    count = math.prod(shape)
    if len(flat) != count:
        raise _bad(f"input {name}: shape {shape} needs {count} values, 'data' has {len(flat)}")
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise _bad(f"input {name}: BYTES data must be strings")
        return np.array(flat, dtype=object).reshape(shape)
    if datatype == "BOOL":
        if not all(isinstance(v, bool) for v in flat):
            raise _bad(f"input {name}: BOOL data must be true or false")
    elif not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        raise _bad(f"input {name}: {datatype} data must be numbers")
    dtype = np.dtype(NUMERIC[datatype])
    if dtype.kind in "iu" and not all(isinstance(v, int) for v in flat):
        raise _bad(f"input {name}: {datatype} data must be integers")
    try:
        with np.errstate(over="raise"):
            return np.array(flat, dtype=dtype).reshape(shape)
    except (OverflowError, FloatingPointError, ValueError):
        raise _bad(f"input {name}: a value is out of the range of {datatype}") from None


def from_binary(name: str, datatype: str, shape: list[int], raw: bytes) -> np.ndarray:
    """The ndarray of a tensor sent as binary data."""
    import numpy as np

    count = math.prod(shape)
    if datatype == "BYTES":
        items, pos = [], 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise _bad(f"input {name}: BYTES data ends inside a length prefix")
            (size,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            if pos + size > len(raw):
                raise _bad(f"input {name}: BYTES element of {size} bytes runs past the end of its data")
            items.append(raw[pos : pos + size])
            pos += size
        if len(items) != count:
            raise _bad(f"input {name}: shape {shape} needs {count} elements, the binary data has {len(items)}")
        return np.array(items, dtype=object).reshape(shape)
    dtype = np.dtype(NUMERIC[datatype])
    if len(raw) != count * dtype.itemsize:
        raise _bad(f"input {name}: shape {shape} of {datatype} needs {count * dtype.itemsize} bytes, got {len(raw)}")
    if datatype == "BOOL" and any(b > 1 for b in raw):
        raise _bad(f"input {name}: BOOL bytes must be 0 or 1")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()  # writable, as a parsed array is


def to_output(name: str, arr: np.ndarray, binary: bool) -> tuple[dict[str, Any], bytes | None]:
    """A response tensor: the JSON description, and its raw bytes when ``binary``."""
    import numpy as np

    datatype = datatype_of(arr.dtype)
    tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
    if datatype == "BYTES":
        items = [_as_bytes(v) for v in arr.reshape(-1).tolist()]
        if not binary:
            tensor["data"] = [v.decode("utf-8", "replace") for v in items]
            return tensor, None
        raw = b"".join(struct.pack("<I", len(v)) + v for v in items)
    else:
        if not binary:
            tensor["data"] = arr.reshape(-1).tolist()
            return tensor, None
        raw = np.ascontiguousarray(arr, dtype=np.dtype(NUMERIC[datatype])).tobytes()
    tensor["parameters"] = {"binary_data_size": len(raw)}
    return tensor, raw


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return (value if isinstance(value, str) else str(value)).encode()
