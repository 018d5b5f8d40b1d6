"""Typed get/list/delete/export/import over one kind of store entry (models, bundles)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from .exceptions import ArchiveError, IntegrityError, StorageError, Untrusted
from .fsutil import os_error
from .provenance import Provenance, read_provenance, write_provenance
from .settings import Settings
from .store import Store, tree_size, verify_files
from .tag import Tag, validate_part
from .yamlio import load_yaml


class _Info(Protocol):
    name: str
    version: str
    creation_time: str
    labels: dict[str, str]
    files: dict[str, str]


E = TypeVar("E")


class InfoMixin:
    """``from_dict``/``to_dict``/``tag`` for the frozen dataclasses that mirror manifests."""

    name: str
    version: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @property
    def tag(self) -> Tag:
        return Tag(self.name, self.version)


class Entry:
    """A stored entry: its directory, its parsed manifest, and its size (computed once)."""

    noun = "entry"

    def __init__(self, path: Path, info: Any, size: int | None = None) -> None:
        self.path = Path(path)
        self.info = info
        self._size = size

    @property
    def tag(self) -> Tag:
        return self.info.tag

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = tree_size(self.path)
        return self._size

    def __repr__(self) -> str:
        return f'{type(self).__name__}(tag="{self.tag}")'

    def verify(self, *files: str) -> None:
        """Check the sha256 of the given files (all by default); raise IntegrityError."""
        recorded = self.info.files
        chosen = {f: recorded[f] for f in files if f in recorded} if files else recorded
        verify_files(self.path, chosen, f"{self.noun} {self.tag}")

    # -- trust ---------------------------------------------------------------------------
    def trust_anchor(self) -> tuple[Path, str]:
        """The directory whose ``provenance.yaml`` decides this entry's trust, and its kind."""
        return self.path, f"{self.noun}s"

    @property
    def provenance(self) -> Provenance:
        return read_provenance(self.trust_anchor()[0])

    @property
    def trusted(self) -> bool:
        return self.provenance.trusted

    def require_trusted(self, what: str) -> None:
        """Raise Untrusted, naming the entry and the fix, unless the entry is trusted."""
        anchor, kind = self.trust_anchor()
        prov = read_provenance(anchor)
        if prov.trusted:
            return
        owner = str(self.tag) if anchor == self.path else _tag_of(anchor)
        where = f"{prov.kind} from {prov.source}" if prov.source else prov.kind
        inside = "" if anchor == self.path else f" (it is part of bundle {owner})"
        raise Untrusted(
            f"{self.noun} {self.tag}{inside} was {where} and is not trusted: {what} can run code; "
            f"if you trust its source, run `mlpack {kind} trust {owner}`"
        )

    def to_dict(self) -> dict[str, Any]:
        prov = self.provenance
        return {**self.info.to_dict(), "path": str(self.path), "size": self.size, "provenance": prov.to_dict()}


def _tag_of(entry: Path) -> str:
    """``name:version`` from an entry's manifest, for messages (the directory names otherwise)."""
    from .yamlio import load_yaml

    for manifest in ("bundle.yaml", "model.yaml"):
        try:
            data = load_yaml(entry / manifest)
            return f"{data['name']}:{data['version']}"
        except (OSError, ValueError, KeyError):
            continue
    return f"{entry.parent.name}:{entry.name}"


