"""Checks on what a hub sends before any of it becomes a store entry.

Paths must stay inside the entry, the manifest must hash to what the hub says, and the hub's
file list must name exactly the files and sha256s the manifest records.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ..exceptions import IntegrityError
from ..provenance import FILENAME as PROVENANCE
from ..yamlio import loads_yaml
from .client import CHUNK, HubClient

MAX_MANIFEST = 16 << 20


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def safe_rel(rel: str, manifest: str) -> PurePosixPath:
    pure = PurePosixPath(rel)
    if (
        not rel
        or rel.startswith("/")
        or "\\" in rel
        or "\0" in rel
        or pure.is_absolute()
        or any(p in ("..", ".", "") for p in rel.split("/"))
        or rel in (manifest, PROVENANCE)
    ):
        raise IntegrityError(f"refusing file path {rel!r}: it would leave the entry or replace its manifest")
    return pure


def parse_manifest(text: str, where: str) -> dict[str, Any]:
    try:
        data = loads_yaml(text)
    except ValueError as exc:
        raise IntegrityError(f"{where}: the manifest is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("files", {}), dict):
        raise IntegrityError(f"{where}: the manifest is not a mapping with a files section")
    return data


def manifest_text(client: HubClient, record: Mapping[str, Any]) -> str:
    expected = str(record.get("manifest_sha256") or "")
    text = record.get("manifest_text")
    if not isinstance(text, str):
        if len(expected) != 64:
            raise IntegrityError(f"hub {client.url} sent no manifest_sha256 for {record.get('name')}:{record.get('version')}")
        raw = client.read_blob(expected, MAX_MANIFEST)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
    if sha256_text(text) != expected:
        raise IntegrityError(
            f"the manifest of {record.get('name')}:{record.get('version')} from hub {client.url} does not match its "
            "sha256 (tampered or corrupt); nothing was saved"
        )
    return text


def checked_files(
    record: Mapping[str, Any], manifest: Mapping[str, Any], manifest_name: str, where: str
) -> dict[str, tuple[str, int]]:
    """The hub's file list, which must name exactly the files and hashes the manifest records."""
    listed = record.get("files") or {}
    recorded = {str(k): str(v) for k, v in (manifest.get("files") or {}).items()}
    files: dict[str, tuple[str, int]] = {}
    for rel, meta in listed.items():
        safe_rel(rel, manifest_name)
        digest, size = str(meta.get("sha256")), int(meta.get("size"))
        if size < 0 or len(digest) != 64:
            raise IntegrityError(f"{where}: bad record for file {rel}")
        files[rel] = (digest, size)
    if {rel: d for rel, (d, _) in files.items()} != recorded:
        raise IntegrityError(f"{where}: the hub's file list does not match the manifest's recorded hashes; nothing was saved")
    return files


def copy_verified(source: Path, dest: Path, digest: str) -> bool:
    """Copy ``source`` to ``dest`` (fsynced) if its content still hashes to ``digest``."""
    seen = hashlib.sha256()
    try:
        with open(source, "rb") as src, open(dest, "wb") as out:
            while chunk := src.read(CHUNK):
                seen.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except OSError:
        return False
    return seen.hexdigest() == digest


def copy_synced(source: Path, dest: Path) -> None:
    """Copy a file this process has just verified (kernel-side, no second hash pass), fsynced."""
    shutil.copyfile(source, dest)
    fd = os.open(dest, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
