"""Unpacking an exported archive: exactly the manifest and the files it records, and bounded.

Layers, each refusing on its own: member count and declared size are capped while the member
list is read (so a bomb is stopped before its data is decompressed); every member must be a
plain file or directory (no links, devices or sparse files, which can unpack to far more than
they declare); tarfile's ``data`` filter vets each member where Python has it; the manifest is
read first, wherever it sits in the archive, and only the files it records (and their parent
directories) may appear; bytes are counted again while copying.
"""

from __future__ import annotations

import contextlib
import errno
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from .exceptions import ArchiveError
from .fsutil import is_disk_full
from .provenance import FILENAME as PROVENANCE
from .yamlio import MAX_BYTES, loads_yaml

_CHUNK = 1 << 20
_PLAIN_FILE = (tarfile.REGTYPE, tarfile.AREGTYPE)


@dataclass(frozen=True)
class Limits:
    """How much one import may unpack."""

    max_bytes: int = 20 << 30
    max_members: int = 100_000
    max_manifest_bytes: int = MAX_BYTES


def unsafe_path(rel: object) -> str | None:
    """Why ``rel`` cannot name a file inside an entry (None when it can)."""
    if not isinstance(rel, str) or not rel:
        return "is not a relative path"
    if "\\" in rel or "\x00" in rel:
        return "contains a backslash or NUL"
    if rel.startswith("/") or PurePosixPath(rel).is_absolute():
        return "is absolute"
    if any(part in ("", ".", "..") for part in rel.split("/")):
        return "leaves the entry (empty, '.' or '..' parts)"
    return None


def extract(archive: Path, dest: Path, manifest: str, limits: Limits) -> None:
    """Unpack ``archive`` into the empty directory ``dest``; ArchiveError for anything not exact."""
    with _reading(archive, dest), tarfile.open(archive, "r:*") as tar:
        members = _scan(tar, archive, dest, limits)
        meta = members.pop(manifest, None)
        if meta is None or not meta.isfile():
            raise ArchiveError(f"archive {archive} holds no {manifest}: is it a file made by `export`?")
        files = _read_manifest(tar, meta, archive, dest / manifest, limits)
        _check_recorded(members, files, archive, manifest)
        _copy_all(tar, members, dest, limits.max_bytes - meta.size, archive)


def extract_all(archive: Path, dest: Path, limits: Limits) -> None:
    """Unpack every member, with the same checks but no manifest (archives mlpack packs itself)."""
    with _reading(archive, dest), tarfile.open(archive, "r:*") as tar:
        _copy_all(tar, _scan(tar, archive, dest, limits), dest, limits.max_bytes, archive)


def _copy_all(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], dest: Path, budget: int, archive: Path) -> None:
    for member in sorted((m for m in members.values() if m.isfile()), key=lambda m: m.offset_data):
        budget = _copy(tar, member, dest, budget, archive)
    for member in members.values():
        if member.isdir():
            dest.joinpath(*_name(member).split("/")).mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def _reading(archive: Path, dest: Path) -> Iterator[None]:
    """Archive trouble as ArchiveError; the store's own full disk passes through (Store.stage names it)."""
    try:
        yield
    except (tarfile.TarError, EOFError, UnicodeError) as exc:
        raise ArchiveError(f"cannot read archive {archive}: {exc}; is it a file made by `export`?") from exc
    except OSError as exc:
        if is_disk_full(exc) or exc.errno in (errno.EFBIG, errno.EROFS):
            raise
        if exc.filename and str(exc.filename).startswith(str(dest)):
            raise ArchiveError(f"cannot write {exc.filename}: {exc.strerror}") from exc
        raise ArchiveError(f"cannot read archive {archive}: {exc.strerror or exc}") from exc


def _name(member: tarfile.TarInfo) -> str:
    name = member.name
    while name.startswith("./"):  # `tar -C dir .` writes ./x
        name = name[2:]
    return name.rstrip("/") if member.isdir() else name


