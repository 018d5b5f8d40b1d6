"""Render a bundle's ``env/docker/Dockerfile`` and ``env/docker/entrypoint.sh``.

The bundle directory is the build context. The image installs ``env/python`` first (so the
dependency layer is cached across source changes), then copies the bundle (without its wheels)
to :data:`BUNDLE_DIR`, runs as a fixed non-root uid, exposes port 3000, checks ``/livez`` and
starts ``mlpack serve`` through ``entrypoint.sh``; extra ``docker run`` arguments reach
``mlpack serve``.

Contract with ``env/python/install.sh`` (written by ``mlpack build``): it is run as root
with ``bash`` from any directory, must not need anything outside ``env/python/``, and installs
``requirements.txt`` (and mlpack) into the Python first on ``PATH`` (a virtual environment at
:data:`VENV`, the only thing the final image takes from the install stage), taking wheels from
``env/python/wheels/`` first and the package index otherwise.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlpack.exceptions import BuildError

__all__ = ["BUNDLE_DIR", "PORT", "VENV", "DockerOptions", "render_dockerfile", "render_entrypoint"]

#: Where the bundle lives inside the image.
BUNDLE_DIR = "/home/mlpack/bundle"
#: Default port of the API server inside the image.
PORT = 3000
#: The virtual environment the bundle's requirements are installed into.
VENV = "/opt/mlpack"
#: Bytecode goes here at run time (a writable /tmp even with a read-only root file system), so
#: the image carries none and the second start of a container is as fast as with it.
PYCACHE = "/tmp/mlpack-pycache"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Debian package name with an optional "=version" pin; anything else could inject shell.
_APT_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+~:-]+)?$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# A docker image reference (registry/name:tag@digest), loosely: no spaces or shell syntax.
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._/-]+$")

# files of installed packages that only building or debugging needs, dropped from images
_DEV_ONLY_FILES = ("*.c", "*.cpp", "*.h", "*.hpp", "*.pyx", "*.pxd", "*.pxi", "*.pyi", "*.map")

_HEALTHCHECK_CODE = (
    "import os, urllib.request; "
    "urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('PORT', '3000'), timeout=3)"
)


@dataclass(frozen=True)
class DockerOptions:
    """The ``docker:`` section of an mlpackfile.

    ``base_image`` defaults to ``python:<python_version>-slim``; ``setup_script`` is a path
    inside the bundle, relative to its root, run as root after the Python install.
    """

    base_image: str | None = None
    python_version: str = "3.11"
    system_packages: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    setup_script: str | None = None
    user: str = "mlpack"
    uid: int = 1034
    # vendor every wheel into env/python/wheels at build time (the image then needs no index)
    wheels: bool = False

    def __post_init__(self) -> None:
        # Normalise here so that every rendered Dockerfile comes from validated values.
        if not re.fullmatch(r"3\.\d{1,2}", str(self.python_version)):
            raise BuildError(f"docker.python_version must look like '3.11', got {self.python_version!r}")
        object.__setattr__(self, "python_version", str(self.python_version))
        if self.base_image is None:
            object.__setattr__(self, "base_image", f"python:{self.python_version}-slim")
        if not _IMAGE.match(str(self.base_image)):
            raise BuildError(f"docker.base_image is not a valid image reference: {self.base_image!r}")
        if isinstance(self.system_packages, str):
            raise BuildError("docker.system_packages must be a list of package names")
        packages = tuple(str(p) for p in self.system_packages)
        for package in packages:
            if not _APT_PACKAGE.match(package):
                raise BuildError(f"docker.system_packages: invalid Debian package name {package!r}")
        object.__setattr__(self, "system_packages", packages)
        env = {str(k): "" if v is None else str(v) for k, v in dict(self.env or {}).items()}
        for name, value in env.items():
            if not _ENV_NAME.match(name):
                raise BuildError(f"docker.env: invalid environment variable name {name!r}")
            if "\n" in value or "\r" in value:
                raise BuildError(f"docker.env: the value of {name} must be a single line")
        object.__setattr__(self, "env", env)
        if self.setup_script is not None:
            object.__setattr__(self, "setup_script", _bundle_relative(self.setup_script))
        if not _USER.match(self.user) or self.user == "root":
            raise BuildError(f"docker user must be a non-root user name, got {self.user!r}")
        if not isinstance(self.wheels, bool):
            raise BuildError(f"docker.wheels must be true or false, got {self.wheels!r}")
        if isinstance(self.uid, bool) or not isinstance(self.uid, int) or not 0 < self.uid < 2**31:
            raise BuildError(f"docker uid must be a positive integer (not root), got {self.uid!r}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> DockerOptions:
        """Build options from the mlpackfile ``docker:`` mapping (unknown keys are an error)."""
        config = dict(config or {})
        known = {"base_image", "python_version", "system_packages", "env", "setup_script", "user", "uid", "wheels"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise BuildError(f"unknown docker option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if config.get("env") is not None and not isinstance(config["env"], Mapping):
            raise BuildError("docker.env must be a mapping of NAME: value")
        if config.get("system_packages") is not None:
            config["system_packages"] = tuple(config["system_packages"])
        return cls(**{k: v for k, v in config.items() if v is not None})


def _bundle_relative(path: str) -> str:
    """Return ``path`` normalised, refusing anything that would leave the bundle."""
    norm = posixpath.normpath(str(path).replace("\\", "/"))
    if norm.startswith(("/", "..")) or norm == "." or not _SAFE_PATH.match(norm):
        raise BuildError(f"docker.setup_script must be a plain relative path inside the bundle, got {path!r}")
    return norm


def _quote_env(value: str) -> str:
    """Quote an ENV value so the Dockerfile keeps it literally (no ``$VAR`` expansion)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _continued(lines: list[str]) -> str:
    """Join instruction lines with Dockerfile line continuations."""
    return " \\\n    ".join(lines)


