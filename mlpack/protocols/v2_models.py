"""How an API looks as a v2 model: its tensors' metadata, request tensors -> the API's argument(s),
its result -> response tensors.

- ``NumpyNdarray``: one input tensor, cast to the descriptor's dtype or else the model's
  contract dtype; one output tensor ``output-0``.
- ``PandasDataFrame``: one tensor per column (shape ``[-1]`` or ``[-1, 1]``, as MLServer's
  "pd" content type); a DataFrame result gives one tensor per column.
- ``JSON`` (with or without a pydantic model): one tensor per field; element ``i`` of every
  tensor makes the ``i``-th object, and the API is called once per object (concurrently: the
  calls join the same micro-batches). Dict results give one tensor per key.
- ``Text``: one BYTES tensor, one call per element.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import BadInput
from .tensors import datatype_of

if TYPE_CHECKING:
    import numpy as np

    from ..service import API

_FIELD_TYPES = {int: "INT64", float: "FP64", bool: "BOOL", str: "BYTES", bytes: "BYTES"}
_CONTRACT_DTYPES = {"float64": "FP64", "float32": "FP32"}


def kind_of(desc: Any) -> str:
    """Which mapping an IO descriptor gets: ndarray, frame, json or text."""
    from ..io import JSON, NumpyNdarray, PandasDataFrame, Text

    for cls, kind in ((NumpyNdarray, "ndarray"), (PandasDataFrame, "frame"), (JSON, "json"), (Text, "text")):
        if isinstance(desc, cls):
            return kind
    return "json"


def _meta(name: str, datatype: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape}


def _pydantic_fields(model: Any) -> list[dict[str, Any]]:
    fields = getattr(model, "model_fields", None) or {}
    return [_meta(name, _FIELD_TYPES.get(f.annotation, "BYTES"), [-1]) for name, f in fields.items()]


@dataclass
class V2Model:
    """One API seen as a v2 model."""

    api: API
    contract: dict[str, Any] | None

    @property
    def kind(self) -> str:
        return kind_of(self.api.input)

    # ------------------------------------------------------------------ metadata

    def _contract_datatype(self) -> str | None:
        return _CONTRACT_DTYPES.get((self.contract or {}).get("dtype"))

    def inputs(self) -> list[dict[str, Any]]:
        desc, contract = self.api.input, self.contract or {}
        kind = self.kind
        if kind == "ndarray":
            datatype = datatype_of(desc._dtype) if desc.dtype is not None else self._contract_datatype() or "FP64"
            if desc.shape is not None:
                shape = list(desc.shape)
            elif isinstance(contract.get("n_features"), int):
                shape = [-1, contract["n_features"]]
            else:
                shape = [-1]
            return [_meta("input-0", datatype, shape)]
        if kind == "frame":
            columns = desc.columns or contract.get("feature_names") or []
            default = self._contract_datatype() or "FP64"
            types = desc.dtype if isinstance(desc.dtype, dict) else {}
            out = []
            for col in columns:
                dtype = types.get(col, desc.dtype if not isinstance(desc.dtype, dict) else None)
                out.append(_meta(str(col), datatype_of(dtype) if dtype is not None else default, [-1]))
            return out
        if kind == "text":
            return [_meta("input-0", "BYTES", [-1])]
        return _pydantic_fields(desc.pydantic_model) if desc.pydantic_model is not None else []

    def outputs(self) -> list[dict[str, Any]]:
        desc = self.api.output
        kind = kind_of(desc)
        if kind == "ndarray":
            return [_meta("output-0", datatype_of(desc._dtype) if desc.dtype is not None else "FP64", [-1])]
        if kind == "text":
            return [_meta("output-0", "BYTES", [-1])]
        if kind == "json" and desc.pydantic_model is not None:
            return _pydantic_fields(desc.pydantic_model)
        return []

    # ------------------------------------------------------------------ requests

    def arguments(self, tensors: list[tuple[str, np.ndarray]]) -> tuple[list[Any], bool]:
        """The API's argument(s) from the request tensors, and whether there is one per row."""
        kind, desc = self.kind, self.api.input
        if kind == "ndarray":
            if len(tensors) != 1:
                raise BadInput(f"model {self.api.name} takes one input tensor, got {len(tensors)}", status=400)
            return [self._array(*tensors[0])], False
        if kind == "frame":
            return [self._frame(tensors)], False
        if kind == "json" and desc.pydantic_model is not None:
            tensors = [(name, _to_field(arr, desc.pydantic_model, name)) for name, arr in tensors]
        names, columns = self._columns(tensors)
        if kind == "text":
            if len(columns) != 1:
                raise BadInput(f"model {self.api.name} takes one BYTES input tensor, got {len(columns)}", status=400)
            return [str(v) for v in columns[0]], True
        rows = [dict(zip(names, values)) for values in zip(*columns)]
        if desc._validates:
            from pydantic import ValidationError

            checked = []
            for i, row in enumerate(rows):
                try:
                    checked.append(desc._adapter.validate_python(row, strict=desc._strict))
                except ValidationError as exc:
                    raise desc._invalid(exc, f"element {i} of the input tensors") from exc
            rows = checked
        return rows, True

    def _array(self, name: str, arr: np.ndarray) -> np.ndarray:
        import numpy as np

        from ..io.base import _check_shape

        desc = self.api.input
        if arr.dtype == object:
            arr = np.array([_text(v) for v in arr.reshape(-1)]).reshape(arr.shape)
        if desc.dtype is not None:
            arr = desc._cast(arr, f"input {name}")
        elif arr.dtype.kind in "biuf" and self.contract and self.contract.get("dtype"):
            arr = arr.astype(self.contract["dtype"])  # any numeric datatype, as the model computes
        if desc.enforce_shape:
            _check_shape(arr.shape, desc.shape, f"input {name}", batch=False)
        return arr

    def _columns(self, tensors: list[tuple[str, np.ndarray]]) -> tuple[list[str], list[list[Any]]]:
        names, columns, rows = [], [], None
        for name, arr in tensors:
            if arr.ndim > 2 or (arr.ndim == 2 and arr.shape[1] != 1):
                raise BadInput(f"input {name}: a column tensor has shape [-1] or [-1, 1], got {list(arr.shape)}", status=400)
            values = [_text(v) if isinstance(v, bytes) else v for v in arr.reshape(-1).tolist()]
            if rows is None:
                rows = len(values)
            elif len(values) != rows:
                raise BadInput(f"input {name} has {len(values)} elements, the first input has {rows}", status=400)
            if name in names:
                raise BadInput(f"input {name} is given twice", status=400)
            names.append(name)
            columns.append(values)
        if not rows:
            raise BadInput(f"model {self.api.name} got no input elements", status=400)
        return names, columns

    def _frame(self, tensors: list[tuple[str, np.ndarray]]) -> Any:
        import pandas as pd

        names, columns = self._columns(tensors)
        df = pd.DataFrame(dict(zip(names, columns)), columns=names)
        return self.api.input._check(df, "the input tensors", lambda i: f"element {i}", batch=False, strict=True)

    # ------------------------------------------------------------------ results

    def results(self, values: list[Any], per_row: bool) -> list[tuple[str, np.ndarray]]:
        """The response tensors of the API's result(s)."""
        import numpy as np

        items = [_plain(v) for v in values]
        if not per_row:
            result = items[0]
            if hasattr(result, "columns") and hasattr(result, "to_numpy"):  # a DataFrame
                return [(str(c), result[c].to_numpy()) for c in result.columns]
            if isinstance(result, dict):
                return [(str(k), np.atleast_1d(np.asarray(v))) for k, v in result.items()]
            return [("output-0", np.atleast_1d(np.asarray(result)))]
        if items and all(isinstance(v, dict) for v in items):
            keys = list(items[0])
            return [(str(k), np.asarray([v.get(k) for v in items])) for k in keys]
        return [("output-0", np.asarray(items))]


def _to_field(arr: np.ndarray, model: Any, name: str) -> np.ndarray:
    """A float tensor of whole numbers for an ``int`` field becomes integers (any numeric datatype
    is converted to what the API takes); anything lossy is left to pydantic's strict check."""
    import numpy as np

    field = (getattr(model, "model_fields", None) or {}).get(name)
    if field is not None and field.annotation is int and arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            if np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)) and np.all(np.abs(arr) < 2**63):
                return arr.astype(np.int64)
    return arr


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) else value


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput("a BYTES element is not UTF-8 text", status=400) from None
    return str(value)
