"""The MLflow scoring protocol (``mlflow models serve``): ``/ping``, ``/health``, ``/version``
and ``POST /invocations``, answered by one API of the service.

``/invocations`` takes ``application/json`` holding exactly one of ``dataframe_split``,
``dataframe_records``, ``instances`` or ``inputs`` (plus an optional ``params`` object, which
mlpack APIs, taking one argument, do not use), or ``text/csv``; it answers
``{"predictions": ...}``. The payload becomes the API's own input and goes through the
API's descriptor exactly as a native request body does (same checks, same input contract,
same micro-batches): a DataFrame for ``PandasDataFrame``, an array for ``NumpyNdarray``,
and for a pydantic ``JSON`` API one validated model per record, each its own concurrent
call, so records batch together.

Errors have MLflow's shape, ``{"error_code": ..., "message": ...}``, and its status codes:
bad input (mlpack's 400 and 422) is a 400 ``BAD_REQUEST``; 413, 415, 500 (with the
``error_id`` of the logged traceback), 503 and 504 keep the native statuses.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..endpoint import ASGIEndpoint, _call_with_timeout, _ClientGone, _header, _receive_body, error_response
from ..exceptions import BadInput, ConfigError

if TYPE_CHECKING:
    from starlette.routing import Route

    from ..service import API, Service

log = logging.getLogger("mlpack.serve")

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
CONTENT_TYPES = ("application/json", "text/csv")
# mlpack status -> MLflow error_code (mlflow.protos.databricks_pb2 names)
_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    404: "ENDPOINT_NOT_FOUND",
    413: "REQUEST_LIMIT_EXCEEDED",
    415: "BAD_REQUEST",
    422: "INVALID_PARAMETER_VALUE",
    500: "INTERNAL_ERROR",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_REQUIRED = f"The input must be a JSON object with exactly one of the input fields {', '.join(FORMATS)}"


def select_api(service: Service, options: Any) -> tuple[API | None, str]:
    """The API ``/invocations`` calls, or None and why not. A configured name that the
    service lacks is a ConfigError (the server does not start)."""
    name = ((getattr(options, "protocols", None) or {}).get("mlflow") or {}).get("api")
    if name:
        api = service.apis.get(name)
        if api is None:
            have = ", ".join(service.apis) or "none"
            raise ConfigError(f"api_server.protocols.mlflow.api: service {service.name} has no API {name!r} (APIs: {have})")
        reason = _unsupported(api)
        return (None, reason) if reason else (api, "")
    if len(service.apis) != 1:
        names = ", ".join(service.apis) or "none"
        return None, (
            f"service {service.name} has {len(service.apis)} APIs ({names}); set api_server.protocols.mlflow.api "
            "in the config file to the one /invocations calls"
        )
    api = next(iter(service.apis.values()))
    reason = _unsupported(api)
    return (None, reason) if reason else (api, "")


def _unsupported(api: API) -> str:
    from ..io import JSON, NumpyNdarray, PandasDataFrame

    if not isinstance(api.input, (PandasDataFrame, NumpyNdarray, JSON)):
        return f"API {api.name} takes {type(api.input).__name__}; /invocations calls PandasDataFrame, NumpyNdarray and JSON APIs"
    if api.output.media_type not in ("application/json", "text/plain"):
        return f"API {api.name} answers {api.output.media_type}; /invocations answers JSON"
    return ""


# ---------------------------------------------------------------- the payload -> the API's input


def _bad(message: str) -> BadInput:
    return BadInput(message, status=400)


def _records(value: Any, fmt: str) -> list[Any]:
    """Records (objects) of a payload field, for APIs that take one record per call."""
    if fmt == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise _bad('dataframe_split must be an object with "columns" and a "data" array of rows')
        columns = value.get("columns")
        if not isinstance(columns, list):
            raise _bad('dataframe_split needs "columns" to make records of its rows')
        rows = value["data"]
        if not all(isinstance(r, list) and len(r) == len(columns) for r in rows):
            raise _bad(f"dataframe_split: every row of data must be an array of {len(columns)} values (the columns)")
        return [dict(zip(columns, row)) for row in rows]
    if isinstance(value, dict):
        return [value]  # one record
    if not isinstance(value, list):
        raise _bad(f"{fmt} must be an array of records")
    return value


def _array_rows(value: Any, fmt: str) -> Any:
    """The nested lists of an array API's input."""
    if fmt == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise _bad('dataframe_split must be an object with a "data" array of rows')
        return value["data"]
    if fmt == "dataframe_records":
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise _bad("dataframe_records must be an array of records (objects)")
        keys = list(value[0]) if value else []
        if any(list(r) != keys and set(r) != set(keys) for r in value):
            raise _bad(f"dataframe_records: every record must have the keys of the first ({', '.join(map(str, keys))})")
        return [[r[k] for k in keys] for r in value]
    if not isinstance(value, list):
        raise _bad(f"{fmt} must be an array for API that takes an array (named inputs are not supported)")
    return value


