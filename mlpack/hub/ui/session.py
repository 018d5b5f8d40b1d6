"""Web UI sessions and CSRF tokens: HMAC-signed values, with no session table to keep.

A session cookie carries the token's name and creation time, an expiry and a random nonce,
signed with the hub's secret key (shared by every server on one database). It is valid only
while a token of that name and creation time exists, so revoking the token ends its sessions.
The CSRF token is bound to the session's nonce; the login form uses a double-submit cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

SESSION_COOKIE = "mlpack_hub_session"
LOGIN_CSRF_COOKIE = "mlpack_hub_login_csrf"
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Session:
    name: str
    created_at: float
    expires: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and checks session cookies and CSRF tokens with one secret key."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"mlpack-hub-ui\0" + secret.encode("utf-8")).digest()

    def _mac(self, purpose: str, payload: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}\0{payload}".encode(), hashlib.sha256).digest())

    def issue(self, name: str, created_at: float, now: float | None = None) -> tuple[str, Session]:
        now = time.time() if now is None else now
        session = Session(name=name, created_at=created_at, expires=int(now + SESSION_SECONDS), nonce=secrets.token_urlsafe(18))
        payload = _b64(json.dumps([session.name, session.created_at, session.expires, session.nonce]).encode())
        return f"{payload}.{self._mac('session', payload)}", session

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie holds, or None if it is forged, malformed or expired."""
        if not cookie or len(cookie) > 512 or cookie.count(".") != 1:
            return None
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac("session", payload)):
            return None
        try:
            name, created_at, expires, nonce = json.loads(_unb64(payload))
            session = Session(str(name), float(created_at), int(expires), str(nonce))
        except (ValueError, TypeError):
            return None
        if session.expires < (time.time() if now is None else now):
            return None
        return session

    def csrf(self, session: Session) -> str:
        return self._mac("csrf", session.nonce)

    def check_csrf(self, session: Session, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(str(value), self.csrf(session))


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def same_secret(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
