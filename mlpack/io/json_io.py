"""``JSON``: JSON in and out, optionally validated with a pydantic model."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..exceptions import BadInput
from .base import _UTF8, IODescriptor, _decode_text, _loads
from .readers import check_standard_json, iter_chunks

if TYPE_CHECKING:
    from pydantic import BaseModel

_REF = "#/components/schemas/{model}"


class JSON(IODescriptor):
    """JSON in and out. With ``pydantic_model`` the API gets a validated model instance.

    Request bodies and ``--input`` are validated in pydantic's strict JSON mode, so that what
    the OpenAPI schema forbids is refused: ``false`` or ``"1.5"`` is not a number, ``1.5`` is
    not an integer (dates, enums and UUIDs still come as strings, as JSON has no other way).
    A model whose ``model_config`` sets ``strict=False`` keeps pydantic's lax conversions.
    Rows of CSV and other files, whose cells carry no JSON types, are validated lax.
    NaN and Infinity are refused (400) like everywhere else (a number beyond a double, which
    pydantic reads as infinity, is left to its float validation).
    """

    def __init__(self, pydantic_model: type[BaseModel] | None = None, validate_json: bool | None = None) -> None:
        self.pydantic_model = pydantic_model
        self.validate_json = validate_json  # False: keep the model for the docs only

    @property
    def _validates(self) -> bool:
        return self.pydantic_model is not None and self.validate_json is not False

    @cached_property
    def _strict(self) -> bool:
        config = getattr(self.pydantic_model, "model_config", None) or {}
        return config.get("strict") is not False

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
        data = body if charset in _UTF8 else _decode_text(body, charset, source)
        check_standard_json(data, source)  # pydantic's parser takes NaN and Infinity
        try:  # pydantic parses and validates in one pass
            return self._adapter.validate_json(data, strict=self._strict)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            if first["type"] == "json_invalid":
                raise BadInput(f"{source} is not valid JSON: {first['ctx']['error']}") from exc
            raise self._invalid(exc, source) from exc

    def _iter(self, source: str | Path | IO[str], fmt: str, chunk_size: int, name: str) -> Iterator[list[Any]]:
        for chunk in iter_chunks(source, fmt, chunk_size, frames=False, name=name):
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

    def openapi_schema(self, contract: dict[str, Any] | None = None) -> dict[str, Any]:
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