def _frame_json(value: Any, fmt: str) -> Any:
    """What a ``PandasDataFrame`` descriptor reads as a table: records, list rows, split or columns."""
    if fmt == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise _bad('dataframe_split must be an object with "columns" and a "data" array of rows')
        if "columns" not in value and "index" not in value:
            return value["data"]
        return {k: value[k] for k in ("columns", "index", "data") if k in value}
    if fmt == "dataframe_records" and not isinstance(value, list):
        raise _bad("dataframe_records must be an array of records (objects)")
    if not isinstance(value, (list, dict)):
        raise _bad(f"{fmt} must be an array of rows or an object of columns")
    return value


def decode(api: API, body: bytes, mime: str, charset: str | None) -> tuple[Any, bool]:
    """``(value, per_record)``: the API's argument, or with ``per_record`` a list of them."""
    import orjson

    from ..io import JSON, NumpyNdarray, PandasDataFrame
    from ..io.base import _decode_text, _loads

    inp = api.input
    if mime == "text/csv":
        if isinstance(inp, PandasDataFrame):
            return inp.from_http_body(body, "text/csv", charset), False
        text = _decode_text(body, charset, "request body")
        if isinstance(inp, NumpyNdarray):
            return inp._parse_text(text, "csv"), False
        records = inp._concat(list(inp._iter(_text_io(text), "csv", 10_000, "request body")))
        return (records, True) if inp._validates else (records, False)
    payload = _loads(body, charset, "request body")  # 400 for what is not standard JSON (NaN too)
    if isinstance(inp, JSON):  # again, exactly: orjson reads integers beyond 64 bits as floats, pydantic does not
        import json

        payload = json.loads(body)
    if not isinstance(payload, dict):
        raise _bad(f"{_REQUIRED}; received {'an array' if isinstance(payload, list) else 'a ' + type(payload).__name__}")
    found = [k for k in FORMATS if k in payload]
    if len(found) != 1:
        raise _bad(f"{_REQUIRED}; received the fields {', '.join(map(repr, payload)) or '(none)'}")
    unknown = [k for k in payload if k not in FORMATS and k != "params"]
    if unknown:
        raise _bad(f"unknown field(s) {', '.join(map(repr, unknown))}; {_REQUIRED}, and optionally params")
    if "params" in payload and not isinstance(payload["params"], dict):
        raise _bad("params must be an object")
    fmt = found[0]
    value = payload[fmt]
    if isinstance(inp, PandasDataFrame):
        return inp.from_http_body(orjson.dumps(_frame_json(value, fmt)), "application/json", None), False
    if isinstance(inp, NumpyNdarray):
        return inp.from_http_body(orjson.dumps(_array_rows(value, fmt)), "application/json", None), False
    assert isinstance(inp, JSON)
    if not inp._validates:  # plain JSON: the value as sent (dataframe_* as records), in one call
        return (value if fmt in ("instances", "inputs") else _records(value, fmt)), False
    records = _records(value, fmt)
    if not records:
        raise BadInput(f"{fmt} has no records", status=422)
    return [_one_record(inp, r, i) for i, r in enumerate(records)], True


def _one_record(inp: Any, record: Any, i: int) -> Any:
    import json

    try:
        return inp.from_http_body(json.dumps(record).encode(), "application/json", None)
    except BadInput as exc:
        raise BadInput(f"record {i + 1}: {exc}", status=exc.http_status, details=getattr(exc, "details", None)) from exc


def _text_io(text: str) -> Any:
    import io

    return io.StringIO(text)


def _encode(api: API, result: Any) -> bytes:
    import orjson

    if api.output.media_type == "text/plain":
        return orjson.dumps(result if isinstance(result, str) else str(result))
    return api.output._encode(result)