def render_dockerfile(options: DockerOptions | None = None) -> str:
    """Return the Dockerfile text for a bundle built with ``options``.

    Two stages: the first installs ``env/python`` into a virtual environment (from the vendored
    wheels when they are there) and stages the bundle without its wheels; the second copies just
    the environment and the bundle onto a fresh base, so no wheel, cache or build tool is left in.
    """
    o = options or DockerOptions()
    home = posixpath.dirname(BUNDLE_DIR)
    pip_env = ["PIP_NO_CACHE_DIR=1", "PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_ROOT_USER_ACTION=ignore"]
    out = [
        "# Generated by mlpack build. The bundle directory is the build context:",
        "#   docker build -f env/docker/Dockerfile -t IMAGE .",
        f"FROM {o.base_image} AS python-env",
        "",
        "# Dependencies first: this layer is reused until env/python changes.",
        "COPY env/python /tmp/env/python/",
        # Lean: no pip or setuptools in the environment, no bytecode (written at run time under
        # PYCACHE instead), no test suites, and none of what only builds or debugs extensions
        # (C/Cython sources, headers, type stubs, source maps).
        _continued([
            f"RUN python3 -m venv {VENV}",
            f"&& PATH={VENV}/bin:$PATH " + " ".join(pip_env) + " bash /tmp/env/python/install.sh",
            f"&& {VENV}/bin/python -m pip uninstall -q -y pip setuptools",
            f"&& find {VENV} -depth -type d \\( -name __pycache__ -o -path '*/site-packages/*/tests' \\) -exec rm -rf {{}} +",
            f"&& find {VENV} -type f \\( " + " -o ".join(f"-name '{p}'" for p in _DEV_ONLY_FILES) + " \\) -delete",
        ]),
        "# The bundle minus its wheels (they are installed above and would only take space).",
        "COPY . /tmp/bundle/",
        _continued([
            "RUN rm -rf /tmp/bundle/env/python/wheels",
            "&& mkdir /tmp/bundle/env/python/wheels",
            # files only their owner may read (e.g. written with mkstemp) must reach the service user
            "&& chmod -R u+rwX,go+rX /tmp/bundle",
        ]),
        "",
        f"FROM {o.base_image}",
        _continued([f'ENV PATH="{VENV}/bin:$PATH"', f"PYTHONPYCACHEPREFIX={PYCACHE}", "PYTHONUNBUFFERED=1", "LANG=C.UTF-8"]),
    ]
    # One instruction per variable, each value quoted literally: a shared ENV line would
    # let one variable refer to another, which hadolint rejects (DL3044).
    out += [f"ENV {k}={_quote_env(v)}" for k, v in o.env.items()]
    if o.system_packages:
        out += [
            "",
            _continued([
                "RUN apt-get update",
                "&& apt-get install -y --no-install-recommends " + " ".join(o.system_packages),
                "&& rm -rf /var/lib/apt/lists/*",
            ]),
        ]
    out += [
        "",
        "# A fixed uid/gid so mounted volumes and Kubernetes runAsUser/runAsNonRoot line up.",
        _continued([
            f"RUN groupadd --system --gid {o.uid} {o.user}",
            f"&& useradd --system --no-log-init --create-home --home-dir {home} "
            f"--uid {o.uid} --gid {o.uid} --shell /bin/sh {o.user}",
        ]),
        f"COPY --from=python-env {VENV} {VENV}",
        f"WORKDIR {BUNDLE_DIR}",
    ]
    if o.setup_script:
        out += [
            "",
            f"COPY {o.setup_script} ./{o.setup_script}",
            f'RUN chmod +x "./{o.setup_script}" && "./{o.setup_script}"',
        ]
    out += [
        "",
        f"COPY --from=python-env --chown={o.uid}:{o.uid} /tmp/bundle ./",
        "",
        f"USER {o.uid}:{o.uid}",
        f"EXPOSE {PORT}",
        "HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \\",
        "    CMD " + json.dumps(["python3", "-c", _HEALTHCHECK_CODE]),
        # Run through sh: the build context may not keep the executable bit.
        "ENTRYPOINT " + json.dumps(["sh", f"{BUNDLE_DIR}/env/docker/entrypoint.sh"]),
        "",
    ]
    return "\n".join(out)


_ENTRYPOINT = """\
#!/bin/sh
# Generated by mlpack build: starts the bundle's API server in a container.
#   IMAGE                      mlpack serve <bundle> --production on 0.0.0.0:${PORT:-3000}
#   IMAGE --workers=2          extra options are passed on to `mlpack serve` (later ones win)
#   IMAGE serve --workers=2    the same
#   IMAGE python -c '...'      any other command is run as is
# MLPACK_HOST overrides the bind address (e.g. 127.0.0.1 with --network host).
# MLPACK_AUTH_TOKEN_FILE=/run/secrets/tokens (a mounted file, one token a line) requires
# Authorization: Bearer TOKEN on the API routes (`mlpack serve --auth-token-file`).
set -e
BUNDLE=$(cd "$(dirname "$0")/../.." && pwd)

case "${1:-}" in
  "" | -*) ;;
  serve) shift ;;
  *) exec "$@" ;;
esac
exec mlpack serve "$BUNDLE" --production --host "${MLPACK_HOST:-0.0.0.0}" --port "${PORT:-@PORT@}" "$@"
"""


def render_entrypoint() -> str:
    """Return ``entrypoint.sh``: exec ``mlpack serve`` on the bundle, or the given command."""
    return _ENTRYPOINT.replace("@PORT@", str(PORT))
