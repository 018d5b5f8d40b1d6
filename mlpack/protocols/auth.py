"""Bearer tokens on the server: ``mlpack serve --auth-token-file FILE``.

The file holds one token per line; blank lines and ``#`` comments are ignored. Only the
tokens' SHA-256 digests stay in memory, and a request's token is compared with each of them
with ``hmac.compare_digest`` (constant time, no early exit), so neither the time an answer
takes nor a log line tells anything about a token.

Probes stay open (a kubelet or load balancer has no token); ``/metrics`` and the docs are
protected as ``api_server.auth.protect_metrics`` / ``protect_docs`` say; every other path
(every API route of every protocol, and paths that do not exist) needs a token.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigError

# open whatever the configuration: liveness/readiness probes of every protocol
PROBES = frozenset({"/livez", "/readyz", "/healthz", "/ping", "/health", "/v2/health/live", "/v2/health/ready"})
DOCS = frozenset({"/", "/docs.json"})
STATIC_PREFIX = "/static/"  # the Swagger UI's own JavaScript and CSS: public code, no data
SCHEME_NAME = "bearerAuth"
MAX_TOKEN_FILE = 1024 * 1024
_UNAUTHORIZED_BODY = b'{"error":"missing or invalid bearer token; send the header Authorization: Bearer TOKEN"}'


def read_token_file(path: str) -> list[bytes]:
    """The SHA-256 digests of the tokens in ``path``; ConfigError when it is unreadable or has none."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_TOKEN_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read auth token file {path}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_TOKEN_FILE:
        raise ConfigError(f"auth token file {path} is over {MAX_TOKEN_FILE} bytes; it should hold one token a line")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(f"auth token file {path} is not ASCII text; tokens are printable ASCII, one a line") from None
    digests: list[bytes] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        if any(not (33 <= ord(c) <= 126) for c in token):  # never show the token itself
            raise ConfigError(f"auth token file {path}, line {lineno}: a token has no spaces or control characters")
        digest = hashlib.sha256(token.encode()).digest()
        if digest not in digests:
            digests.append(digest)
    if not digests:
        raise ConfigError(f"auth token file {path} has no tokens (one a line; blank lines and # comments are ignored)")
    return digests


@dataclass(frozen=True)
class BearerAuth:
    """Which paths need a token, and the check of a request's ``Authorization`` header."""

    digests: tuple[bytes, ...]
    open_paths: frozenset[str]
    static_open: bool

    @classmethod
    def from_options(cls, options: Any) -> BearerAuth | None:
        """None when the server runs without tokens (``options`` is a ``ServeOptions``)."""
        if not options.auth_token_file:
            return None
        open_paths = set(PROBES)
        if not options.protect_docs:
            open_paths |= DOCS
        if not options.protect_metrics:
            open_paths.add("/metrics")
        return cls(tuple(read_token_file(options.auth_token_file)), frozenset(open_paths), not options.protect_docs)

    def is_open(self, path: str) -> bool:
        return path in self.open_paths or (self.static_open and path.startswith(STATIC_PREFIX))

    def protects(self, path: str) -> bool:
        return not self.is_open(path)

    def allows(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """Whether the raw ASGI ``headers`` carry one of the tokens."""
        value = None
        for key, val in headers:
            if key == b"authorization":
                value = val
                break
        if value is None:
            return False
        scheme, _, token = value.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        digest = hashlib.sha256(token.strip()).digest()
        ok = False
        for known in self.digests:  # every comparison runs: the time does not say which one matched
            ok |= hmac.compare_digest(digest, known)
        return ok

    async def refuse(self, send: Any) -> None:
        """The 401 answer, written on the raw ASGI ``send``."""
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_UNAUTHORIZED_BODY)).encode()),
            (b"www-authenticate", b'Bearer realm="mlpack"'),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": _UNAUTHORIZED_BODY})


def secure_openapi(spec: dict[str, Any], auth: BearerAuth | None) -> dict[str, Any]:
    """``spec`` with the bearer scheme declared and required on every protected operation
    (the Swagger UI then shows an Authorize button and sends the token)."""
    if auth is None:
        return spec
    spec.setdefault("components", {}).setdefault("securitySchemes", {})[SCHEME_NAME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "A token of the server's --auth-token-file (Authorization: Bearer TOKEN).",
    }
    unauthorized = {
        "description": "Missing or invalid bearer token",
        "headers": {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for path, item in spec.get("paths", {}).items():
        concrete = path.split("{", 1)[0] if "{" in path else path
        if "{" not in path and auth.is_open(concrete):
            continue
        for operation in item.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["security"] = [{SCHEME_NAME: []}]
                operation["responses"].setdefault("401", unauthorized)
    return spec
