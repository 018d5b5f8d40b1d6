"""KServe v1 (the TensorFlow Serving style REST protocol); each API is a model.

``GET /v1/models`` -> ``{"models": [names]}``; ``GET /v1/models/{name}`` -> ``{"name", "ready"}``;
``POST /v1/models/{name}:predict`` with ``{"instances": [...]}`` (rows) or ``{"inputs": ...}``
(rows, or columns as ``{name: [values]}``) -> ``{"predictions": [...]}``.

The instances are read by the API's own input descriptor, exactly as a native request body:
``NumpyNdarray`` and ``PandasDataFrame`` APIs get all instances in one call; ``JSON`` and ``Text``
APIs are called once per instance (concurrently, joining the same micro-batches).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exceptions import BadInput, NotFound
from . import http
from .v2_models import kind_of

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.routing import Route

    from ..service import API, Service


def _find(service: Service, scope: dict[str, Any]) -> API:
    name = scope.get("path_params", {}).get("name", "")
    api = service.apis.get(name)
    if api is None:
        raise NotFound(f"unknown model {name!r}; models: {', '.join(service.apis) or 'none'}")
    return api


def _instances(body: bytes) -> list[Any]:
    import orjson

    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadInput(f"the predict request is not valid JSON: {exc}") from None
    if not isinstance(request, dict) or ("instances" in request) == ("inputs" in request):
        raise BadInput('the predict request must be an object with either "instances" or "inputs"')
    rows = request.get("instances", request.get("inputs"))
    if isinstance(rows, dict) and "inputs" in request:  # columnar: {name: [values]}
        columns = list(rows.values())
        if not columns or not all(isinstance(c, list) and len(c) == len(columns[0]) for c in columns):
            raise BadInput('columnar "inputs" must map each name to a list of values, all of one length')
        rows = [dict(zip(rows, values)) for values in zip(*columns)]
    if not isinstance(rows, list) or not rows:
        raise BadInput('"instances" (or "inputs") must be a non-empty list')
    return rows


def _plain(api: API, result: Any) -> Any:
    import orjson

    encoded = api.output._encode(result)
    return encoded.decode() if kind_of(api.output) == "text" else orjson.loads(encoded)


async def _predict(state: Any, api: API, body: bytes) -> Response:
    import orjson

    rows = _instances(body)
    read = api.input.from_http_body
    if kind_of(api.input) in ("ndarray", "frame"):
        result = await http.call(state, api, read(orjson.dumps(rows), "application/json", None))
        predictions = _plain(api, result)
        if not isinstance(predictions, list):
            predictions = [predictions]
    else:
        if kind_of(api.input) == "text":
            if not all(isinstance(r, str) for r in rows):
                raise BadInput(f"model {api.name} takes text: each instance must be a string")
            values = list(rows)
        else:
            values = [read(orjson.dumps(r), "application/json", None) for r in rows]
        predictions = [_plain(api, r) for r in await http.call_each(state, api, values)]
    return http.json_response({"predictions": predictions})


def routes(service: Service, state: Any) -> list[Route]:
    from starlette.routing import Route

    async def models(_: Any, __: bytes) -> Response:
        return http.json_response({"models": list(service.apis)})

    async def model(scope: Any, _: bytes) -> Response:
        api = _find(service, scope)
        return http.json_response({"name": api.name, "ready": state.ready}, 200 if state.ready else 503)

    async def predict(scope: Any, body: bytes) -> Response:
        return await _predict(state, _find(service, scope), body)

    return [
        Route("/v1/models", http.endpoint(state, models, read=False), methods=["GET"], name="v1_models"),
        Route(
            "/v1/models/{name}:predict",
            http.endpoint(state, predict, meter=("/v1/models/{name}:predict", "kserve_v1")),
            methods=["POST"],
            name="v1_predict",
        ),
        Route("/v1/models/{name}", http.endpoint(state, model, read=False), methods=["GET"], name="v1_model"),
    ]


def fast_routes(service: Service, state: Any) -> dict[str, Any]:
    """``POST /v1/models/<api>:predict`` by exact path, skipping the router."""

    async def predict(scope: Any, body: bytes) -> Response:
        return await _predict(state, _find(service, scope), body)

    app = http.endpoint(state, predict, meter=("/v1/models/{name}:predict", "kserve_v1"))
    return {f"/v1/models/{name}:predict": http.with_path_params(app, {"name": name}) for name in service.apis}


def openapi_paths(service: Service) -> dict[str, dict[str, Any]]:
    from .openapi_docs import kserve_v1_paths

    return kserve_v1_paths(service)
