"""The hub's metadata in SQL (SQLAlchemy Core): SQLite by default, PostgreSQL for several servers.

Tables: ``tokens``; ``blobs`` (every stored file, by sha256, with a ``state`` that garbage
collection moves to ``deleting`` before it removes the object); ``entries`` (one pushed model
or bundle version, with its exact manifest text), ``entry_files``, ``entry_labels`` and
``bundle_models`` (which model versions a bundle uses).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event

from ...exceptions import ConfigError, MissingDependency

metadata = sa.MetaData()
T = TypeVar("T")
# PostgreSQL: serialization failure, deadlock detected; worth running the transaction again
_TRANSIENT = {"40001", "40P01"}

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("read_only", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used_at", sa.Float, nullable=True),
)

blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    # last upload, "do you have it?" answer or commit that relied on it: the GC grace clock
    sa.Column("touched_at", sa.Float, nullable=False),
    sa.Column("state", sa.String(10), nullable=False, default="present"),  # present | deleting
)

entries = sa.Table(
    "entries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("version", sa.String(63), nullable=False),
    sa.Column("manifest_text", sa.Text, nullable=False),
    sa.Column("manifest_sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("creation_time", sa.String(40), nullable=False),
    sa.Column("created_ts", sa.Float, nullable=False),
    sa.Column("labels_json", sa.Text, nullable=False),
    sa.Column("pushed_by", sa.String(63), nullable=False),
    sa.Column("pushed_at", sa.Float, nullable=False),
    sa.UniqueConstraint("kind", "name", "version", name="uq_entry_tag"),
    sa.Index("ix_entries_kind_created", "kind", "created_ts"),  # the default listing order
)

entry_files = sa.Table(
    "entry_files",
    metadata,
    sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id"), primary_key=True),
    sa.Column("relpath", sa.String(1024), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("size", sa.BigInteger, nullable=False),
)

entry_labels = sa.Table(
    "entry_labels",
    metadata,
    sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.String(1024), nullable=False),
    sa.Index("ix_label_kv", "key", "value"),
)

bundle_models = sa.Table(
    "bundle_models",
    metadata,
    sa.Column("bundle_id", sa.Integer, sa.ForeignKey("entries.id"), primary_key=True),
    sa.Column("model_name", sa.String(63), primary_key=True),
    sa.Column("model_version", sa.String(63), primary_key=True),
    sa.Index("ix_bundle_model", "model_name", "model_version"),
)

settings = sa.Table(
    "hub_settings",
    metadata,
    sa.Column("key", sa.String(63), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


class Database:
    """An engine plus ``read()`` / ``write()`` transactions that behave alike on SQLite and PostgreSQL."""

    def __init__(self, url: str) -> None:
        try:
            self.url = sa.engine.make_url(_with_driver(url))
        except sa.exc.ArgumentError:
            shown = url.split("@")[-1]  # never echo a password
            raise ConfigError(f"--db {shown!r} is not a database URL; use e.g. postgresql://user:pass@host/db") from None
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        try:
            if self.is_sqlite:
                self.engine = sa.create_engine(self.url, connect_args={"timeout": 60, "check_same_thread": False})
                _sqlite_transactions(self.engine)
            else:
                self.engine = sa.create_engine(self.url, pool_pre_ping=True, pool_size=8, max_overflow=8)
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise MissingDependency(
                f"no driver for {self.url.drivername} ({exc}); install the hub extra: pip install 'mlpack[hub]'"
            ) from None

    def create_schema(self) -> None:
        """Create missing tables; several servers starting at once on PostgreSQL take turns."""
        with self.write() as conn:  # on SQLite, BEGIN IMMEDIATE: one process creates, the others see it
            if self.url.get_backend_name() == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(31006)"))
            metadata.create_all(conn)

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def write(self, isolation: str | None = None) -> Iterator[sa.Connection]:
        """One transaction, committed on success; SQLite takes its write lock at the start."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn = conn.execution_options(mlpack_immediate=True)
            elif isolation:
                conn = conn.execution_options(isolation_level=isolation)
            with conn.begin():
                yield conn

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def _with_driver(url: str) -> str:
    """``postgresql://`` means psycopg 3 (the driver the ``hub`` extra installs)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_transactions(engine: sa.Engine) -> None:
    """Let SQLAlchemy emit BEGIN itself (pysqlite's own handling defers it), IMMEDIATE for writes.

    Taking the write lock at BEGIN means two writers never deadlock upgrading read locks;
    WAL lets readers go on while one process writes.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("mlpack_immediate") else "BEGIN")


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, sa.exc.OperationalError) and getattr(exc.orig, "sqlstate", None) in _TRANSIENT


def retry_transient(fn: Callable[[], T], attempts: int = 4) -> T:
    """Run the transaction ``fn`` again after a deadlock or serialization failure."""
    for attempt in range(attempts):
        try:
            return fn()
        except sa.exc.OperationalError as exc:
            if not is_transient(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover
