"""Which blobs the hub holds, and garbage collection that never races a push.

A blob row is ``present`` or ``deleting``. Uploads, "missing?" answers and commits touch
``touched_at``; collection only marks blobs no entry references and nobody touched within the
grace period, in a transaction that a concurrent commit's row lock makes it retry, then deletes
the objects, then the rows. A commit needs every blob ``present`` (so never one being deleted);
an upload that meets a ``deleting`` row is told to retry (503) once the collection is done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence

import sqlalchemy as sa

from ...exceptions import ServiceUnavailable
from .db import Database, blobs, entry_files, retry_transient
from .storage import Storage

log = logging.getLogger("mlpack.hub")
BATCH = 500  # parameters per IN (...) clause


def batched(items: Sequence[str], size: int = BATCH) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def touch_present(conn: sa.Connection, digests: Iterable[str], now: float) -> dict[str, int]:
    """Touch the ``present`` blobs among ``digests`` (locking their rows) and return their sizes."""
    wanted = sorted(set(digests))
    found: dict[str, int] = {}
    for chunk in batched(wanted):
        # rows are locked in sha256 order, so two pushes sharing blobs never deadlock
        rows = conn.execute(
            sa.select(blobs.c.sha256, blobs.c.size)
            .where(blobs.c.sha256.in_(chunk), blobs.c.state == "present")
            .order_by(blobs.c.sha256)
            .with_for_update()
        ).all()
        if rows:
            conn.execute(blobs.update().where(blobs.c.sha256.in_([r.sha256 for r in rows])).values(touched_at=now))
        found.update({r.sha256: int(r.size) for r in rows})
    return found


class BlobIndex:
    def __init__(self, db: Database, storage: Storage) -> None:
        self.db, self.storage = db, storage

    def missing(self, digests: Sequence[str]) -> list[str]:
        """The digests the hub lacks; those it has are touched, so a push can rely on them."""

        def touch() -> dict[str, int]:
            with self.db.write() as conn:
                return touch_present(conn, digests, time.time())

        return sorted(set(digests) - set(retry_transient(touch)))

    def state(self, sha256: str) -> tuple[str, int] | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(blobs.c.state, blobs.c.size).where(blobs.c.sha256 == sha256)).first()
        return (row.state, int(row.size)) if row else None

    def size(self, sha256: str) -> int | None:
        found = self.state(sha256)
        return found[1] if found and found[0] == "present" else None

    def record(self, sha256: str, size: int) -> None:
        """Note a blob just written to storage (or one already there)."""
        for _ in range(3):
            try:
                with self.db.write() as conn:
                    now = time.time()
                    row = conn.execute(sa.select(blobs.c.state).where(blobs.c.sha256 == sha256)).first()
                    if row is None:
                        conn.execute(blobs.insert().values(sha256=sha256, size=size, touched_at=now, state="present"))
                    elif row.state == "present":
                        conn.execute(blobs.update().where(blobs.c.sha256 == sha256).values(touched_at=now))
                    else:
                        raise ServiceUnavailable("this blob is being garbage-collected; send it again", retry_after=1)
                return
            except sa.exc.IntegrityError:  # a concurrent upload of the same blob inserted first
                continue
        raise ServiceUnavailable("the blob could not be recorded; send it again", retry_after=1)  # pragma: no cover

    def collect(self, grace_seconds: float) -> int:
        """Delete blobs no entry references, untouched for ``grace_seconds``; returns how many."""
        cutoff = time.time() - grace_seconds
        unreferenced = ~sa.exists().where(entry_files.c.sha256 == blobs.c.sha256)
        try:
            # a commit touching one of these rows meanwhile makes this fail, not mark a blob it needs
            with self.db.write(isolation="REPEATABLE READ") as conn:
                conn.execute(
                    blobs.update()
                    .where(blobs.c.state == "present", blobs.c.touched_at < cutoff, unreferenced)
                    .values(state="deleting")
                )
        except sa.exc.OperationalError as exc:  # serialization failure: a push won; collect next time
            log.info("blob collection deferred: %s", exc.orig)
            return 0
        with self.db.read() as conn:
            doomed = [r.sha256 for r in conn.execute(sa.select(blobs.c.sha256).where(blobs.c.state == "deleting"))]
        self.storage.delete_many(doomed)  # rows stay "deleting" if this fails: the next round retries
        for chunk in batched(doomed):
            with self.db.write() as conn:
                conn.execute(blobs.delete().where(blobs.c.sha256.in_(chunk), blobs.c.state == "deleting"))
        if doomed:
            log.info("garbage-collected %d blobs", len(doomed))
        return len(doomed)
