"""A directory store of immutable, versioned entries (models or bundles).

Layout: ``<home>/<kind>/<name>/<version>/<manifest>`` plus ``<name>/latest``. Entries are
written under ``<home>/.tmp`` and renamed into place, so a reader sees an entry whole or not
at all; ``latest`` changes under a file lock. Nothing here knows what a model is.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .exceptions import AlreadyExists, AmbiguousTag, ArchiveError, IntegrityError, NotFound, StorageError
from .fsutil import os_error, reason, write_atomic
from .provenance import FILENAME as PROVENANCE
from .provenance import Provenance, write_provenance
from .staging import clean_stale, staging_dir
from .tag import LATEST, Tag, new_version
from .yamlio import load_yaml

if TYPE_CHECKING:
    from .archive import Limits

# hashlib, tarfile, tempfile and .archive load where they are used: `mlpack models list` needs none of them

_STALE_SECONDS = 24 * 3600  # for what .tmp holds without a lock (an older mlpack's)
# errors of the store's disk while staging; anything else is the caller's own error
_STORE_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
_CHUNK = 1 << 20


def sha256_file(path: Path, fsync: bool = False) -> str:
    """The file's sha256; with ``fsync``, also flush it to disk (one open for both)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
        if fsync:
            os.fsync(f.fileno())
    return digest.hexdigest()


def hash_tree(root: Path, skip: frozenset[str] = frozenset()) -> dict[str, str]:
    """sha256 of every regular file below ``root`` by POSIX relative path, fsyncing as it reads."""
    hashes: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            raise IntegrityError(f"{path} is a symbolic link; store entries hold regular files only")
        if path.is_file() and rel not in skip:
            hashes[rel] = sha256_file(path, fsync=True)
    return hashes


def verify_files(root: Path, files: dict[str, str], what: str) -> None:
    from .archive import unsafe_path

    for rel, expected in files.items():
        problem = unsafe_path(rel)
        if problem:
            raise IntegrityError(f"{what}: recorded file {rel!r} {problem}; the manifest is damaged or crafted")
        path = root / rel
        if not path.is_file():
            raise IntegrityError(f"{what}: file {rel} is missing; the entry is damaged, delete and save it again")
        if sha256_file(path) != expected:
            raise IntegrityError(
                f"{what}: file {rel} does not match its recorded sha256 (modified or corrupt); "
                "delete it and save or import it again"
            )


def tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