# ---------------------------------------------------------------- HTTP


def _error(status: int, message: str, extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Any:
    from ..endpoint import json_response

    body = {"error_code": _CODES.get(status, "INTERNAL_ERROR"), "message": message, **(extra or {})}
    return json_response(body, 400 if status == 422 else status, headers)


def mlflow_error(exc: Exception, errors: Any) -> Any:
    """The native error answer (same 4xx/5xx rules and logging), in MLflow's shape."""
    import orjson

    native = error_response(exc, errors)
    data = orjson.loads(native.body)
    extra = {k: v for k, v in data.items() if k in ("details", "error_id")}
    headers = {"Retry-After": native.headers["retry-after"]} if "retry-after" in native.headers else None
    return _error(native.status_code, data["error"], extra, headers)


def routes(service: Service, state: Any) -> list[Route]:
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    from ..wholeresponse import send_response, send_whole

    api, reason = select_api(service, state.options)
    if api is None:
        log.warning("MLflow /invocations is not available: %s", reason)
    limit, timeout = state.options.max_request_size, state.options.timeout
    errors = getattr(state, "errors", None)
    meter = state.metrics.meter("/invocations", "mlflow") if state.metrics is not None else None

    async def ping(_: Any) -> Response:
        if state.ready:
            return PlainTextResponse("\n")
        return PlainTextResponse(state.load_error or "loading models", status_code=503)

    async def version(_: Any) -> Response:
        return PlainTextResponse(__version__)

    async def answer(scope: Any, receive: Any) -> tuple[int, bytes] | Any:
        if api is None:
            return _error(404, f"/invocations is not available: {reason}")
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.isdigit():
                raise BadInput("invalid Content-Length header", status=400)
            if int(length) > limit:
                raise BadInput(f"request body of {length} bytes is over the limit of {limit} bytes", status=413)
        mime, charset = _content_type(_header(scope, b"content-type"))
        body = await _receive_body(receive, limit)
        if not state.ready:
            await state.wait_loaded(timeout)
        value, per_record = decode(api, body, mime, charset)
        if per_record:
            calls = asyncio.gather(*(api.call(v) for v in value))
            results = await asyncio.wait_for(calls, timeout)
            return 200, b'{"predictions":[' + b",".join(_encode(api, r) for r in results) + b"]}"
        result = await _call_with_timeout(api.call, value, state.deadlines)
        return 200, b'{"predictions":' + _encode(api, result) + b"}"

    async def invocations(scope: Any, receive: Any, send: Any) -> None:
        started = meter.start() if meter is not None else 0.0
        status: int | None = None
        try:
            try:
                response = await answer(scope, receive)
            except asyncio.TimeoutError:
                response = _error(504, f"the request took longer than the {timeout:g} s timeout")
            except _ClientGone:
                return
            except Exception as exc:
                response = mlflow_error(exc, errors)
            status = response[0] if isinstance(response, tuple) else response.status_code
            if meter is not None:
                # counted before the answer leaves: a client holding its answer finds it in /metrics
                meter.done(started, status)
            if isinstance(response, tuple):
                await send_whole(send, status, b"application/json", response[1])
            else:
                await send_response(response, scope, receive, send)
        finally:
            if meter is not None and status is None:
                meter.done(started, None)

    return [
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/invocations", ASGIEndpoint(invocations), methods=["POST"]),
    ]


def _content_type(value: str | None) -> tuple[str, str | None]:
    """MLflow's rule: JSON or CSV, UTF-8 only; anything else is a 415."""
    from ..io.base import _content_type as parse

    mime, charset = parse(value)
    if mime is None:
        raise BadInput(f"no content-type; /invocations takes {' or '.join(CONTENT_TYPES)}", status=415)
    if mime == "application/csv":
        mime = "text/csv"
    if mime not in CONTENT_TYPES:
        raise BadInput(f"unsupported content-type {mime!r}; /invocations takes {' or '.join(CONTENT_TYPES)}", status=415)
    if charset not in (None, "utf-8", "utf8"):
        raise BadInput(f"charset {charset!r}: /invocations takes UTF-8 only", status=415)
    return mime, None


def openapi_paths(service: Service, options: Any = None) -> dict[str, dict[str, Any]]:
    from .mlflow_docs import paths

    try:
        api, _ = select_api(service, options)
    except ConfigError:
        api = None
    return paths(api, service.input_contract())
