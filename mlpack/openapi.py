"""The OpenAPI 3 document of a service, built from plain data: a title and its APIs.

This module knows nothing of ``Service`` (``Service.openapi_spec()`` calls it): it takes
the APIs, duck-typed as ``ApiDoc``, and the input contract of the model behind them.

Each API's responses list every status the server can answer, each with the error body's
schema: 400 (malformed body), 413 (too large), 415 (content type), 422 (does not validate,
or the model refuses this request's data), 500 (a bug in the service, with ``error_id``),
503 (not ready, or the queue is past its latency budget; ``Retry-After``), 504 (timeout).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from . import __version__

if TYPE_CHECKING:
    from .io import IODescriptor


class ApiDoc(Protocol):
    """What the document needs of an API (``mlpack.service.API`` has it)."""

    name: str
    route: str
    doc: str
    input: IODescriptor
    output: IODescriptor


_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "What went wrong and what to do next."},
        "details": {"description": "Field errors of a 422: a list of {loc, msg, type}."},
        "error_id": {"type": "string", "description": "Id of the logged traceback, for 500 responses."},
    },
    "required": ["error"],
    "additionalProperties": False,
}
_ERRORS = {
    "400": "Malformed input: not JSON (NaN and Infinity are not JSON), not UTF-8, a bad header",
    "413": "Request body too large (api_server.max_request_size)",
    "415": "Unsupported content type",
    "422": "Input does not validate, or the model cannot take this request's data",
    "500": "Error in the service code (the body has an error_id, logged with the traceback)",
    "503": "Not ready, or the model queue is past its latency budget (see Retry-After)",
    "504": "The API took longer than api_server.timeout",
}
_F32_INF = 2**128 - 2**103  # the smallest double that float32 rounds to infinity
_F32_INT_MAX = _F32_INF - 2**74 - 1  # the largest integer that rounds to a double below it
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}


def _error(code: str) -> dict[str, Any]:
    response = {"description": _ERRORS[code], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if code == "503":
        response["headers"] = _RETRY_AFTER
    return response


def _bounded(schema: Any, float32: bool) -> Any:
    """``schema`` with numbers limited to what float32 holds, where it sets no limit of its own.

    A model that computes in float32 (XGBoost) cannot take a number that becomes infinite
    as float32: its input contract refuses it (422), so the schema says so. The limits are
    exact: a double rounds to float32's largest value below ``_F32_INF``; an integer first
    rounds to a double, so it must stay below ``_F32_INF - 2**74``.
    """
    if not float32:
        return schema
    if isinstance(schema, list):
        return [_bounded(s, float32) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _bounded(v, float32) for k, v in schema.items()}
    kind = out.get("type")
    if kind == "integer" and "minimum" not in out and "maximum" not in out:
        out.update(minimum=-_F32_INT_MAX, maximum=_F32_INT_MAX)
    elif kind == "number" and "minimum" not in out and "maximum" not in out:
        out.update(minimum=-float(_F32_INF), maximum=float(_F32_INF), exclusiveMinimum=True, exclusiveMaximum=True)
    return out


def _probe(summary: str, codes: dict[str, str], media: str = "text/plain") -> dict[str, Any]:
    return {
        "get": {
            "tags": ["Infrastructure"],
            "summary": summary,
            "responses": {
                code: {"description": text, "content": {media: {"schema": {"type": "string"}}}} for code, text in codes.items()
            },
        }
    }


def to_openapi30(schema: Any) -> Any:
    """JSON Schema from pydantic, adjusted for OpenAPI 3.0 (which the bundled Swagger UI renders).

    ``anyOf: [X, {type: null}]`` becomes X with ``nullable: true``; ``const`` becomes ``enum``.
    """
    if isinstance(schema, list):
        return [to_openapi30(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: to_openapi30(v) for k, v in schema.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            del out[key]
            if len(rest) == 1 and "$ref" not in rest[0]:
                out.update(rest[0])
            else:
                out[key] = rest
            out["nullable"] = True
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("type"), list):  # ["integer", "null"]
        types = [t for t in out["type"] if t != "null"]
        if len(types) < len(out["type"]):
            out["nullable"] = True
        out["type"] = types[0] if len(types) == 1 else types
    return out


def openapi_spec(title: str, apis: Iterable[ApiDoc], contract: dict[str, Any] | None = None) -> dict[str, Any]:
    """The document of a service named ``title``.

    ``contract`` is the input contract of the model behind the APIs, or None; descriptors
    that leave shape or dtype open (``NumpyNdarray()``) describe their input by it. Which
    APIs call which runner cannot be known statically, so the caller decides (see
    ``Service.input_contract``).
    """
    schemas: dict[str, Any] = {"Error": _ERROR}
    paths: dict[str, Any] = {}
    bound = bool(contract and contract.get("dtype") == "float32")
    for api in apis:
        schemas.update(api.output.openapi_components())
        schemas.update({k: _bounded(v, bound) for k, v in api.input.openapi_components().items()})
        responses = {"200": to_openapi30({"description": "Successful response", **api.output.openapi_responses()})}
        responses.update({code: _error(code) for code in _ERRORS})
        paths[api.route] = {
            "post": {
                "tags": ["Service APIs"],
                "operationId": f"{title}__{api.name}",
                "summary": f"{api.name}: {type(api.input).__name__} -> {type(api.output).__name__}",
                "description": api.doc or f"Calls {api.name}.",
                "requestBody": to_openapi30(_bounded(api.input.openapi_request_body(contract), bound)),
                "responses": responses,
            }
        }
    paths["/livez"] = _probe("Liveness: the process answers", {"200": "alive"})
    paths["/healthz"] = _probe("Health (same as /livez)", {"200": "healthy"})
    paths["/readyz"] = _probe("Readiness: models are loaded", {"200": "ready", "503": "still loading"})
    paths["/metrics"] = _probe("Prometheus metrics", {"200": "metrics in the text exposition format"})
    paths["/metrics"]["get"]["responses"]["404"] = {
        "description": "metrics are disabled (api_server.metrics.enabled)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "version": __version__,
            "description": f"Prediction service **{title}**, served by mlpack {__version__}.",
        },
        "tags": [{"name": "Service APIs"}, {"name": "Infrastructure"}],
        "paths": paths,
        "components": {"schemas": to_openapi30(schemas)},
    }
