"""Pinned requirements for a bundle, taken from the build environment (no network)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from importlib import metadata

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
