"""The hub's repository: commit, list, get and delete entries over the database and blob storage.

This is the one object the REST API and the web UI both use (``Hub``); it knows nothing of HTTP.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from ...exceptions import AlreadyExists, AmbiguousTag, BadInput, ConfigError, InUse, NotFound
from ...tag import LATEST
from .blobs import BlobIndex, touch_present
from .config import HubConfig
from .db import Database, bundle_models, entries, entry_files, entry_labels, retry_transient, settings
from .errors import Conflict
from .manifests import KINDS, NOUNS, Push
from .storage import Storage, open_storage
from .tokens import Tokens, iso

SORTS = {"created": entries.c.created_ts, "size": entries.c.size, "name": entries.c.name, "pushed": entries.c.pushed_at}
MAX_LIMIT = 1000


class Hub:
    """Metadata in ``db``, bytes in ``storage``; safe to use from many threads and processes."""

    def __init__(self, config: HubConfig, db: Database | None = None, storage: Storage | None = None) -> None:
        self.config = config
        if db is None and not config.db_url:
            config.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = db or Database(config.database_url)
        self.storage = storage or open_storage(config.storage_url, config.data_dir, config.s3_endpoint_url)
        self.tokens = Tokens(self.db)
        self.blobs = BlobIndex(self.db, self.storage)

    def open(self) -> Hub:
        """Create missing tables; an unreachable or misconfigured database is a clear ConfigError."""
        try:
            self.db.create_schema()
        except sa.exc.SQLAlchemyError as exc:
            where = self.db.url.render_as_string(hide_password=True)
            reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
            raise ConfigError(f"cannot use the hub database {where}: {reason}; check --db and that the server runs") from exc
        return self

    def close(self) -> None:
        self.db.dispose()

    def secret_key(self) -> str:
        """A random key shared by every server on this database (for signing UI sessions, CSRF)."""
        with self.db.read() as conn:
            row = conn.execute(sa.select(settings.c.value).where(settings.c.key == "secret_key")).first()
        if row:
            return row.value
        try:
            with self.db.write() as conn:
                conn.execute(settings.insert().values(key="secret_key", value=secrets.token_urlsafe(48)))
        except sa.exc.IntegrityError:  # another server made it first
            pass
        return self.secret_key()

    # -- writing ---------------------------------------------------------------------------
    def commit(self, push: Push, pushed_by: str) -> dict[str, Any]:
        """Make ``push`` visible in one transaction, or refuse it with a 409 naming what is wrong."""
        retry_transient(lambda: self._commit(push, pushed_by))
        return self.get(push.kind, push.name, push.version)

    def _commit(self, push: Push, pushed_by: str) -> None:
        noun = NOUNS[push.kind]
        tag = f"{push.name}:{push.version}"
        now = time.time()
        try:
            with self.db.write() as conn:
                if self._entry_id(conn, push.kind, push.name, push.version) is not None:
                    raise AlreadyExists(f"{noun} {tag} is already on the hub; tags are immutable, push a new version")
                needed = {sha for sha, _ in push.files.values()} | {push.manifest_sha256}
                found = touch_present(conn, needed, now)
                missing = sorted(needed - set(found))
                if missing:
                    raise Conflict(
                        f"{len(missing)} blob(s) of {noun} {tag} are not on the hub; upload them first", missing=missing
                    )
                for rel, (sha, size) in push.files.items():
                    if found[sha] != size:
                        raise BadInput(f"file {rel}: the hub holds {found[sha]} bytes for {sha}, the push says {size}")
                if found[push.manifest_sha256] != len(push.manifest_text.encode("utf-8", "surrogatepass")):
                    raise BadInput("the manifest blob's size does not match manifest_text")
                if push.models:
                    self._lock_models(conn, push, tag)
                entry_id = conn.execute(
                    entries.insert().values(
                        kind=push.kind,
                        name=push.name,
                        version=push.version,
                        manifest_text=push.manifest_text,
                        manifest_sha256=push.manifest_sha256,
                        size=push.size,
                        creation_time=push.creation_time or iso(now),
                        created_ts=push.created_ts,
                        labels_json=json.dumps(push.labels, sort_keys=True),
                        pushed_by=pushed_by,
                        pushed_at=now,
                    )
                ).inserted_primary_key[0]
                manifest_name = KINDS[push.kind]
                rows = [
                    {"entry_id": entry_id, "relpath": rel, "sha256": sha, "size": size} for rel, (sha, size) in push.files.items()
                ]
                rows.append(
                    {
                        "entry_id": entry_id,
                        "relpath": manifest_name,
                        "sha256": push.manifest_sha256,
                        "size": len(push.manifest_text.encode()),
                    }
                )
                conn.execute(entry_files.insert(), rows)
                if push.labels:
                    conn.execute(
                        entry_labels.insert(), [{"entry_id": entry_id, "key": k, "value": v} for k, v in push.labels.items()]
                    )
                if push.models:
                    uses = {(m.name, m.version) for m in push.models}
                    conn.execute(
                        bundle_models.insert(),
                        [{"bundle_id": entry_id, "model_name": n, "model_version": v} for n, v in sorted(uses)],
                    )
        except sa.exc.IntegrityError:  # a concurrent push of the same tag committed first
            raise AlreadyExists(f"{noun} {tag} is already on the hub; tags are immutable, push a new version") from None

    def _lock_models(self, conn: sa.Connection, push: Push, tag: str) -> None:
        """The bundle's models must be on the hub; lock them so a delete cannot slip in before commit."""
        absent = []
        for model in push.models:
            row = conn.execute(
                sa.select(entries.c.id)
                .where(entries.c.kind == "models", entries.c.name == model.name, entries.c.version == model.version)
                .with_for_update(read=True)
            ).first()
            if row is None:
                absent.append(str(model))
        if absent:
            raise Conflict(
                f"bundle {tag} uses models that are not on the hub: {', '.join(absent)}; push them first",
                missing_models=absent,
            )

    def delete(self, kind: str, name: str, version: str, *, force: bool = False) -> dict[str, Any]:
        """Remove one version; a model a hub bundle uses needs ``force``. Unused blobs are collected."""
        noun = NOUNS[kind]
        with self.db.write() as conn:
            resolved = self._resolve(conn, kind, name, version)
            row = conn.execute(
                sa.select(entries.c.id)
                .where(entries.c.kind == kind, entries.c.name == name, entries.c.version == resolved)
                .with_for_update()
            ).first()
            if row is None:  # deleted meanwhile
                raise NotFound(f"{noun} {name}:{resolved} is not on the hub")
            used_by = self._used_by(conn, name, resolved) if kind == "models" else []
            if used_by and not force:
                raise InUseConflict(
                    f"model {name}:{resolved} is used by bundle(s) {', '.join(used_by)} on the hub; "
                    "delete them first, or force the deletion",
                    used_by,
                )
            for table, column in (
                (entry_files, entry_files.c.entry_id),
                (entry_labels, entry_labels.c.entry_id),
                (bundle_models, bundle_models.c.bundle_id),
            ):
                conn.execute(table.delete().where(column == row.id))
            conn.execute(entries.delete().where(entries.c.id == row.id))
        collected = self.collect_garbage()
        return {"deleted": f"{name}:{resolved}", "kind": kind, "used_by": used_by, "blobs_collected": collected}

    def collect_garbage(self) -> int:
        return self.blobs.collect(self.config.gc_grace_seconds)

    # -- reading ---------------------------------------------------------------------------
    def list(
        self,
        kind: str,
        *,
        q: str | None = None,
        labels: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        name: str | None = None,
        sort: str = "created",
        order: str = "desc",
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        if sort not in SORTS:
            raise BadInput(f"sort must be one of {', '.join(SORTS)}")
        if order not in ("asc", "desc"):
            raise BadInput("order must be asc or desc")
        limit = max(1, min(int(limit), MAX_LIMIT))
        offset = max(0, int(offset))
        where = [entries.c.kind == kind]
        if name:
            where.append(entries.c.name == name)
        if q:
            escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(entries.c.name.like(f"%{escaped}%", escape="\\"))
        pairs = labels.items() if isinstance(labels, Mapping) else (labels or ())
        for key, value in pairs:
            where.append(
                sa.exists().where(
                    entry_labels.c.entry_id == entries.c.id, entry_labels.c.key == key, entry_labels.c.value == value
                )
            )
        column = SORTS[sort]
        ordering = [column.desc() if order == "desc" else column.asc(), entries.c.name, entries.c.version.desc()]
        with self.db.read() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(entries).where(*where)).scalar_one()
            rows = conn.execute(sa.select(*_SUMMARY).where(*where).order_by(*ordering).limit(limit).offset(offset)).all()
        return {"items": [_summary(r) for r in rows], "total": int(total), "limit": limit, "offset": offset}

    def versions(self, kind: str, name: str) -> dict[str, Any]:
        listing = self.list(kind, name=name, limit=MAX_LIMIT)
        if not listing["items"]:
            raise NotFound(f"no {NOUNS[kind]} named {name!r} on the hub")
        return {"name": name, "latest": listing["items"][0]["version"], "versions": listing["items"], "total": listing["total"]}

    def get(self, kind: str, name: str, version: str) -> dict[str, Any]:
        from ...yamlio import loads_yaml

        with self.db.read() as conn:
            resolved = self._resolve(conn, kind, name, version)
            row = conn.execute(
                sa.select(entries).where(entries.c.kind == kind, entries.c.name == name, entries.c.version == resolved)
            ).first()
            if row is None:
                raise NotFound(f"{NOUNS[kind]} {name}:{resolved} is not on the hub")
            files = conn.execute(
                sa.select(entry_files.c.relpath, entry_files.c.sha256, entry_files.c.size)
                .where(entry_files.c.entry_id == row.id, entry_files.c.relpath != KINDS[kind])
                .order_by(entry_files.c.relpath)
            ).all()
            out = _summary(row)
            if kind == "models":
                out["used_by"] = self._used_by(conn, name, resolved)
            else:
                uses = conn.execute(
                    sa.select(bundle_models.c.model_name, bundle_models.c.model_version)
                    .where(bundle_models.c.bundle_id == row.id)
                    .order_by(bundle_models.c.model_name)
                ).all()
                out["models"] = [f"{u.model_name}:{u.model_version}" for u in uses]
        out["manifest"] = loads_yaml(row.manifest_text)
        out["manifest_text"] = row.manifest_text
        out["manifest_sha256"] = row.manifest_sha256
        out["manifest_name"] = KINDS[kind]
        out["files"] = {f.relpath: {"sha256": f.sha256, "size": int(f.size)} for f in files}
        return out

    def manifest_text(self, kind: str, name: str, version: str) -> str:
        with self.db.read() as conn:
            resolved = self._resolve(conn, kind, name, version)
            row = conn.execute(
                sa.select(entries.c.manifest_text).where(
                    entries.c.kind == kind, entries.c.name == name, entries.c.version == resolved
                )
            ).first()
        if row is None:
            raise NotFound(f"{NOUNS[kind]} {name}:{resolved} is not on the hub")
        return row.manifest_text

    def file(self, kind: str, name: str, version: str, relpath: str) -> tuple[str, int]:
        """The sha256 and size of one file of an entry (the manifest included)."""
        with self.db.read() as conn:
            resolved = self._resolve(conn, kind, name, version)
            row = conn.execute(
                sa.select(entry_files.c.sha256, entry_files.c.size)
                .join(entries, entries.c.id == entry_files.c.entry_id)
                .where(
                    entries.c.kind == kind,
                    entries.c.name == name,
                    entries.c.version == resolved,
                    entry_files.c.relpath == relpath,
                )
            ).first()
        if row is None:
            raise NotFound(f"{NOUNS[kind]} {name}:{resolved} has no file {relpath!r}")
        return row.sha256, int(row.size)

    def _resolve(self, conn: sa.Connection, kind: str, name: str, version: str) -> str:
        """``latest`` is the newest by creation time; a unique version prefix resolves too."""
        noun = NOUNS[kind]
        base = sa.select(entries.c.version).where(entries.c.kind == kind, entries.c.name == name)
        if version == LATEST:
            row = conn.execute(base.order_by(entries.c.created_ts.desc(), entries.c.version.desc()).limit(1)).first()
            if row is None:
                raise NotFound(f"no {noun} named {name!r} on the hub")
            return row.version
        if conn.execute(base.where(entries.c.version == version)).first():
            return version
        escaped = version.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        matches = [r.version for r in conn.execute(base.where(entries.c.version.like(escaped + "%", escape="\\")).limit(10))]
        if not matches:
            raise NotFound(f"{noun} {name}:{version} is not on the hub")
        if len(matches) > 1:
            raise AmbiguousTag(f"{noun} version prefix {name}:{version} is ambiguous on the hub: {', '.join(matches)}")
        return matches[0]

    def _entry_id(self, conn: sa.Connection, kind: str, name: str, version: str) -> int | None:
        row = conn.execute(
            sa.select(entries.c.id).where(entries.c.kind == kind, entries.c.name == name, entries.c.version == version)
        ).first()
        return row.id if row else None

    def _used_by(self, conn: sa.Connection, name: str, version: str) -> list[str]:
        rows = conn.execute(
            sa.select(entries.c.name, entries.c.version)
            .join(bundle_models, bundle_models.c.bundle_id == entries.c.id)
            .where(bundle_models.c.model_name == name, bundle_models.c.model_version == version)
            .order_by(entries.c.name, entries.c.version)
        ).all()
        return [f"{r.name}:{r.version}" for r in rows]


class InUseConflict(InUse):
    def __init__(self, message: str, used_by: list[str]) -> None:
        super().__init__(message)
        self.fields = {"used_by": used_by}


_SUMMARY = (
    entries.c.id,
    entries.c.kind,
    entries.c.name,
    entries.c.version,
    entries.c.size,
    entries.c.creation_time,
    entries.c.labels_json,
    entries.c.pushed_by,
    entries.c.pushed_at,
)


def _summary(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "version": row.version,
        "tag": f"{row.name}:{row.version}",
        "size": int(row.size),
        "creation_time": row.creation_time,
        "labels": json.loads(row.labels_json),
        "pushed_by": row.pushed_by,
        "pushed_at": iso(row.pushed_at),
    }
