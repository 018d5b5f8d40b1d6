"""Build an OCI image from a bundle directory with docker, podman or buildah.

The bundle directory is the build context and ``env/docker/Dockerfile`` (written by
``mlpack build``) the Dockerfile. The backend comes from the ``backend`` argument, else
``$MLPACK_CONTAINERIZE_BACKEND``, else the first usable of docker (only if its engine
answers), podman, buildah. ``$MLPACK_CONTAINERIZE_OPTS`` adds backend flags (parsed like
a shell), e.g. ``--pull=never --isolation chroot`` on a machine without registry access.
"""

from __future__ import annotations

import collections
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from mlpack.exceptions import ContainerizeError, MlpackError

__all__ = ["BACKENDS", "ContainerizeResult", "containerize", "detect_backend", "build_command"]

BACKENDS = ("docker", "podman", "buildah")
BACKEND_ENV = "MLPACK_CONTAINERIZE_BACKEND"
OPTS_ENV = "MLPACK_CONTAINERIZE_OPTS"
DOCKERFILE = Path("env", "docker", "Dockerfile")

# name[:tag][@digest], lower-case repository as docker requires; never starts with "-",
# which the backend would read as an option.
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$")
_ARG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TAIL_LINES = 25
_DOCKER_INFO_TIMEOUT = 10.0


@dataclass(frozen=True)
class ContainerizeResult:
    """What was (or, with ``dry_run``, would be) run."""

    command: list[str]
    backend: str
    image: str

    @property
    def command_line(self) -> str:
        """The command as one shell-quoted line, for display."""
        return shlex.join(self.command)


def _others(backend: str) -> str:
    return "/".join(b for b in BACKENDS if b != backend)


