"""Built bundles in the store: ``bundle.yaml``, the ``Bundle`` handle, and ``mlpack.bundles.*``."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .exceptions import ArchiveError, IntegrityError
from .settings import Settings
from .store import Store, tree_size, verify_files
from .tag import Tag, validate_part
from .yamlio import load_yaml

MANIFEST = "bundle.yaml"


def bundle_store(settings: Settings | None = None) -> Store:
    return Store((settings or Settings.from_env()).home, "bundles", MANIFEST, "bundle")


@dataclass(frozen=True)
class BundleInfo:
    """The contents of ``bundle.yaml``."""

    service: str
    name: str
    version: str
    creation_time: str
    mlpack_version: str = ""
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)
    apis: list[dict[str, Any]] = field(default_factory=list)
    python: dict[str, Any] = field(default_factory=dict)
    docker: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BundleInfo:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def tag(self) -> Tag:
        return Tag(self.name, self.version)


def read_info(path: Path) -> BundleInfo:
    try:
        return BundleInfo.from_dict(load_yaml(path / MANIFEST))
    except (OSError, TypeError, ValueError) as exc:
        raise IntegrityError(f"cannot read {path / MANIFEST}: {exc}") from exc


class Bundle:
    """A built bundle directory: ``src/``, ``models/``, ``env/``, ``apis/`` and ``bundle.yaml``."""

    def __init__(self, path: Path, info: BundleInfo, size: int | None = None) -> None:
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

    def verify(self) -> None:
        verify_files(self.path, self.info.files, f"bundle {self.tag}")

    def __repr__(self) -> str:
        return f'Bundle(tag="{self.tag}")'

    def to_dict(self) -> dict[str, Any]:
        return {**self.info.to_dict(), "path": str(self.path), "size": self.size}

    @classmethod
    def from_path(cls, path: str | Path) -> Bundle:
        path = Path(path).resolve()
        return cls(path, read_info(path))


def _newest(store: Store):  # noqa: ANN202
    return lambda tags: max(tags, key=lambda t: (read_info(store.path(t)).creation_time, t.version or ""))


def get(tag: Tag | str, settings: Settings | None = None) -> Bundle:
    store = bundle_store(settings)
    resolved = store.resolve(tag, newest=_newest(store))
    path = store.path(resolved)
    return Bundle(path, read_info(path))


def list(  # noqa: A001 - mirrors mlpack.models.list
    name: str | None = None, labels: Mapping[str, str] | None = None, settings: Settings | None = None
) -> builtins.list[Bundle]:
    store = bundle_store(settings)
    if name:
        name = validate_part(name, "name")
    found = []
    for tag, data, size in store.summaries(store.entries(name)):
        try:
            info = BundleInfo.from_dict(data)
        except TypeError:
            continue
        if labels and any(info.labels.get(k) != v for k, v in labels.items()):
            continue
        found.append(Bundle(store.path(tag), info, size))
    found.sort(key=lambda b: (b.info.creation_time, b.info.version), reverse=True)
    return found


def delete(tag: Tag | str, settings: Settings | None = None) -> Tag:
    bundle = get(tag, settings)
    store = bundle_store(settings)
    store.delete(bundle.tag, newest=_newest(store))
    return bundle.tag


def export_bundle(tag: Tag | str, path: str | Path | None = None, settings: Settings | None = None) -> Path:
    """Write ``<name>-<version>.mlbundle`` (a tar.gz); ``path`` may be a directory or a file."""
    bundle = get(tag, settings)
    bundle.verify()
    filename = f"{bundle.tag.name}-{bundle.tag.version}.mlbundle"
    dest = Path(path) if path else Path.cwd() / filename
    if dest.is_dir():
        dest = dest / filename
    return bundle_store(settings).export(bundle.tag, dest)


def import_bundle(path: str | Path, settings: Settings | None = None) -> Bundle:
    def check(staged: Path) -> Tag:
        try:
            info = read_info(staged)
        except IntegrityError as exc:
            raise ArchiveError(f"archive {path} holds no readable {MANIFEST}: is it a bundle export?") from exc
        verify_files(staged, info.files, f"archive {path}")
        return Tag.validated(info.name, info.version)

    tag = bundle_store(settings).import_archive(Path(path), check)
    return get(tag, settings)