@dataclass(frozen=True)
class Catalog(Generic[E]):
    """One kind of entry: where it lives, its manifest, and the classes that wrap it."""

    kind: str  # "models" or "bundles"
    manifest: str
    noun: str
    suffix: str  # archive file suffix
    info_cls: Any  # a dataclass with from_dict()
    entry_cls: Callable[..., E]  # entry_cls(path, info, size=None)
    root: Callable[[Settings], Path] | None = None

    def store(self, settings: Settings | None = None) -> Store:
        settings = settings or Settings.from_env()
        root = self.root(settings) if self.root else None
        return Store(settings.home, self.kind, self.manifest, self.noun, root=root)

    def read_info(self, path: Path) -> Any:
        try:
            return self.info_cls.from_dict(load_yaml(path / self.manifest))
        except (OSError, TypeError, ValueError) as exc:
            raise IntegrityError(f"cannot read {path / self.manifest}: {exc}") from exc

    def _newest(self, store: Store) -> Callable[[list[Tag]], Tag]:
        return lambda tags: max(tags, key=lambda t: (self.read_info(store.path(t)).creation_time, t.version or ""))

    def get(self, tag: Tag | str, settings: Settings | None = None) -> E:
        """``name``, ``name:latest``, ``name:version`` or a unique version prefix."""
        store = self.store(settings)
        path = store.path(store.resolve(tag, newest=self._newest(store)))
        return self.entry_cls(path, self.read_info(path))

    def list(self, name: str | None = None, labels: Mapping[str, str] | None = None, settings: Settings | None = None) -> list[E]:
        """Entries newest first, optionally filtered by name and labels."""
        store = self.store(settings)
        if name:
            name = validate_part(name, "name")
        found: list[tuple[str, str, E]] = []
        for tag, data, size in store.summaries(store.entries(name)):
            try:
                info = self.info_cls.from_dict(data)
            except TypeError:
                continue  # a damaged manifest must not break listing; `get` reports it
            if labels and any(info.labels.get(k) != v for k, v in labels.items()):
                continue
            found.append((info.creation_time, info.version, self.entry_cls(store.path(tag), info, size)))
        found.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return [entry for _, _, entry in found]

    def delete(self, tag: Tag, settings: Settings | None = None) -> None:
        store = self.store(settings)
        store.delete(tag, newest=self._newest(store))

    def export(self, entry: Any, path: str | Path | None, settings: Settings | None = None) -> Path:
        """Write ``<name>-<version><suffix>`` (a tar.gz) and return its path.

        ``path`` is a directory when it exists as one or ends with ``/`` (created if missing;
        the archive goes inside), else the archive's file name. An existing archive is replaced
        atomically.
        """
        entry.verify()
        filename = f"{entry.tag.name}-{entry.tag.version}{self.suffix}"
        text = os.fspath(path) if path is not None else ""
        if not text:
            dest = Path.cwd() / filename
        elif text.endswith(("/", os.sep)) or Path(text).is_dir():
            folder = Path(text)
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except FileExistsError as exc:  # a file of that name is in the way
                raise StorageError(f"cannot export into {text}: {folder} is a file, not a directory") from exc
            except OSError as exc:
                raise os_error(exc, "create the directory", folder) from exc
            dest = folder / filename
        else:
            dest = Path(text)
            if dest.parent.exists() and not dest.parent.is_dir():
                raise StorageError(f"cannot export to {dest}: {dest.parent} is a file, not a directory")
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise os_error(exc, "create the directory", dest.parent) from exc
        return self.store(settings).export(entry.tag, dest)

    def import_(
        self,
        path: str | Path,
        settings: Settings | None = None,
        check: Callable[[Any], None] | None = None,
        *,
        trust: bool = False,
        provenance: Provenance | None = None,
    ) -> E:
        """Import an exported archive; it becomes visible only after its hashes check out.

        The entry is recorded as imported from ``path`` and is untrusted unless ``trust``;
        a hub passes its own ``provenance`` (pulled from URL).
        """
        settings = settings or Settings.from_env()

        def validate(staged: Path) -> Tag:
            try:
                info = self.read_info(staged)
            except IntegrityError as exc:
                raise ArchiveError(f"archive {path} holds no readable {self.manifest}: is it a {self.noun} export?") from exc
            tag = Tag.validated(info.name, info.version)
            if check is not None:
                check(info)
            verify_files(staged, info.files, f"archive {path}")
            return tag

        if provenance is None:
            provenance = Provenance.new("imported", trusted=trust, source=str(Path(path).resolve()))
        from .archive import Limits

        limits = Limits(max_bytes=settings.import_max_bytes, max_members=settings.import_max_members)
        tag = self.store(settings).import_archive(Path(path), validate, provenance=provenance, limits=limits)
        return self.get(tag, settings)

    def trust(self, tag: Tag | str, settings: Settings | None = None) -> E:
        """Mark a stored entry trusted: its pickles and code may load from now on."""
        entry: Any = self.get(tag, settings)
        write_provenance(entry.path, entry.provenance.trusting())
        return entry