def _docker_engine_error(env: Mapping[str, str], docker: str) -> str | None:
    """Return why the docker engine is unusable, or None when ``docker info`` succeeds."""
    try:
        proc = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True, text=True, env=dict(env), timeout=_DOCKER_INFO_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return f"`docker info` did not answer within {_DOCKER_INFO_TIMEOUT:g}s"
    except OSError as exc:
        return str(exc)
    if proc.returncode == 0:
        return None
    lines = [line.strip() for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"`docker info` exited with {proc.returncode}"


def detect_backend(env: Mapping[str, str] | None = None) -> str:
    """Return the first usable backend: docker with a reachable engine, podman, buildah."""
    env = os.environ if env is None else env
    path = env.get("PATH", "")
    docker_problem = None
    for backend in BACKENDS:
        exe = shutil.which(backend, path=path)
        if exe is None:
            continue
        if backend == "docker":
            docker_problem = _docker_engine_error(env, exe)
            if docker_problem:
                continue
        return backend
    if docker_problem:
        raise ContainerizeError(
            f"docker is installed but its engine is not reachable ({docker_problem}): "
            "start it, or install podman or buildah, or pass --backend"
        )
    raise ContainerizeError("no container backend found: install docker, podman or buildah, or pass --backend")


def _check_backend(backend: str, env: Mapping[str, str]) -> None:
    """Fail early, with one clear line, when an explicitly chosen backend cannot work."""
    exe = shutil.which(backend, path=env.get("PATH", ""))
    if exe is None:
        raise ContainerizeError(f"{backend} not found on PATH: install it, or use --backend {_others(backend)}")
    if backend == "docker":
        problem = _docker_engine_error(env, exe)
        if problem:
            raise ContainerizeError(
                f"docker is installed but its engine is not reachable ({problem}): "
                f"start it, or use --backend {_others(backend)}"
            )


def build_command(
    backend: str,
    bundle_path: Path,
    image: str,
    *,
    build_args: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """Return the image build command for ``backend``."""
    bundle = Path(bundle_path).resolve()
    if backend == "docker":
        cmd = ["docker", "build"]
    elif backend == "podman":
        cmd = ["podman", "build"]
    elif backend == "buildah":
        cmd = ["buildah", "bud"]
    else:
        raise ContainerizeError(f"unknown container backend {backend!r}: use one of {', '.join(BACKENDS)}")
    extra = list(extra_args)
    # podman/buildah default to the OCI format, which drops HEALTHCHECK; docker format keeps it.
    if backend != "docker" and not any(a == "--format" or a.startswith("--format=") for a in extra):
        cmd += ["--format", "docker"]
    cmd += extra
    cmd += ["-f", str(bundle / DOCKERFILE), "-t", image]
    for name, value in (build_args or {}).items():
        if not _ARG_NAME.match(str(name)):
            raise ContainerizeError(f"invalid build argument name {name!r}")
        cmd += ["--build-arg", f"{name}={value}"]
    cmd.append(str(bundle))
    return cmd


def _run(cmd: list[str], env: Mapping[str, str], stream: TextIO | None) -> None:
    """Run ``cmd``, copying its merged output to ``stream``; raise with the tail on failure."""
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=dict(env))
    except OSError as exc:
        raise ContainerizeError(f"cannot run {cmd[0]}: {exc}") from exc
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", errors="replace")
            tail.append(line.rstrip("\n"))
            if stream is not None:
                stream.write(line)
                stream.flush()
        code = proc.wait()
    except BaseException:
        # Ctrl-C or a broken stream: do not leave a build running behind our back.
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
    if code != 0:
        details = "\n".join(f"  {line}" for line in tail)
        raise ContainerizeError(f"{cmd[0]} build failed with exit code {code}:\n{details}")


def containerize(
    bundle_path: Path,
    image: str | None = None,
    *,
    name: str | None = None,
    version: str | None = None,
    backend: str | None = None,
    build_args: Mapping[str, str] | None = None,
    extra_args: Sequence[str] | None = None,
    dry_run: bool = False,
    env: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
    wheels: bool = True,
    wheel_cache: Path | None = None,
) -> ContainerizeResult:
    """Build an image from the bundle at ``bundle_path`` and return the command used.

    ``image`` defaults to ``name:version`` (the bundle's tag). ``extra_args`` defaults to
    ``$MLPACK_CONTAINERIZE_OPTS``. Build output (stdout and stderr merged) is copied to
    ``stream`` as it arrives; the last lines are in the error when the build fails.
    ``dry_run`` returns the command without checking the backend or running anything.
    ``wheels`` builds from a temporary copy of the bundle whose ``env/python/wheels/`` holds
    every wheel the requirements need (vendored through ``wheel_cache``), so the image build
    never reaches a package index; the stored bundle is left as it is.
    """
    env = dict(os.environ if env is None else env)
    bundle = Path(bundle_path)
    if not (bundle / DOCKERFILE).is_file():
        raise ContainerizeError(f"{bundle} has no {DOCKERFILE.as_posix()}: is it a bundle made by `mlpack build`?")
    if image is None:
        if not name:
            raise ContainerizeError("no image name: pass an image or the bundle's name and version")
        image = f"{name}:{version}" if version else name
    if not _IMAGE.match(image):
        raise ContainerizeError(
            f"invalid image name {image!r}: use lower-case [registry/]name[:tag], e.g. iris_classifier:1.0"
        )
    if extra_args is None:
        try:
            extra_args = shlex.split(env.get(OPTS_ENV, ""))
        except ValueError as exc:
            raise ContainerizeError(f"cannot parse ${OPTS_ENV}: {exc}") from exc
    chosen = backend or env.get(BACKEND_ENV) or None
    if chosen is not None:
        chosen = chosen.strip().lower()
        if chosen not in BACKENDS:
            raise ContainerizeError(f"unknown container backend {chosen!r}: use one of {', '.join(BACKENDS)}")
    if chosen is None:
        try:
            chosen = detect_backend(env)
        except ContainerizeError:
            if not dry_run:
                raise
            chosen = "docker"  # a dry run still shows what the usual command would be
    elif not dry_run:
        _check_backend(chosen, env)
    requirements = bundle / "env" / "python" / "requirements.txt"
    if dry_run or not wheels or not requirements.is_file():
        cmd = build_command(chosen, bundle, image, build_args=build_args, extra_args=extra_args)
        if not dry_run:
            _run(cmd, env, stream)
        return ContainerizeResult(command=cmd, backend=chosen, image=image)
    with tempfile.TemporaryDirectory(prefix="mlpack-context-") as tmp:
        context = _context_with_wheels(bundle, Path(tmp) / "context", wheel_cache, stream)
        cmd = build_command(chosen, context, image, build_args=build_args, extra_args=extra_args)
        _run(cmd, env, stream)
    return ContainerizeResult(command=cmd, backend=chosen, image=image)


def _context_with_wheels(bundle: Path, context: Path, cache: Path | None, stream: TextIO | None) -> Path:
    """A copy of ``bundle`` (hard links where possible) with its wheelhouse filled for the image."""
    from .wheelhouse import Target, fill_wheelhouse

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(bundle, context, symlinks=True, copy_function=link_or_copy)
    version = (context / "env" / "python" / "version.txt").read_text(encoding="utf-8").strip()
    python_version = ".".join(version.split(".")[:2]) or "3.11"
    if stream is not None:
        stream.write(f"vendoring wheels for Python {python_version} into the build context\n")
    try:
        names = fill_wheelhouse(
            context / "env" / "python" / "requirements.txt", context / "env" / "python" / "wheels",
            Target(python_version), cache=cache,
        )  # fmt: skip
    except MlpackError as exc:
        raise ContainerizeError(f"{exc}; or pass --no-wheels to let the image install from the index") from exc
    if stream is not None:
        stream.write(f"vendored {len(names)} wheels\n")
    return context
