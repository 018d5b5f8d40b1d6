"""The read side of the hub's repository: list, search, get, resolve ``latest`` and prefixes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from ...exceptions import AmbiguousTag, BadInput, NotFound
from ...tag import LATEST
from .db import Database, bundle_models, entries, entry_files, entry_labels
from .manifests import KINDS, NOUNS
from .tokens import iso

SORTS = {"created": entries.c.created_ts, "size": entries.c.size, "name": entries.c.name, "pushed": entries.c.pushed_at}
MAX_LIMIT = 1000


class HubReads:
    """Queries over ``self.db``; mixed into ``Hub``."""

    db: Database

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
