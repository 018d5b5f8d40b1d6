"""API tokens: random, shown once, stored as sha256 only; read-only tokens cannot write."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa

from ...exceptions import AlreadyExists, NotFound
from ...tag import validate_part
from .db import Database, tokens

PREFIX = "mlph_"
_TOUCH_SECONDS = 60.0  # record last use at most once a minute: no write per request


@dataclass(frozen=True)
class TokenInfo:
    name: str
    read_only: bool
    created_at: float
    last_used_at: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "read_only": self.read_only,
            "created_at": iso(self.created_at),
            "last_used_at": iso(self.last_used_at) if self.last_used_at else None,
        }


def iso(ts: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Tokens:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, read_only: bool = False) -> str:
        """A new token for ``name``; the only time its text is available."""
        name = validate_part(name, "token name")
        token = PREFIX + secrets.token_urlsafe(32)
        taken = AlreadyExists(f"a token named {name!r} already exists; revoke it first or choose another name")
        try:
            with self.db.write() as conn:
                if conn.execute(sa.select(tokens.c.name).where(tokens.c.name == name)).first():
                    raise taken
                conn.execute(
                    tokens.insert().values(name=name, token_sha256=_digest(token), read_only=read_only, created_at=time.time())
                )
        except sa.exc.IntegrityError:  # the same name, created concurrently
            raise taken from None
        return token

    def list(self) -> list[TokenInfo]:
        with self.db.read() as conn:
            rows = conn.execute(sa.select(tokens).order_by(tokens.c.name)).all()
        return [TokenInfo(r.name, bool(r.read_only), r.created_at, r.last_used_at) for r in rows]

    def revoke(self, name: str) -> None:
        with self.db.write() as conn:
            if conn.execute(tokens.delete().where(tokens.c.name == name)).rowcount == 0:
                raise NotFound(f"no token named {name!r}; see `mlpack hub token list`")

    def authenticate(self, token: str | None) -> TokenInfo | None:
        """The token's record, or None for an unknown, revoked or malformed token."""
        if not token or len(token) > 200:
            return None
        digest = _digest(token)
        with self.db.read() as conn:
            row = conn.execute(sa.select(tokens).where(tokens.c.token_sha256 == digest)).first()
        if row is None or not hmac.compare_digest(row.token_sha256, digest):
            return None
        now = time.time()
        if row.last_used_at is None or now - row.last_used_at > _TOUCH_SECONDS:
            with self.db.write() as conn:
                conn.execute(tokens.update().where(tokens.c.name == row.name).values(last_used_at=now))
        return TokenInfo(row.name, bool(row.read_only), row.created_at, now)
