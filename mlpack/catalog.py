"""Typed get/list/delete/export/import over one kind of store entry (models, bundles)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from .exceptions import ArchiveError, IntegrityError
from .settings import Settings
from .store import Store, verify_files
from .tag import Tag, validate_part
from .yamlio import load_yaml


class _Info(Protocol):
    name: str
    version: str
    creation_time: str
    labels: dict[str, str]
    files: dict[str, str]


E = TypeVar("E")


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

    def list(
        self, name: str | None = None, labels: Mapping[str, str] | None = None, settings: Settings | None = None
    ) -> list[E]:
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
        """Write ``<name>-<version><suffix>`` (a tar.gz); ``path`` may be a directory or a file."""
        entry.verify()
        filename = f"{entry.tag.name}-{entry.tag.version}{self.suffix}"
        dest = Path(path) if path else Path.cwd() / filename
        if dest.is_dir():
            dest = dest / filename
        return self.store(settings).export(entry.tag, dest)

    def import_(
        self, path: str | Path, settings: Settings | None = None, check: Callable[[Any], None] | None = None
    ) -> E:
        """Import an exported archive; it becomes visible only after its hashes check out."""

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

        tag = self.store(settings).import_archive(Path(path), validate)
        return self.get(tag, settings)
