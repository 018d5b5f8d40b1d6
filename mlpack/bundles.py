"""Built bundles in the store: ``bundle.yaml``, the ``Bundle`` handle, and ``mlpack.bundles.*``."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .catalog import Catalog
from .settings import Settings
from .store import Store, tree_size, verify_files
from .tag import Tag

MANIFEST = "bundle.yaml"


def bundle_store(settings: Settings | None = None) -> Store:
    return CATALOG.store(settings)


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
    return CATALOG.read_info(path)


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


def get(tag: Tag | str, settings: Settings | None = None) -> Bundle:
    return CATALOG.get(tag, settings)


def list(  # noqa: A001 - mirrors mlpack.models.list
    name: str | None = None, labels: Mapping[str, str] | None = None, settings: Settings | None = None
) -> builtins.list[Bundle]:
    return CATALOG.list(name, labels, settings)


def delete(tag: Tag | str, settings: Settings | None = None) -> Tag:
    bundle = get(tag, settings)
    CATALOG.delete(bundle.tag, settings)
    return bundle.tag


def export_bundle(tag: Tag | str, path: str | Path | None = None, settings: Settings | None = None) -> Path:
    """Write ``<name>-<version>.mlbundle`` (a tar.gz); ``path`` may be a directory or a file."""
    return CATALOG.export(get(tag, settings), path, settings)


def import_bundle(path: str | Path, settings: Settings | None = None) -> Bundle:
    return CATALOG.import_(path, settings)


CATALOG: Catalog[Bundle] = Catalog(
    kind="bundles", manifest=MANIFEST, noun="bundle", suffix=".mlbundle", info_cls=BundleInfo, entry_cls=Bundle
)
