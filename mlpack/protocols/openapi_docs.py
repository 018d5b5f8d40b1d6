"""OpenAPI path items of the v2 and KServe v1 protocols, for ``/docs.json``.

Error bodies use the document's ``Error`` schema (``{"error": ...}``), as the native routes do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .tensors import DATATYPES

if TYPE_CHECKING:
    from ..service import Service

_ERR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_CODES = {
    "400": "Malformed request: not JSON, a bad tensor (shape and data disagree, unknown datatype, wrong binary sizes)",
    "404": "No such model (or version)",
    "413": "Request body too large (api_server.max_request_size)",
    "422": "The tensors do not validate, or the model cannot take this data (its input contract)",
    "500": "Error in the service code (the body has an error_id, logged with the traceback)",
    "503": "Not ready, or the model queue is past its latency budget",
    "504": "The API took longer than api_server.timeout",
}
_TENSOR = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string", "enum": list(DATATYPES)},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer", "minimum": 0}}},
        "data": {"type": "array", "description": "Row-major values, nested or flat (absent with binary_data_size)"},
    },
}
# metadata shapes use -1 for a dimension of any size (the batch)
_META_TENSOR = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string", "enum": list(DATATYPES)},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}},
    },
}
_MODEL_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}, "description": "An API name"}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string", "enum": ["1"]}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: {"description": _CODES[code], **_ERR} for code in codes}


def _get(tag: str, summary: str, ok: dict[str, Any], *codes: str, params: list[Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"tags": [tag], "summary": summary, "responses": {"200": ok, **_errors(*codes)}}
    if params:
        op["parameters"] = params
    return {"get": op}


def _model_enum(service: Service) -> list[dict[str, Any]]:
    return [{**_MODEL_NAME, "schema": {"type": "string", "enum": list(service.apis) or [""]}}]


def v2_paths(service: Service) -> dict[str, dict[str, Any]]:
    tag = "Open Inference Protocol v2"
    bool_of = lambda key: {"type": "object", "properties": {key: {"type": "boolean"}}}  # noqa: E731
    metadata = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _META_TENSOR},
            "outputs": {"type": "array", "items": _META_TENSOR},
        },
    }
    infer_request = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}},
            "inputs": {"type": "array", "items": _TENSOR, "minItems": 1},
            "outputs": {"type": "array", "items": {"type": "object", "required": ["name"]}},
        },
    }
    infer_ok = {
        "description": "The output tensors; with binary outputs the body is this JSON (of "
        "Inference-Header-Content-Length bytes) followed by the tensors' raw bytes",
        "content": {
            "application/json": {"schema": {"type": "object", "properties": {"outputs": {"type": "array", "items": _TENSOR}}}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
    paths: dict[str, dict[str, Any]] = {
        "/v2": _get(tag, "Server metadata (name, version, extensions)", _json("Server metadata", {"type": "object"})),
        "/v2/health/live": _get(tag, "Liveness", _json("alive", bool_of("live"))),
        "/v2/health/ready": _get(tag, "Readiness: models are loaded", _json("ready", bool_of("ready")), "503"),
    }
    for base, params in (
        ("/v2/models/{name}", _model_enum(service)),
        ("/v2/models/{name}/versions/{version}", [*_model_enum(service), _VERSION]),
    ):
        paths[base] = _get(tag, "Model metadata: input and output tensors", _json("metadata", metadata), "404", params=params)
        paths[base + "/ready"] = _get(tag, "Model readiness", _json("ready", bool_of("ready")), "404", "503", params=params)
        paths[base + "/infer"] = {
            "post": {
                "tags": [tag],
                "summary": "Inference with JSON tensors or the binary tensor extension",
                "parameters": params,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": infer_request},
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "responses": {"200": infer_ok, **_errors("400", "404", "413", "422", "500", "503", "504")},
            }
        }
    return paths


def kserve_v1_paths(service: Service) -> dict[str, dict[str, Any]]:
    tag = "KServe v1"
    models = {"type": "object", "properties": {"models": {"type": "array", "items": {"type": "string"}}}}
    ready = {"type": "object", "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}}}
    request = {
        "type": "object",
        "description": 'Either "instances" (a list of rows) or "inputs" (rows, or {name: [values]})',
        "properties": {"instances": {"type": "array", "minItems": 1}, "inputs": {}},
        "oneOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
    }
    predictions = {"type": "object", "properties": {"predictions": {"type": "array"}}}
    return {
        "/v1/models": _get(tag, "The models (one per API)", _json("model names", models)),
        "/v1/models/{name}": _get(tag, "Model readiness", _json("ready", ready), "404", "503", params=_model_enum(service)),
        "/v1/models/{name}:predict": {
            "post": {
                "tags": [tag],
                "summary": "Predict: instances in, predictions out",
                "parameters": _model_enum(service),
                "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
                "responses": {
                    "200": _json("predictions", predictions),
                    **_errors("400", "404", "413", "422", "500", "503", "504"),
                },
            }
        },
    }