def _scan(tar: tarfile.TarFile, archive: Path, dest: Path, limits: Limits) -> dict[str, tarfile.TarInfo]:
    """Every member by name, each one checked, stopping as soon as a cap is passed."""
    data_filter = getattr(tarfile, "data_filter", None)  # Python 3.11.4+
    members: dict[str, tarfile.TarInfo] = {}
    declared = 0
    for count, member in enumerate(tar, start=1):
        if count > limits.max_members:
            raise ArchiveError(
                f"archive {archive} has more than {limits.max_members} members; raise MLPACK_IMPORT_MAX_MEMBERS if it is genuine"
            )
        name = _name(member)
        if member.isdir() and name in ("", "."):
            continue
        problem = unsafe_path(name)
        if problem:
            raise ArchiveError(f"archive {archive} is unsafe: member {member.name!r} {problem}")
        if member.issparse() or getattr(member, "sparse", None) is not None:
            raise ArchiveError(f"archive {archive} is unsafe: member {member.name!r} is a sparse file")
        if not (member.type in _PLAIN_FILE or member.isdir()):
            raise ArchiveError(f"archive {archive} is unsafe: member {member.name!r} is a link or special file")
        if data_filter is not None:
            try:
                data_filter(member, str(dest))
            except tarfile.FilterError as exc:
                raise ArchiveError(f"archive {archive} is unsafe: member {member.name!r}: {exc}") from exc
        if name in members:
            raise ArchiveError(f"archive {archive} is unsafe: member {name!r} appears twice")
        declared += member.size if member.isfile() else 0
        if declared > limits.max_bytes:
            raise ArchiveError(
                f"archive {archive} unpacks to more than {limits.max_bytes} bytes; raise MLPACK_IMPORT_MAX_BYTES if it is genuine"
            )
        members[name] = member
    return members


def _read_manifest(tar: tarfile.TarFile, member: tarfile.TarInfo, archive: Path, target: Path, limits: Limits) -> dict:
    if member.size > limits.max_manifest_bytes:
        raise ArchiveError(f"archive {archive}: {member.name} is larger than {limits.max_manifest_bytes} bytes")
    src = tar.extractfile(member)
    assert src is not None
    with src:
        raw = src.read(limits.max_manifest_bytes + 1)
    try:
        data: Any = loads_yaml(raw.decode("utf-8"))
    except ValueError as exc:
        raise ArchiveError(f"archive {archive}: {member.name} is not readable: {exc}") from exc
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ArchiveError(f"archive {archive}: {member.name} has no valid files: list; is it a file made by `export`?")
    target.write_bytes(raw)
    return files


def _check_recorded(members: dict[str, tarfile.TarInfo], files: dict, archive: Path, manifest: str) -> None:
    for rel in files:
        problem = unsafe_path(rel)
        if problem:
            raise ArchiveError(f"archive {archive} is unsafe: {manifest} records {rel!r}, which {problem}")
        if rel in (manifest, PROVENANCE):
            raise ArchiveError(f"archive {archive} is unsafe: {manifest} records {rel!r}, which the store writes itself")
    dirs = {"/".join(rel.split("/")[:i]) for rel in files for i in range(1, rel.count("/") + 1)}
    for name, member in members.items():
        if name == PROVENANCE:
            raise ArchiveError(f"archive {archive} carries {PROVENANCE}; archives never decide their own trust")
        if (member.isdir() and name not in dirs) or (member.isfile() and name not in files):
            raise ArchiveError(f"archive {archive} holds {name!r}, which {manifest} does not record; refusing it")


def _copy(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, budget: int, archive: Path) -> int:
    """Copy one file, counting bytes against ``budget``; the budget left."""
    target = dest.joinpath(*_name(member).split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    src: IO[bytes] | None = tar.extractfile(member)
    assert src is not None
    with src, open(target, "xb") as out:
        while chunk := src.read(_CHUNK):
            budget -= len(chunk)
            if budget < 0:
                raise ArchiveError(f"archive {archive} unpacks to more than its size limit; refusing it")
            out.write(chunk)
    return budget
