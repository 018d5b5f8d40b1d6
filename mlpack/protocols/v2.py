"""Open Inference Protocol v2 (REST), as KServe, Triton and MLServer serve it; each API is a model.

``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}[/versions/{v}]``,
``.../ready``, ``POST .../infer``; tensors as JSON or with the binary tensor extension.
Errors answer ``{"error": message}`` with the native status rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exceptions import BadInput, NotFound
from . import http, tensors
from .v2_models import V2Model

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.routing import Route

    from ..service import Service

VERSION = "1"  # an API has one version
HEADER_LENGTH = "inference-header-content-length"
EXTENSIONS = ["binary_tensor_data"]


def _models(service: Service) -> dict[str, V2Model]:
    contract = service.input_contract()
    return {api.name: V2Model(api, contract) for api in service.apis.values()}


def _find(models: dict[str, V2Model], scope: dict[str, Any]) -> V2Model:
    params = scope.get("path_params", {})
    name, version = params.get("name", ""), params.get("version")
    model = models.get(name)
    if model is None:
        raise NotFound(f"unknown model {name!r}; models: {', '.join(models) or 'none'}")
    if version is not None and version != VERSION:
        raise NotFound(f"model {name!r} has no version {version!r}; it has version {VERSION}")
    return model


def metadata(model: V2Model) -> dict[str, Any]:
    return {
        "name": model.api.name,
        "versions": [VERSION],
        "platform": "mlpack",
        "inputs": model.inputs(),
        "outputs": model.outputs(),
    }


def _parse_request(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    import orjson

    binary = b""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise BadInput(f"Inference-Header-Content-Length {header_length!r} is not a length within the body")
        body, binary = body[: int(header_length)], body[int(header_length) :]
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadInput(f"the inference request is not valid JSON: {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or not request["inputs"]:
        raise BadInput("the inference request must be an object with a non-empty 'inputs' list")
    return request, binary


def _inputs(request: dict[str, Any], binary: bytes) -> list[tuple[str, Any]]:
    out, pos = [], 0
    for i, tensor in enumerate(request["inputs"]):
        name, datatype, shape = tensors.check_header(tensor, f"inputs[{i}]")
        size = tensor.get("parameters", {}).get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise BadInput(f"input {name}: binary_data_size must be a byte count")
            if pos + size > len(binary):
                raise BadInput(f"input {name}: binary_data_size {size} runs past the {len(binary)} bytes of binary data")
            out.append((name, tensors.from_binary(name, datatype, shape, binary[pos : pos + size])))
            pos += size
        elif "data" in tensor:
            out.append((name, tensors.from_json(name, datatype, shape, tensor["data"])))
        else:
            raise BadInput(f"input {name} has neither 'data' nor parameters.binary_data_size")
    if pos != len(binary):
        raise BadInput(f"the request has {len(binary) - pos} bytes of binary data that no input claims")
    return out


def _wanted(request: dict[str, Any], produced: list[str]) -> list[tuple[str, bool]]:
    """``(output name, as binary)`` for each output to answer with."""
    params = request.get("parameters") or {}
    default = bool(params.get("binary_data_output", False)) if isinstance(params, dict) else False
    asked = request.get("outputs")
    if asked is not None and not isinstance(asked, list):
        raise BadInput("'outputs' must be a list of {\"name\": ...} objects")
    if not asked:  # none asked for: all of them
        return [(name, default) for name in produced]
    wanted = []
    for item in asked:
        name = item.get("name") if isinstance(item, dict) else None
        if name not in produced:
            raise BadInput(f"unknown output {name!r}; this model answers {', '.join(produced)}")
        opts = item.get("parameters") or {}
        wanted.append((name, bool(opts.get("binary_data", default)) if isinstance(opts, dict) else default))
    return wanted


async def _infer(state: Any, model: V2Model, body: bytes, header_length: str | None) -> Response:
    from starlette.responses import Response

    request, binary = _parse_request(body, header_length)
    arguments, per_row = model.arguments(_inputs(request, binary))
    results = await http.call_each(state, model.api, arguments)
    produced = dict(model.results(results, per_row))
    outputs, chunks = [], []
    for name, as_binary in _wanted(request, list(produced)):
        tensor, raw = tensors.to_output(name, produced[name], as_binary)
        outputs.append(tensor)
        if raw is not None:
            chunks.append(raw)
    answer: dict[str, Any] = {"model_name": model.api.name, "model_version": VERSION, "outputs": outputs}
    if isinstance(request.get("id"), str):
        answer["id"] = request["id"]
    import orjson

    head = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return Response(head, media_type="application/json")
    headers = {"Inference-Header-Content-Length": str(len(head))}
    return Response(head + b"".join(chunks), media_type="application/octet-stream", headers=headers)


def routes(service: Service, state: Any) -> list[Route]:
    from starlette.routing import Route

    import mlpack

    models = _models(service)
    server = {"name": "mlpack", "version": mlpack.__version__, "extensions": EXTENSIONS}

    async def server_metadata(_: Any, __: bytes) -> Response:
        return http.json_response(server)

    async def live(_: Any, __: bytes) -> Response:
        return http.json_response({"live": True})

    async def ready(_: Any, __: bytes) -> Response:
        return http.json_response({"ready": state.ready}, 200 if state.ready else 503)

    async def model_metadata(scope: Any, _: bytes) -> Response:
        return http.json_response(metadata(_find(models, scope)))

    async def model_ready(scope: Any, _: bytes) -> Response:
        model = _find(models, scope)
        return http.json_response({"name": model.api.name, "ready": state.ready}, 200 if state.ready else 503)

    async def infer(scope: Any, body: bytes) -> Response:
        return await _infer(state, _find(models, scope), body, http.header(scope, HEADER_LENGTH))

    def get(path: str, handle: Any, name: str) -> Route:
        return Route(path, http.endpoint(state, handle, read=False), methods=["GET"], name=name)

    out = [
        get("/v2", server_metadata, "v2_server_metadata"),
        get("/v2/health/live", live, "v2_live"),
        get("/v2/health/ready", ready, "v2_ready"),
    ]
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        suffix = "_version" if "version" in base else ""
        out += [
            get(base, model_metadata, "v2_model_metadata" + suffix),
            get(base + "/ready", model_ready, "v2_model_ready" + suffix),
            Route(
                base + "/infer",
                http.endpoint(state, infer, meter=(base + "/infer", "v2")),
                methods=["POST"],
                name="v2_infer" + suffix,
            ),
        ]
    return out


def fast_routes(service: Service, state: Any) -> dict[str, Any]:
    """``POST /v2/models/<api>/infer`` (and ``/versions/1/infer``) by exact path, skipping the router."""
    models = _models(service)

    async def infer(scope: Any, body: bytes) -> Response:
        return await _infer(state, _find(models, scope), body, http.header(scope, HEADER_LENGTH))

    out = {}
    for base, params in (("/v2/models/{name}", {}), ("/v2/models/{name}/versions/{version}", {"version": VERSION})):
        app = http.endpoint(state, infer, meter=(base + "/infer", "v2"))
        for name in models:
            path = base.replace("{name}", name).replace("{version}", VERSION) + "/infer"
            out[path] = http.with_path_params(app, {"name": name, **params})
    return out


def openapi_paths(service: Service) -> dict[str, dict[str, Any]]:
    from .openapi_docs import v2_paths

    return v2_paths(service)
