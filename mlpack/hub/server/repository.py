"""The hub's repository: commit, list, get and delete entries over the database and blob storage.

This is the one object the REST API and the web UI both use (``Hub``); it knows nothing of HTTP.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

import sqlalchemy as sa

from ...exceptions import AlreadyExists, BadInput, ConfigError, NotFound
from .blobs import BlobIndex, touch_present
from .config import HubConfig
from .db import Database, bundle_models, entries, entry_files, entry_labels, retry_transient, settings
from .errors import Conflict, InUseConflict
from .manifests import KINDS, NOUNS, Push
from .reads import HubReads
from .storage import Storage, open_storage
from .tokens import Tokens, iso

log = logging.getLogger("mlpack.hub")


class Hub(HubReads):
    """Metadata in ``db``, bytes in ``storage``; safe to use from many threads and processes."""

    def __init__(self, config: HubConfig, db: Database | None = None, storage: Storage | None = None) -> None:
        self.config = config
        if db is None and not config.db_url:
            config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the token hashes live here
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
        try:
            collected = self.collect_garbage()
        except Exception as exc:  # noqa: BLE001 - the delete stands; the periodic collection retries
            log.warning("blob collection after deleting %s:%s failed: %s", name, resolved, exc)
            collected = 0
        return {"deleted": f"{name}:{resolved}", "kind": kind, "used_by": used_by, "blobs_collected": collected}

    def collect_garbage(self) -> int:
        """Collect unreferenced blobs, and uploads a killed server left unfinished."""
        self.storage.sweep()
        return self.blobs.collect(self.config.gc_grace_seconds)
