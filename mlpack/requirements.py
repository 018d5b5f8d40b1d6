"""Pinned requirements for a bundle, taken from the build environment (no network): ``pin`` and
``lock`` requirements, ``infer_requirements`` from the imports of a module."""

from __future__ import annotations

import ast
import re
import sys
import warnings
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

# retired or import-style names that tutorials still use, mapped to the real distributions
RENAMED = {"sklearn": "scikit-learn", "xgboost": "xgboost"}


class RequirementWarning(UserWarning):
    """A listed package is not installed here, so it cannot be pinned."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def resolve_dist(name: str) -> str:
    """The installed distribution for a package or import name (``sklearn`` -> ``scikit-learn``,
    ``xgboost`` -> ``xgboost-cpu`` when that is what is installed)."""
    name = RENAMED.get(canonical(name), name)
    if installed_version(name) is not None:
        return name
    for dist in metadata.packages_distributions().get(name.replace("-", "_"), []):
        if installed_version(dist) is not None:
            return dist
    return name


def pin(requirement: str) -> str:
    """``pkg`` -> ``pkg==<installed>``; a requirement with a version or marker is kept as written."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(requirement)
    except InvalidRequirement as exc:
        from .exceptions import BuildError

        raise BuildError(f"invalid requirement {requirement!r}: {exc}") from exc
    dist = resolve_dist(req.name)
    if dist != req.name:
        req.name = dist
    if req.specifier or req.url:
        return str(req)
    version = installed_version(dist)
    if version is None:
        warnings.warn(f"{dist} is not installed here, so it is not pinned", RequirementWarning, stacklevel=2)
        return str(req)
    return f"{req}=={version}" if not req.extras else f"{req.name}[{','.join(sorted(req.extras))}]=={version}"


def lock(requirements: Iterable[str]) -> list[str]:
    """The requirements plus their installed dependency closure, every one pinned."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    env = default_environment()
    pinned: dict[str, str] = {}
    queue = [(Requirement(r), set()) for r in requirements]
    while queue:
        req, extras = queue.pop()
        if req.marker is not None and not any(req.marker.evaluate({**env, "extra": e}) for e in (extras or {""})):
            continue
        dist = resolve_dist(req.name)
        key = canonical(dist)
        version = installed_version(dist)
        if key in pinned and not req.extras:
            continue
        pinned[key] = f"{dist}=={version}" if version else str(req)
        if version is None:
            continue
        for child in metadata.requires(dist) or []:
            queue.append((Requirement(child), set(req.extras)))
    return [pinned[k] for k in sorted(pinned)]


# ---------------------------------------------------------------- requirements from imports


def _imports(statements: list[ast.stmt]) -> Iterator[str]:
    for node in statements:
        if isinstance(node, ast.Import):
            yield from (alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.partition(".")[0]
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            yield from _imports(node.body)
            yield from _imports(node.orelse)


def infer_requirements(file: Path, root: Path | None = None) -> list[str]:
    """Pinned distributions for the top-level imports of ``file`` (no stdlib, local modules or mlpack)."""
    from .exceptions import BuildError

    try:
        tree = ast.parse(Path(file).read_text(encoding="utf-8"), str(file))
    except (OSError, SyntaxError) as exc:
        raise BuildError(f"cannot read the imports of {file}: {exc}") from exc
    local_dirs = {Path(file).parent, *([root] if root else [])}
    found = []
    for name in dict.fromkeys(_imports(tree.body)):
        if name in sys.stdlib_module_names or name in ("mlpack", "bentoml"):
            continue
        if any((d / f"{name}.py").is_file() or (d / name).is_dir() for d in local_dirs):
            continue
        found.append(pin(resolve_dist(name)))
    return found
