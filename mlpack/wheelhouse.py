"""Vendor every wheel a bundle's image needs, so the image build never reaches a package index.

The host's own pip (and so its configuration: index URL, proxy, certificates) downloads the
wheels for the *image's* interpreter and platform, not the host's: CPython ``X.Y`` on Linux with
glibc up to the base image's (Debian bookworm's 2.36 for ``python:3.x-slim``). A requirement
with no such wheel on the index is built into one on the host when the host can build for the
image (same Python minor version, Linux, same machine). Downloads go through a cache directory,
so a second containerize of the same requirements works with no network at all.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .exceptions import BuildError

# glibc of Debian bookworm, the base of the official python:3.x-slim images mlpack defaults to
DEFAULT_GLIBC = (2, 36)
_PIP_TIMEOUT = 1800


@dataclass(frozen=True)
class Target:
    """The interpreter and platform wheels are chosen for."""

    python_version: str  # "3.11"
    machine: str = platform.machine() or "x86_64"
    glibc: tuple[int, int] = DEFAULT_GLIBC

    def platforms(self) -> list[str]:
        """Every manylinux tag the image's glibc runs, newest first (pip does not expand them itself)."""
        arch = self.machine
        tags = [f"manylinux_{self.glibc[0]}_{minor}_{arch}" for minor in range(self.glibc[1], 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        tags += [f"{name}_{arch}" for minor, name in legacy.items() if minor <= self.glibc[1]]
        return tags

    def pip_flags(self) -> list[str]:
        flags = ["--only-binary=:all:", "--python-version", self.python_version, "--implementation", "cp"]
        for tag in self.platforms():
            flags += ["--platform", tag]
        return flags

    def host_can_build(self) -> bool:
        host = f"{sys.version_info[0]}.{sys.version_info[1]}"
        return sys.platform == "linux" and host == self.python_version and platform.machine() == self.machine


def requirements_of(requirements_txt: Path) -> list[str]:
    lines = requirements_txt.read_text(encoding="utf-8").splitlines()
    return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]


def fill_wheelhouse(
    requirements_txt: Path,
    wheels: Path,
    target: Target,
    *,
    cache: Path | None = None,
    pip: Sequence[str] = (sys.executable, "-m", "pip"),
) -> list[str]:
    """Put into ``wheels`` exactly the wheels ``requirements_txt`` needs on ``target``.

    Returns the wheel file names. Tries the cache alone first (no network); otherwise downloads
    into the cache, building on the host what the index has no wheel for.
    """
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlpack-wheels-") as scratch:
        cache = Path(cache) if cache is not None else Path(scratch) / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        local = ["--find-links", str(wheels), "--find-links", str(cache)]
        select = [*pip, "download", "-q", "--no-index", *local, *target.pip_flags(), "-d", str(wheels),
                  "-r", str(requirements_txt)]  # fmt: skip
        if _run(select).returncode == 0:
            return _names(wheels)
        fetch = [*pip, "download", "-q", "--find-links", str(wheels), *target.pip_flags(), "-d", str(cache),
                 "-r", str(requirements_txt)]  # fmt: skip
        built: set[str] = set()
        for _ in range(20):  # one round per requirement that needs a local build
            proc = _run(fetch)
            if proc.returncode == 0:
                break
            missing = _no_wheel_for(proc.stderr)
            if missing is None or missing in built or not target.host_can_build():
                raise BuildError(_download_error(proc.stderr, target, missing))
            built.add(missing)
            wheel = _run([*pip, "wheel", "-q", "--no-deps", "--wheel-dir", str(cache), missing])
            if wheel.returncode != 0:
                raise BuildError(f"no wheel of {missing} for the image, and building one failed: {_tail(wheel.stderr)}")
        proc = _run(select)
        if proc.returncode != 0:
            raise BuildError(_download_error(proc.stderr, target, None))
    return _names(wheels)


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"could not run pip to vendor wheels: {exc}") from exc


def _names(wheels: Path) -> list[str]:
    return sorted(p.name for p in wheels.glob("*.whl"))


def _no_wheel_for(stderr: str) -> str | None:
    """The requirement pip found no wheel for, from its "No matching distribution" line."""
    for line in stderr.splitlines():
        if "No matching distribution found for" in line:
            return line.rsplit("for", 1)[1].strip() or None
    return None


def _tail(text: str, lines: int = 3) -> str:
    kept = [ln.strip() for ln in text.splitlines() if ln.strip() and "is ignored" not in ln]
    return " | ".join(kept[-lines:]) or "no output"


def _download_error(stderr: str, target: Target, missing: str | None) -> str:
    what = f"no wheel of {missing}" if missing else "the wheels could not be downloaded"
    return (
        f"vendoring wheels for Python {target.python_version} on {target.machine} failed: {what} "
        f"({_tail(stderr)}); check the host's pip configuration (index URL, proxy), or build the bundle with "
        "`mlpack build --wheels` on a machine that reaches the index"
    )


__all__ = ["Target", "fill_wheelhouse", "requirements_of"]
