"""Push and pull store entries to and from a hub, content-addressed and all-or-nothing.

Push: ask which blobs the hub lacks, stream only those, then commit the manifest (the last
call: a killed push leaves nothing visible on the hub). Pull: download into the store's
staging directory, verify every blob and the manifest's recorded hashes, record provenance,
then ``Store.commit`` (a killed pull leaves nothing visible locally). A bundle brings its
models: pushed first from the bundle's own ``models/`` directory, and pulled into the local
model store when missing, copied from the bundle's verified files rather than fetched twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..exceptions import AlreadyExists, IntegrityError, NotFound
from ..provenance import Provenance
from ..settings import Settings
from ..store import Store
from ..tag import Tag
from .checks import checked_files, copy_synced, copy_verified, manifest_text, parse_manifest, safe_rel, sha256_text
from .client import Advance, HubClient, MissingBlobs

MANIFESTS = {"models": "model.yaml", "bundles": "bundle.yaml"}
# ``progress(description, total_bytes)`` yields a function that advances the bar
Progress = Callable[[str, int], AbstractContextManager[Advance]]


@contextlib.contextmanager
def no_progress(_description: str, _total: int) -> Iterator[Advance]:
    yield lambda _n: None


@dataclass(frozen=True)
class Moved:
    """One entry pushed or pulled: ``status`` is done, identical (already there) or present."""

    kind: str
    tag: Tag
    status: str
    blobs: int = 0  # blobs sent or downloaded
    bytes: int = 0
    files: int = 0
    reused: int = 0  # blobs the other side (or a local copy) already had

    @property
    def noun(self) -> str:
        return self.kind[:-1]


@dataclass
class _Sources:
    """Local files by sha256, reused instead of downloading a blob again.

    Those in ``fresh`` were hashed as this pull received them, into its own staging
    directories, so they are copied as they are; any other (a bundle already in the local
    store) is hashed again while copied, and downloaded when it no longer matches.
    """

    paths: dict[str, Path] = field(default_factory=dict)
    fresh: set[str] = field(default_factory=set)


def _local_state(store: Store, tag: Tag, manifest_sha256: str) -> str | None:
    """None when absent; "present" when the same manifest is there; else a conflict error."""
    manifest = store.path(tag) / store.manifest
    try:
        local = manifest.read_bytes()
    except FileNotFoundError:
        return None
    if hashlib.sha256(local).hexdigest() == manifest_sha256:
        return "present"
    raise AlreadyExists(
        f"a different {store.noun} {tag} is already in the local store; tags are immutable: "
        f"delete it (`mlpack {store.kind} delete {tag}`) to pull the hub's"
    )


# -- push --------------------------------------------------------------------------------------
def push(
    client: HubClient, kind: str, tag: Tag | str, *, settings: Settings | None = None, progress: Progress = no_progress
) -> list[Moved]:
    """Push a model, or a bundle and then its models, from the local store; returns what moved."""
    from .. import bundles, models

    if kind == "models":
        model = models.get(tag, settings)
        return [push_dir(client, "models", model.path, progress)]
    bundle = bundles.get(tag, settings)
    moved = []
    for ref in bundle.info.models:
        mtag = Tag.parse(ref["tag"] if isinstance(ref, dict) else ref)
        mdir = bundle.path / "models" / mtag.name / str(mtag.version)
        if not (mdir / MANIFESTS["models"]).is_file():
            mdir = models.get(mtag, settings).path
        moved.append(push_dir(client, "models", mdir, progress))
    moved.append(push_dir(client, "bundles", bundle.path, progress))
    return moved


def push_dir(client: HubClient, kind: str, root: Path, progress: Progress = no_progress) -> Moved:
    """Push the entry in directory ``root`` (its manifest names the files and their hashes)."""
    manifest_name = MANIFESTS[kind]
    try:
        text = (root / manifest_name).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"cannot read {root / manifest_name}: {exc}") from exc
    data = parse_manifest(text, str(root))
    tag = Tag.validated(str(data.get("name")), str(data.get("version")))
    assert tag.version is not None
    manifest_sha = sha256_text(text)
    existing = client.entry(kind, tag.name, tag.version)
    if existing is not None:
        return _same_or_conflict(client, kind, tag, existing, manifest_sha)
    files: dict[str, dict[str, Any]] = {}
    first_path: dict[str, Path] = {}
    for rel, digest in data.get("files", {}).items():
        safe_rel(rel, manifest_name)
        path = root / rel
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise IntegrityError(f"{kind[:-1]} {tag}: file {rel} is missing ({exc.strerror}); the entry is damaged") from exc
        files[rel] = {"sha256": str(digest), "size": size}
        first_path.setdefault(str(digest), path)
    first_path.setdefault(manifest_sha, root / manifest_name)  # the hub keeps the manifest as a blob too
    sent_blobs = sent_bytes = 0

    def send(digests: list[str]) -> None:
        nonlocal sent_blobs, sent_bytes
        chosen = [d for d in digests if d in first_path]
        total = sum(first_path[d].stat().st_size for d in chosen)
        with progress(f"push {kind[:-1]} {tag}", total) as advance:
            for digest in chosen:
                path = first_path[digest]
                client.upload_blob(digest, path, path.stat().st_size, advance)
                sent_blobs += 1
                sent_bytes += path.stat().st_size

    send(client.missing(list(first_path)))
    for attempt in range(2):
        try:
            client.commit(kind, tag.name, tag.version, text, files)
            break
        except MissingBlobs as exc:  # a blob vanished between our check and the commit
            if attempt:
                raise
            send(exc.missing)
        except AlreadyExists:  # a concurrent push of the same tag committed first
            existing = client.entry(kind, tag.name, tag.version)
            if existing is None:
                raise
            return _same_or_conflict(client, kind, tag, existing, manifest_sha)
    return Moved(kind, tag, "done", sent_blobs, sent_bytes, len(files), reused=len(first_path) - sent_blobs)


def _same_or_conflict(client: HubClient, kind: str, tag: Tag, existing: Mapping[str, Any], manifest_sha: str) -> Moved:
    if existing.get("manifest_sha256") == manifest_sha:
        return Moved(kind, tag, "identical", files=len(existing.get("files") or {}))
    raise AlreadyExists(
        f"{kind[:-1]} {tag} is already on the hub {client.url} with different content; tags are immutable: "
        f"build or save a new version, or delete it on the hub first"
    )


# -- pull --------------------------------------------------------------------------------------
def pull(
    client: HubClient,
    kind: str,
    tag: Tag | str,
    *,
    settings: Settings | None = None,
    progress: Progress = no_progress,
) -> list[Moved]:
    """Pull a model, or a bundle and any of its models the local store lacks."""
    from .. import bundles, models

    tag = Tag.parse(tag)
    record = client.entry(kind, tag.name, tag.version or "latest")
    if record is None:
        raise NotFound(f"{kind[:-1]} {tag} is not on the hub {client.url}; see `mlpack hub list {kind}`")
    trusted = client.settings.trusted
    if kind == "models":
        return [_pull_entry(client, "models", models.CATALOG.store(settings), record, trusted, _Sources(), progress)]
    model_store = models.CATALOG.store(settings)
    moved: list[Moved] = []

    def bring_models(staged: Path, manifest: Mapping[str, Any], fresh: bool) -> None:
        paths = {str(d): staged / rel for rel, d in (manifest.get("files") or {}).items()}
        sources = _Sources(paths, set(paths) if fresh else set())
        for ref in manifest.get("models") or []:
            mtag = Tag.parse(ref["tag"] if isinstance(ref, dict) else ref)
            if (model_store.path(mtag) / model_store.manifest).is_file():
                continue
            mrecord = client.entry("models", mtag.name, str(mtag.version))
            if mrecord is None:
                raise NotFound(f"bundle {tag} uses model {mtag}, which is not on the hub {client.url}")
            moved.append(_pull_entry(client, "models", model_store, mrecord, trusted, sources, progress))

    moved.append(_pull_entry(client, "bundles", bundles.CATALOG.store(settings), record, trusted, _Sources(), progress,
                             before_commit=bring_models))
    return moved


def _pull_entry(
    client: HubClient,
    kind: str,
    store: Store,
    record: Mapping[str, Any],
    trusted: bool,
    sources: _Sources,
    progress: Progress,
    before_commit: Callable[[Path, Mapping[str, Any], bool], None] | None = None,
) -> Moved:
    tag = Tag.validated(str(record.get("name")), str(record.get("version")))
    assert tag.version is not None
    text = manifest_text(client, record)
    manifest = parse_manifest(text, f"{kind[:-1]} {tag} on hub {client.url}")
    if (manifest.get("name"), manifest.get("version")) != (tag.name, tag.version):
        raise IntegrityError(f"hub {client.url}: the manifest of {tag} names {manifest.get('name')}:{manifest.get('version')}")
    files = checked_files(record, manifest, store.manifest, f"{kind[:-1]} {tag} on hub {client.url}")
    state = _local_state(store, tag, str(record["manifest_sha256"]))
    if state == "present":
        if before_commit is not None:
            before_commit(store.path(tag), manifest, False)
        return Moved(kind, tag, "present", files=len(files))
    with store.stage() as staged:
        got_blobs, got_bytes, reused = _fill(client, staged, files, sources, progress, f"pull {kind[:-1]} {tag}")
        if before_commit is not None:
            before_commit(staged, manifest, True)  # every file was verified as it arrived
        with open(staged / store.manifest, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        pulled = Provenance.new("pulled", source=client.url, trusted=trusted)
        try:
            store.commit(staged, tag.name, lambda _p, _v: None, version=tag.version, provenance=pulled)
        except AlreadyExists:  # a concurrent pull of the same entry won the race
            _local_state(store, tag, str(record["manifest_sha256"]))
            return Moved(kind, tag, "present", files=len(files))
    return Moved(kind, tag, "done", got_blobs, got_bytes, len(files), reused=reused)


def _fill(
    client: HubClient, staged: Path, files: Mapping[str, tuple[str, int]], sources: _Sources, progress: Progress, what: str
) -> tuple[int, int, int]:
    """Download (or copy from verified local files) every file into ``staged``; verify each."""
    to_fetch = {d: s for d, s in files.values() if d not in sources.paths}
    needed, free = sum(s for _, s in files.values()), shutil.disk_usage(staged).free
    if needed > free:
        raise IntegrityError(f"{what}: needs {needed} bytes but only {free} are free under {staged}")
    blobs = fetched = copied = 0
    with progress(what, sum(to_fetch.values())) as advance:
        for rel, (digest, size) in sorted(files.items()):
            dest = staged.joinpath(*PurePosixPath(rel).parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            source = sources.paths.get(digest)
            if source is not None and _reuse(source, dest, digest, digest in sources.fresh):
                copied += 1
                continue
            client.download_blob(digest, dest, size, advance)
            sources.paths[digest] = dest
            sources.fresh.add(digest)
            blobs += 1
            fetched += size
    return blobs, fetched, copied


def _reuse(source: Path, dest: Path, digest: str, fresh: bool) -> bool:
    """Copy a local file instead of downloading it: as it is when fresh, else only if it still matches."""
    if not fresh:
        return copy_verified(source, dest, digest)
    try:
        copy_synced(source, dest)
    except OSError:
        return False
    return True
