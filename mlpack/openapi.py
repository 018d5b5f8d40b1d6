"""The OpenAPI 3 document of a service, built from its IO descriptors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import __version__

if TYPE_CHECKING:
    from .service import Service

_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "What went wrong and what to do next."},
        "details": {"description": "Field errors for 422 responses."},
        "error_id": {"type": "string", "description": "Id of the logged traceback for 500 responses."},
    },
    "required": ["error"],
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


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


def openapi_spec(svc: Service) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": _ERROR}
    paths: dict[str, Any] = {}
    for api in svc.apis.values():
        for descriptor in (api.input, api.output):
            schemas.update(descriptor.openapi_components())
        responses = {"200": to_openapi30({"description": "Successful response", **api.output.openapi_responses()})}
        responses.update(
            {
                "400": _error("Malformed input"),
                "413": _error("Request body too large"),
                "415": _error("Unsupported content type"),
                "422": _error("Input does not validate"),
                "500": _error("Error in the service code or the model"),
                "503": _error("Not ready, or the model queue is past its latency budget (see Retry-After)"),
            }
        )
        paths[api.route] = {
            "post": {
                "tags": ["Service APIs"],
                "operationId": f"{svc.name}__{api.name}",
                "summary": f"{api.name}: {type(api.input).__name__} -> {type(api.output).__name__}",
                "description": api.doc or f"Calls {api.name}.",
                "requestBody": to_openapi30(api.input.openapi_request_body()),
                "responses": responses,
            }
        }
    paths["/livez"] = _probe("Liveness: the process answers", {"200": "alive"})
    paths["/healthz"] = _probe("Health (same as /livez)", {"200": "healthy"})
    paths["/readyz"] = _probe("Readiness: models are loaded", {"200": "ready", "503": "still loading"})
    paths["/metrics"] = _probe("Prometheus metrics", {"200": "metrics in the text exposition format"})
    return {
        "openapi": "3.0.3",
        "info": {
            "title": svc.name,
            "version": __version__,
            "description": f"Prediction service **{svc.name}**, served by mlpack {__version__}.",
        },
        "tags": [{"name": "Service APIs"}, {"name": "Infrastructure"}],
        "paths": paths,
        "components": {"schemas": to_openapi30(schemas)},
    }
