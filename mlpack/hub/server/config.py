"""The hub server's settings: one frozen object, from CLI flags > ``MLPACK_HUB_*`` env > defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ...settings import default_home

DEFAULT_PORT = 3100
GIB = 1 << 30


@dataclass(frozen=True)
class HubConfig:
    """Where the hub keeps metadata (``db_url``) and files (``storage_url``), and its limits.

    ``storage_url`` is ``None`` (files under ``data_dir/blobs``) or ``s3://bucket/prefix``;
    ``db_url`` is ``None`` (SQLite at ``data_dir/hub.db``) or any SQLAlchemy URL
    (``postgresql://user:pass@host/db``).
    """

    data_dir: Path
    storage_url: str | None = None
    s3_endpoint_url: str | None = None
    db_url: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # an unreferenced blob is kept this long after it was last uploaded or asked about, so that
    # a push in progress never loses a blob it was told the hub already has
    gc_grace_seconds: float = 3600.0
    gc_interval_seconds: float = 600.0
    max_blob_size: int = 64 * GIB
    max_manifest_size: int = 4 << 20
    max_request_json: int = 64 << 20
    max_files: int = 100_000
    access_log: bool = True

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'hub.db'}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> HubConfig:
        env = os.environ if env is None else env
        data = env.get("MLPACK_HUB_DATA")
        base = cls(
            data_dir=Path(data).expanduser() if data else default_home(env) / "hub",
            storage_url=env.get("MLPACK_HUB_STORAGE") or None,
            s3_endpoint_url=env.get("MLPACK_HUB_S3_ENDPOINT_URL") or None,
            db_url=env.get("MLPACK_HUB_DB") or None,
        )
        if env.get("MLPACK_HUB_GC_GRACE"):
            base = replace(base, gc_grace_seconds=float(env["MLPACK_HUB_GC_GRACE"]))
        given = {k: (Path(v).expanduser() if k == "data_dir" else v) for k, v in overrides.items() if v is not None}
        return replace(base, **given) if given else base