class Store:
    """Versioned entries of one kind under ``home``; ``manifest`` marks a complete entry."""

    def __init__(self, home: Path, kind: str, manifest: str, noun: str, root: Path | None = None) -> None:
        self.home = Path(home)
        self.kind = kind
        self.manifest = manifest
        self.noun = noun  # "model" or "bundle", for messages
        self.root = Path(root) if root else self.home / kind

    # -- reading ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith("."))
        except FileNotFoundError:
            if self.home.exists() and not self.home.is_dir():
                raise home_error(self.home, NotADirectoryError(errno.ENOTDIR, "Not a directory")) from None
            return []
        except OSError as exc:
            raise home_error(self.home, exc) from exc

    def versions(self, name: str) -> list[str]:
        """Complete versions of ``name`` (unsorted)."""
        base = self.root / name
        try:
            entries = list(os.scandir(base))
        except FileNotFoundError:
            return []
        return [e.name for e in entries if e.is_dir() and os.path.exists(os.path.join(e.path, self.manifest))]

    def entries(self, name: str | None = None) -> list[Tag]:
        names = [name] if name else self.names()
        return [Tag(n, v) for n in names for v in self.versions(n)]

    def path(self, tag: Tag) -> Path:
        """Directory of a fully resolved tag."""
        return self.root / tag.name / str(tag.version)

    def summaries(self, tags: list[Tag]) -> list[tuple[Tag, dict, int]]:
        """Parsed manifests and total sizes of ``tags``, skipping unreadable ones.

        Entries never change after commit, so parsed manifests are kept in ``.index.json``
        keyed by the manifest's mtime and size: listing 1000 models reads one file, not 1000.
        """
        index_path = self.root / ".index.json"
        try:
            index = json.loads(index_path.read_bytes())
        except (OSError, ValueError):
            index = {}
        merged = dict(index)
        changed = False
        found = []
        for tag in tags:
            key = f"{tag.name}/{tag.version}"
            path = self.path(tag)
            try:
                st = os.stat(path / self.manifest)
            except OSError:
                continue
            stamp = [st.st_mtime_ns, st.st_size]
            hit = index.get(key)
            if not (isinstance(hit, dict) and hit.get("stamp") == stamp):
                try:
                    hit = {"stamp": stamp, "manifest": load_yaml(path / self.manifest), "size": tree_size(path)}
                except (OSError, ValueError):
                    continue  # a damaged entry must not break listing; `get` reports it
                if _index_size(hit) <= st.st_size + 256:  # the index never outgrows the manifests
                    merged[key] = hit
                    changed = True
            found.append((tag, hit["manifest"], hit["size"]))
        seen = {f"{tag.name}/{tag.version}" for tag, _, _ in found}
        for key in [k for k in merged if k not in seen and not (self.root / k / self.manifest).exists()]:
            del merged[key]  # deleted entries
            changed = True
        if changed:
            with contextlib.suppress(OSError, TypeError, ValueError):  # a read-only store still lists
                write_atomic(index_path, json.dumps(merged, default=str, ensure_ascii=False, separators=(",", ":")))
        return found

    def _read_latest(self, name: str) -> str | None:
        try:
            version = (self.root / name / LATEST).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return version if (self.root / name / version / self.manifest).exists() else None

    def resolve(self, tag: Tag | str, newest: Callable[[list[Tag]], Tag] | None = None) -> Tag:
        """Turn ``name``, ``name:latest`` or a unique version prefix into a full tag."""
        tag = Tag.parse(tag)
        versions = self.versions(tag.name)
        if not versions:
            raise NotFound(f"no {self.noun} named {tag.name!r}; see `mlpack {self.kind} list`")
        if tag.is_latest:
            version = self._read_latest(tag.name)
            if version is None:  # latest file lost or stale: fall back to the newest entry
                tags = [Tag(tag.name, v) for v in versions]
                return newest(tags) if newest else max(tags)
            return Tag(tag.name, version)
        assert tag.version is not None
        if tag.version in versions:
            return tag
        matches = sorted(v for v in versions if v.startswith(tag.version))
        if not matches:
            raise NotFound(f"{self.noun} {tag} not found; see `mlpack {self.kind} list {tag.name}`")
        if len(matches) > 1:
            shown = ", ".join(f"{tag.name}:{m}" for m in matches[:10])
            raise AmbiguousTag(f"{self.noun} version prefix {tag} is ambiguous: matches {shown}; give more characters")
        return Tag(tag.name, matches[0])

    # -- writing ---------------------------------------------------------------------------
    def _lock(self, name: str):  # noqa: ANN202 - filelock type is imported lazily
        from filelock import FileLock

        locks = self.home / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(locks / f"{self.kind}-{name}.lock"), timeout=60)

    @contextlib.contextmanager
    def stage(self) -> Iterator[Path]:
        """A fresh staging directory on the store's file system; removed if not committed.

        A full disk or a read-only store while staging is one ``StorageError`` naming the store.
        """
        tmp_root = self._tmp_root()
        self._clean_stale(tmp_root)
        try:
            with staging_dir(tmp_root, f"{self.kind}-") as staged:
                yield staged
        except OSError as exc:
            if exc.errno not in _STORE_FULL:
                raise
            raise os_error(exc, "write into the store at", self.home) from exc

    def _tmp_root(self) -> Path:
        """``<home>/.tmp``, created if missing; an unusable MLPACK_HOME is one clear error."""
        tmp_root = self.home / ".tmp"
        try:
            tmp_root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise home_error(self.home, exc) from exc
        return tmp_root

    def _clean_stale(self, tmp_root: Path) -> None:
        clean_stale(tmp_root, _STALE_SECONDS)

    def commit(
        self,
        staged: Path,
        name: str,
        write_manifest: Callable[[Path, str], None],
        version: str | None = None,
        *,
        provenance: Provenance,
    ) -> Tag:
        """Move a staged entry into place as ``name:version`` (a new version if None).

        ``write_manifest(staged, version)`` writes the manifest last, once the version is known;
        ``provenance`` is written into the staged entry first, so the two appear together.
        """
        write_provenance(staged, provenance)
        base = self.root / name
        base.mkdir(parents=True, exist_ok=True)
        for _ in range(8):
            chosen = version or new_version()
            write_manifest(staged, chosen)
            fsync_dir(staged)
            target = base / chosen
            try:
                os.mkdir(target)  # reserve: fails if the version exists
            except FileExistsError:
                if not (target / self.manifest).exists() and _remove_empty(target):
                    continue  # an empty reservation left by a killed save
                if version:
                    raise AlreadyExists(
                        f"{self.noun} {name}:{version} already exists; delete it first or choose another version"
                    ) from None
                continue
            os.replace(staged, target)  # an empty reserved directory is replaced atomically
            fsync_dir(base)
            self._update_latest(name, chosen, explicit=version is not None)
            return Tag(name, chosen)
        raise AlreadyExists(f"could not find a free version for {name}")  # pragma: no cover

    def _update_latest(self, name: str, version: str, explicit: bool) -> None:
        with self._lock(name):
            current = self._read_latest(name)
            # generated versions sort by time; a save that finishes late must not roll latest back
            if current is None or explicit or version > current:
                write_atomic(self.root / name / LATEST, version + "\n")

    def delete(self, tag: Tag, newest: Callable[[list[Tag]], Tag] | None = None) -> None:
        """Remove a resolved entry; ``latest`` moves to the newest remaining version."""
        with staging_dir(self._tmp_root(), "deleted-") as trash, self._lock(tag.name):
            os.replace(self.path(tag), trash / "entry")
            remaining = self.versions(tag.name)
            base = self.root / tag.name
            if not remaining:
                with contextlib.suppress(FileNotFoundError):
                    (base / LATEST).unlink()
                if not any(p.is_dir() for p in base.iterdir()):
                    shutil.rmtree(base, ignore_errors=True)
            elif self._read_latest(tag.name) is None:
                tags = [Tag(tag.name, v) for v in remaining]
                chosen = newest(tags) if newest else max(tags)
                write_atomic(base / LATEST, f"{chosen.version}\n")

    # -- archives --------------------------------------------------------------------------
    def export(self, tag: Tag, dest: Path) -> Path:
        """Write the entry as a tar.gz at ``dest``, atomically (an older archive is replaced whole)."""
        import tarfile

        from .fsutil import atomic_output

        dest = Path(dest)
        src = self.path(tag)
        # exactly the manifest and what it records: never provenance.yaml or stray files
        recorded = sorted(load_yaml(src / self.manifest).get("files") or {})
        with atomic_output(dest) as out, tarfile.open(fileobj=out, mode="w:gz") as tar:  # type: ignore[call-overload]
            for rel in [self.manifest, *(r for r in recorded if r not in (self.manifest, PROVENANCE))]:
                tar.add(src / rel, arcname=rel, recursive=False)
        return dest

    def import_archive(
        self,
        archive: Path,
        read_manifest: Callable[[Path], Tag],
        *,
        provenance: Provenance,
        limits: Limits | None = None,
    ) -> Tag:
        """Unpack ``archive`` into a staging directory, validate it, and commit it.

        Only the manifest and the files it records are unpacked, within ``limits``;
        ``read_manifest(staged)`` checks the unpacked entry (hashes included) and returns its tag.
        """
        from .archive import Limits, extract

        archive = Path(archive)
        if not archive.is_file():
            raise ArchiveError(f"archive {archive} does not exist")
        with self.stage() as staged:
            extract(archive, staged, self.manifest, limits or Limits())
            tag = read_manifest(staged)
            assert tag.version is not None
            if (self.path(tag) / self.manifest).exists():
                raise AlreadyExists(f"{self.noun} {tag} already exists in the store; delete it first to re-import")
            return self.commit(staged, tag.name, lambda _p, _v: None, version=tag.version, provenance=provenance)


def home_error(home: Path, exc: OSError) -> StorageError:
    """Why the store at ``home`` cannot be used, in one line that says what to do."""
    fix = "set MLPACK_HOME to a directory you can write (default ~/.mlpack)"
    if home.exists() and not home.is_dir():
        return StorageError(f"the store MLPACK_HOME={home} is a file, not a directory; {fix}")
    if exc.errno == errno.ENOTDIR:
        return StorageError(f"the store MLPACK_HOME={home} cannot be created: a part of the path is a file; {fix}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"cannot use the store MLPACK_HOME={home}: {reason(exc)}; {fix}")
    return os_error(exc, "use the store at", home)


def _remove_empty(path: Path) -> bool:
    try:
        os.rmdir(path)
    except OSError:
        return False
    return True


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _index_size(hit: dict) -> int:
    try:
        return len(json.dumps(hit, default=str, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    except (TypeError, ValueError):
        return 1 << 62
