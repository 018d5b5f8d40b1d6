"""The OpenAPI path items of the MLflow scoring protocol (``mlpack.protocols.mlflow``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..service import API

TAG = "MLflow scoring protocol"
_ERROR = {
    "type": "object",
    "properties": {
        "error_code": {"type": "string", "description": "MLflow's code: BAD_REQUEST, INVALID_PARAMETER_VALUE, INTERNAL_ERROR..."},
        "message": {"type": "string", "description": "What went wrong and what to do next."},
        "details": {"description": "Field errors of invalid input: a list of {loc, msg, type}."},
        "error_id": {"type": "string", "description": "Id of the logged traceback, for 500 responses."},
    },
    "required": ["error_code", "message"],
}
_ERRORS = {
    "400": "Bad input: not JSON, not exactly one input field, or values the API does not take",
    "413": "Request body too large (api_server.max_request_size)",
    "415": "Content type other than application/json or text/csv, or a charset other than UTF-8",
    "500": "Error in the service code (the body has an error_id, logged with the traceback)",
    "503": "Not ready, or the model queue is past its latency budget (see Retry-After)",
    "504": "The API took longer than api_server.timeout",
}


def _text(summary: str, codes: dict[str, str]) -> dict[str, Any]:
    responses = {
        code: {"description": text, "content": {"text/plain": {"schema": {"type": "string"}}}} for code, text in codes.items()
    }
    return {"get": {"tags": [TAG], "summary": summary, "responses": responses}}


def _fields(api: API, contract: dict[str, Any] | None) -> dict[str, Any]:
    """The schema of each input field's value: what the API's own route takes, as rows."""
    from ..io import JSON, NumpyNdarray

    own = api.input.openapi_schema(contract)
    if isinstance(api.input, JSON):
        if not api.input._validates:
            return {"dataframe_records": {"type": "array"}, "instances": {}, "inputs": {}}
        records = {"type": "array", "minItems": 1, "items": own}
        return {"dataframe_records": records, "instances": records, "inputs": {"anyOf": [records, own]}}
    fields = {"instances": own, "inputs": own}
    if isinstance(api.input, NumpyNdarray):
        width = contract.get("n_features") if contract else None
        if isinstance(width, int) and width > 0 and own.get("items", {}).get("type") == "array":
            cell = own["items"].get("items") or {}
            record = {"type": "object", "minProperties": width, "maxProperties": width, "additionalProperties": cell}
            fields["dataframe_records"] = {"type": "array", "minItems": 1, "items": record}
        return fields
    fields["dataframe_records"] = own
    return fields


def _payload(api: API, contract: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON body: exactly one input field, optionally ``params``."""
    variants = [
        {"type": "object", "required": [name], "properties": {name: schema, "params": {"type": "object"}},
         "additionalProperties": False}
        for name, schema in _fields(api, contract).items()
    ]  # fmt: skip
    return {"oneOf": variants, "description": "Exactly one input field; dataframe_split ({columns, data}) is also read."}


def _csv(api: API) -> dict[str, Any] | None:
    from ..io import PandasDataFrame

    return api.input._csv_schema() if isinstance(api.input, PandasDataFrame) else None


def paths(api: API | None, contract: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    out = {
        "/ping": _text("MLflow health check: 200 when the models are loaded", {"200": "ready", "503": "still loading"}),
        "/health": _text("The same as /ping", {"200": "ready", "503": "still loading"}),
        "/version": _text("The server's version (mlpack's)", {"200": "the version"}),
    }
    if api is None:
        return out
    from ..openapi import to_openapi30

    error = {"application/json": {"schema": _ERROR}}
    responses: dict[str, Any] = {
        "200": {
            "description": f"The results of {api.name}, under predictions",
            "content": {
                "application/json": {"schema": {"type": "object", "required": ["predictions"], "properties": {"predictions": {}}}}
            },  # fmt: skip
        }
    }
    responses.update({code: {"description": text, "content": error} for code, text in _ERRORS.items()})
    out["/invocations"] = {
        "post": {
            "tags": [TAG],
            "operationId": f"mlflow__invocations__{api.name}",
            "summary": f"MLflow scoring: calls {api.name}",
            "description": (
                f"Calls the API **{api.name}** ({type(api.input).__name__}) as `POST {api.route}` does. "
                "JSON with exactly one of dataframe_split, dataframe_records, instances, inputs "
                "(and optionally params), or text/csv."
            ),
            "requestBody": to_openapi30(
                {
                    "required": True,
                    "content": {"application/json": {"schema": _payload(api, contract)}}
                    | ({"text/csv": {"schema": csv}} if (csv := _csv(api)) else {}),
                }
            ),
            "responses": responses,
        }
    }
    return out
