"""The hub's web UI: server-rendered pages over the same ``Hub`` object the REST API uses.

``ui_routes(hub)`` returns Starlette routes for ``/``, ``/login``, ``/logout``, ``/models...``
and ``/bundles...``. Reading needs no JavaScript; pages carry their CSS inline and a strict
Content-Security-Policy. A request is signed in by ``Authorization: Bearer`` or by the session
cookie the login page sets; cookie-signed state changes (delete, logout) need the CSRF token.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ...exceptions import AmbiguousTag, BadInput, InUse, InvalidTag, NotFound
from ...tag import validate_part
from .render import Renderer
from .session import LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_SECONDS, Session, Signer, new_login_csrf, same_secret

KINDS = ("models", "bundles")
MAX_FORM = 16 * 1024
LIST_LIMIT = 500
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class User:
    name: str
    read_only: bool
    via_cookie: bool
    session: Session | None = None


class WebUI:
    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.render = Renderer()
        self._signer: Signer | None = None

    async def signer(self) -> Signer:
        if self._signer is None:  # the key never changes once made, so one read per process
            self._signer = Signer(await run_in_threadpool(self.hub.secret_key))
        return self._signer

    # -- who is asking -----------------------------------------------------------------------
    async def user(self, request: Request) -> User | None:
        header = request.headers.get("authorization")
        if header:
            scheme, _, token = header.partition(" ")
            info = await run_in_threadpool(self.hub.tokens.authenticate, token.strip()) if scheme.lower() == "bearer" else None
            return User(info.name, info.read_only, via_cookie=False) if info else None
        session = (await self.signer()).read(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return None
        tokens = await run_in_threadpool(self.hub.tokens.list)
        token = next((t for t in tokens if t.name == session.name and t.created_at == session.created_at), None)
        return User(token.name, token.read_only, via_cookie=True, session=session) if token else None

    async def page(self, request: Request, template: str, user: User | None, status: int = 200, **context: Any) -> Response:
        csrf = (await self.signer()).csrf(user.session) if user and user.session else ""
        html = self.render(template, user=user, csrf=csrf, **context)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    async def error(self, request: Request, user: User | None, status: int, title: str, detail: str) -> Response:
        return await self.page(request, "error.html", user, status=status, title=title, detail=detail)

    async def signed_in(self, request: Request) -> tuple[User | None, Response | None]:
        user = await self.user(request)
        if user is not None:
            return user, None
        if request.headers.get("authorization"):
            return None, await self.error(request, None, 401, "Token refused", "The bearer token is unknown or revoked.")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return None, RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303, headers=HEADERS)

    async def form(self, request: Request) -> dict[str, str]:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                raise BadInput("form too large")
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}

    async def check_write(self, request: Request, user: User, form: dict[str, str]) -> Response | None:
        if user.via_cookie and not (user.session and (await self.signer()).check_csrf(user.session, form.get("csrf"))):
            return await self.error(request, user, 403, "Form refused",
                                    "The form's security token is missing or stale; reload the page and try again.")
        return None

    # -- login / logout ----------------------------------------------------------------------
    async def login_page(self, request: Request, error: str = "", status: int = 200) -> Response:
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_login_csrf()
        response = await self.page(request, "login.html", None, status=status, login_csrf=token, error=error,
                                   next=_safe_next(request.query_params.get("next")))
        _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, 3600)
        return response

    async def login(self, request: Request) -> Response:
        try:
            form = await self.form(request)
        except BadInput:
            return await self.login_page(request, "The form is too large.", 400)
        if not same_secret(form.get("csrf"), request.cookies.get(LOGIN_CSRF_COOKIE)):
            return await self.login_page(request, "The login form expired; please try again.", 403)
        info = await run_in_threadpool(self.hub.tokens.authenticate, form.get("token", "").strip())
        if info is None:
            return await self.login_page(request, "That token is unknown or revoked.", 401)
        cookie, _ = (await self.signer()).issue(info.name, info.created_at)
        response = RedirectResponse(_safe_next(form.get("next")), status_code=303, headers=HEADERS)
        _set_cookie(request, response, SESSION_COOKIE, cookie, SESSION_SECONDS)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return response

    async def logout(self, request: Request) -> Response:
        user = await self.user(request)
        if user is not None and user.via_cookie:
            refused = await self.check_write(request, user, await self.form(request))
            if refused:
                return refused
        response = RedirectResponse("/login", status_code=303, headers=HEADERS)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- pages -------------------------------------------------------------------------------
    async def home(self, request: Request) -> Response:
        user, redirect = await self.signed_in(request)
        return redirect or RedirectResponse("/models", status_code=303, headers=HEADERS)

    async def listing(self, kind: str, request: Request) -> Response:
        user, redirect = await self.signed_in(request)
        if redirect:
            return redirect
        q = request.query_params.get("q", "").strip()[:100]
        label = request.query_params.get("label", "").strip()[:200]
        message, message_kind = "", ""
        labels: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in label.split(","))):
            key, sep, value = pair.partition("=")
            if not sep or not key:
                message, message_kind = f"label filter {pair!r} is not key=value", "error"
                break
            labels[key.strip()] = value.strip()
        deleted = request.query_params.get("deleted", "")
        if deleted and not message and _is_tag(deleted):
            message, message_kind = f"Deleted {kind[:-1]} {deleted}.", "ok"
        page = await run_in_threadpool(partial(self.hub.list, kind, q=q or None, labels=labels or None, limit=LIST_LIMIT))
        groups: dict[str, dict[str, Any]] = {}
        for item in page["items"]:  # newest first, so the first seen of a name is its latest
            group = groups.setdefault(item["name"], {"name": item["name"], "versions": 0, "latest": item})
            group["versions"] += 1
        return await self.page(request, "list.html", user, kind=kind, section=kind, q=q, label=label,
                               groups=list(groups.values()), total=page["total"], shown=len(page["items"]),
                               truncated=page["total"] > len(page["items"]), message=message, message_kind=message_kind)

    async def versions(self, kind: str, request: Request) -> Response:
        user, redirect = await self.signed_in(request)
        if redirect:
            return redirect
        name = request.path_params["name"]
        try:
            found = await run_in_threadpool(self.hub.versions, kind, _part(name))
        except (NotFound, InvalidTag) as exc:
            return await self.error(request, user, 404, "Not found", str(exc))
        return await self.page(request, "versions.html", user, kind=kind, section=kind, name=name,
                               items=found["versions"], latest=found["latest"])

    async def detail(self, kind: str, request: Request) -> Response:
        user, redirect = await self.signed_in(request)
        if redirect:
            return redirect
        entry, failed = await self._entry(kind, request, user)
        if failed:
            return failed
        manifest = entry.get("manifest") or {}
        tag = f"{entry['name']}:{entry['version']}"
        context = dict(kind=kind, section=kind, e=entry, m=manifest, files=sorted((entry.get("files") or {}).items()),
                       pull_command=f"mlpack {kind} pull {tag}")
        if kind == "models":
            return await self.page(request, "model.html", user, contract=_contract(manifest), **context)
        return await self.page(request, "bundle.html", user, **context)

    async def _entry(self, kind: str, request: Request, user: User | None) -> tuple[dict[str, Any], Response | None]:
        try:
            name, version = _part(request.path_params["name"]), _part(request.path_params["version"], "version")
            return await run_in_threadpool(self.hub.get, kind, name, version), None
        except (NotFound, InvalidTag) as exc:
            return {}, await self.error(request, user, 404, "Not found", str(exc))
        except AmbiguousTag as exc:
            return {}, await self.error(request, user, 400, "Ambiguous version", str(exc))

    async def confirm_delete(self, kind: str, request: Request, error: str = "", status: int = 200) -> Response:
        user, redirect = await self.signed_in(request)
        if redirect:
            return redirect
        assert user is not None
        if user.read_only:
            return await self.error(request, user, 403, "Read-only token", "This token may read the hub but not delete.")
        entry, failed = await self._entry(kind, request, user)
        if failed:
            return failed
        return await self.page(request, "confirm_delete.html", user, status=status, kind=kind, section=kind,
                               noun=kind[:-1], name=entry["name"], version=entry["version"],
                               used_by=entry.get("used_by") or [], error=error)

    async def delete(self, kind: str, request: Request) -> Response:
        user, redirect = await self.signed_in(request)
        if redirect:
            return redirect
        assert user is not None
        try:
            form = await self.form(request)
        except BadInput:
            return await self.error(request, user, 413, "Form too large", "The form is too large.")
        refused = await self.check_write(request, user, form)
        if refused:
            return refused
        if user.read_only:
            return await self.error(request, user, 403, "Read-only token", "This token may read the hub but not delete.")
        try:
            name, version = _part(request.path_params["name"]), _part(request.path_params["version"], "version")
            result = await run_in_threadpool(partial(self.hub.delete, kind, name, version, force=form.get("force") == "true"))
        except InUse as exc:
            return await self.confirm_delete(kind, request, error=str(exc), status=409)
        except (NotFound, InvalidTag) as exc:
            return await self.error(request, user, 404, "Not found", str(exc))
        except AmbiguousTag as exc:
            return await self.error(request, user, 400, "Ambiguous version", str(exc))
        target = f"/{kind}?deleted={quote(result['deleted'], safe='')}"
        return RedirectResponse(target, status_code=303, headers=HEADERS)


def ui_routes(hub: Any) -> list[Route]:
    """The web UI's routes; mount them after the API's (they claim only their own paths)."""
    ui = WebUI(hub)
    routes = [
        Route("/", ui.home, methods=["GET"]),
        Route("/login", ui.login_page, methods=["GET"]),
        Route("/login", ui.login, methods=["POST"]),
        Route("/logout", ui.logout, methods=["POST"]),
    ]
    for kind in KINDS:
        routes += [
            Route(f"/{kind}", partial(ui.listing, kind), methods=["GET"]),
            Route(f"/{kind}/{{name}}", partial(ui.versions, kind), methods=["GET"]),
            Route(f"/{kind}/{{name}}/{{version}}", partial(ui.detail, kind), methods=["GET"]),
            Route(f"/{kind}/{{name}}/{{version}}/delete", partial(ui.confirm_delete, kind), methods=["GET"]),
            Route(f"/{kind}/{{name}}/{{version}}/delete", partial(ui.delete, kind), methods=["POST"]),
        ]
    return routes


def _part(value: str, what: str = "name") -> str:
    return validate_part(value, what)


def _is_tag(text: str) -> bool:
    name, sep, version = text.partition(":")
    try:
        return bool(sep) and bool(validate_part(name)) and bool(validate_part(version, "version"))
    except InvalidTag:
        return False


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//host`` or a scheme) may follow a login."""
    # browsers drop tabs and newlines inside URLs, so "/\t/host" would become "//host"
    if not target or not target.startswith("/") or "\\" in target or any(ord(c) < 33 or c == "\x7f" for c in target):
        return "/"
    if target.startswith("//"):
        return "/"
    return target


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def _contract(manifest: dict[str, Any]) -> Any:
    """The model's recorded input contract, wherever the saving code put it."""
    for key in ("input_contract", "contract"):
        if manifest.get(key):
            return manifest[key]
    per_method = {m: s.get("input_contract") for m, s in (manifest.get("signatures") or {}).items()
                  if isinstance(s, dict) and s.get("input_contract")}
    return per_method or (manifest.get("options") or {}).get("input_contract")

