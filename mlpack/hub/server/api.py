"""The REST API under ``/api/v1``: bearer tokens, blob upload and download, entries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ...exceptions import BadInput, ServiceUnavailable
from .errors import Forbidden, TooLarge, Unauthorized
from .manifests import check_kind, check_part, check_sha, parse_push
from .tokens import TokenInfo

if TYPE_CHECKING:
    from .repository import Hub

UPLOAD_BATCH = 2 << 20  # bytes handed to the blob writer at once (it keeps two batches in flight)

def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticate(hub: Hub, request: Request, write: bool) -> TokenInfo:
    token = bearer(request)
    if token is None:
        raise Unauthorized("missing token: send 'Authorization: Bearer TOKEN' (make one with `mlpack hub token create NAME`)")
    info = hub.tokens.authenticate(token)
    if info is None:
        raise Unauthorized("invalid or revoked token; ask the hub's admin for a new one (`mlpack hub token create`)")
    if write and info.read_only:
        raise Forbidden(f"token {info.name!r} is read-only; this call needs a token made without --read-only")
    return info


async def _json_body(request: Request, limit: int) -> Any:
    import json

    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"request body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"request body is larger than {limit} bytes")
    try:
        return json.loads(bytes(body))
    except ValueError as exc:
        raise BadInput(f"the body is not valid JSON: {exc}") from None


def _int(request: Request, key: str, default: int) -> int:
    value = request.query_params.get(key)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise BadInput(f"{key} must be an integer, not {value!r}") from None


def _labels(request: Request) -> list[tuple[str, str]]:
    """Every ``label=k=v`` filter; an entry must match all of them."""
    out = []
    for item in request.query_params.getlist("label"):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"label filter {item!r} must look like key=value")
        out.append((key, value))
    return out


def _entry_params(request: Request) -> tuple[str, str, str]:
    p = request.path_params
    kind = check_kind(p["kind"])
    name = check_part(p["name"], "name")
    version = p["version"] if p["version"] == "latest" else check_part(p["version"], "version")
    return kind, name, version


def _stream(hub: Hub, sha256: str, size: int) -> StreamingResponse:
    return StreamingResponse(
        hub.storage.open(sha256),
        media_type="application/octet-stream",
        headers={"content-length": str(size), "etag": f'"{sha256}"', "x-sha256": sha256},
    )


def routes(hub: Hub) -> list[Route]:
    config = hub.config

    def whoami(request: Request) -> Response:
        return JSONResponse(authenticate(hub, request, write=False).to_dict())

    async def missing(request: Request) -> Response:
        await run_in_threadpool(authenticate, hub, request, False)
        body = await _json_body(request, config.max_request_json)
        digests = body.get("sha256") if isinstance(body, dict) else None
        if not isinstance(digests, list) or len(digests) > 10_000:
            raise BadInput('the body must be {"sha256": [up to 10000 digests]}')
        for d in digests:
            check_sha(d)
        return JSONResponse({"missing": await run_in_threadpool(hub.blobs.missing, digests)})

    def get_blob(request: Request) -> Response:
        authenticate(hub, request, write=False)
        sha = check_sha(request.path_params["sha256"])
        size = hub.blobs.size(sha)
        if size is None:
            raise BadInput(f"blob {sha} is not on the hub", status=404)
        return _stream(hub, sha, size)

    async def put_blob(request: Request) -> Response:
        await run_in_threadpool(authenticate, hub, request, True)
        sha = check_sha(request.path_params["sha256"])
        state = await run_in_threadpool(hub.blobs.state, sha)
        if state is not None and state[0] == "present":
            return JSONResponse({"sha256": sha, "size": state[1], "created": False})
        if state is not None:
            raise ServiceUnavailable("this blob is being garbage-collected; send it again in a moment", retry_after=1)
        declared = request.headers.get("content-length")
        size_hint = int(declared) if declared and declared.isdigit() else None
        if size_hint is not None and size_hint > config.max_blob_size:
            raise TooLarge(f"blob is larger than the hub's limit of {config.max_blob_size} bytes")
        writer = await run_in_threadpool(hub.storage.writer, sha, size_hint)
        try:
            batch: list[bytes] = []
            batched = size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > config.max_blob_size:
                    raise TooLarge(f"blob is larger than the hub's limit of {config.max_blob_size} bytes")
                batch.append(chunk)
                batched += len(chunk)
                if batched >= UPLOAD_BATCH:
                    # the writer hashes and writes in threads of its own; this only waits when it is behind
                    await run_in_threadpool(writer.write, batch)
                    batch, batched = [], 0
            await run_in_threadpool(writer.write, batch)
            size = await run_in_threadpool(writer.commit)
        except BaseException:
            await run_in_threadpool(writer.abort)
            raise
        await run_in_threadpool(hub.blobs.record, sha, size)
        return JSONResponse({"sha256": sha, "size": size, "created": True}, status_code=201)

    def list_entries(request: Request) -> Response:
        authenticate(hub, request, write=False)
        kind = check_kind(request.path_params["kind"])
        q = request.query_params
        return JSONResponse(
            hub.list(
                kind,
                q=q.get("q") or None,
                labels=_labels(request),
                sort=q.get("sort", "created"),
                order=q.get("order", "desc"),
                limit=_int(request, "limit", 50),
                offset=_int(request, "offset", 0),
            )
        )

    def versions(request: Request) -> Response:
        authenticate(hub, request, write=False)
        kind = check_kind(request.path_params["kind"])
        return JSONResponse(hub.versions(kind, check_part(request.path_params["name"], "name")))

    def get_entry(request: Request) -> Response:
        authenticate(hub, request, write=False)
        return JSONResponse(hub.get(*_entry_params(request)))

    async def put_entry(request: Request) -> Response:
        import time

        token = await run_in_threadpool(authenticate, hub, request, True)
        kind, name, version = _entry_params(request)
        if version == "latest":
            raise BadInput("push a concrete version, not 'latest'")
        body = await _json_body(request, config.max_request_json)
        push = parse_push(
            kind, name, version, body, max_manifest=config.max_manifest_size, max_files=config.max_files, now=time.time()
        )
        return JSONResponse(await run_in_threadpool(hub.commit, push, token.name), status_code=201)

    def delete_entry(request: Request) -> Response:
        authenticate(hub, request, write=True)
        force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
        return JSONResponse(hub.delete(*_entry_params(request), force=force))

    def get_file(request: Request) -> Response:
        authenticate(hub, request, write=False)
        kind, name, version = _entry_params(request)
        sha, size = hub.file(kind, name, version, request.path_params["relpath"])
        return _stream(hub, sha, size)

    return [
        Route("/api/v1/whoami", whoami, methods=["GET"]),
        Route("/api/v1/blobs/missing", missing, methods=["POST"]),
        Route("/api/v1/blobs/{sha256}", get_blob, methods=["GET"]),
        Route("/api/v1/blobs/{sha256}", put_blob, methods=["PUT"]),
        Route("/api/v1/{kind}", list_entries, methods=["GET"]),
        Route("/api/v1/{kind}/{name}", versions, methods=["GET"]),
        Route("/api/v1/{kind}/{name}/{version}", get_entry, methods=["GET"]),
        Route("/api/v1/{kind}/{name}/{version}", put_entry, methods=["PUT"]),
        Route("/api/v1/{kind}/{name}/{version}", delete_entry, methods=["DELETE"]),
        Route("/api/v1/{kind}/{name}/{version}/files/{relpath:path}", get_file, methods=["GET"]),
    ]
