"""Pytest fixture for tests that build and run real OCI images (buildah + podman).

Load it from ``tests/conftest.py`` with ``pytest_plugins = ["tests.containers"]``.
``container_env`` runs ``scripts/container-setup.sh`` once per session (idempotent: a
few tenths of a second once the tools and base image exist) and removes the containers
and images it made at the end; the base image and its cached tar stay.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP_SCRIPT = ROOT / "scripts" / "container-setup.sh"
# The flags mlpack containerize needs here: no registry, no usable OCI runtime for RUN.
BUILD_OPTS = ("--pull=never", "--isolation", "chroot")
CANNOT_INSTALL = 77  # container-setup.sh: tools cannot be installed on this machine


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (containers run with --network host)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ContainerEnv:
    """Private buildah/podman storage plus helpers that fail tests with useful output."""

    env: dict[str, str]
    containers: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    @property
    def process_env(self) -> dict[str, str]:
        """``os.environ`` plus the storage settings, for any subprocess using the store."""
        return {**os.environ, **self.env}

    @property
    def containerize_env(self) -> dict[str, str]:
        """Environment for ``mlpack containerize`` / ``containerize()`` on this machine."""
        return {
            **self.process_env,
            "MLPACK_CONTAINERIZE_BACKEND": "buildah",
            "MLPACK_CONTAINERIZE_OPTS": shlex.join(BUILD_OPTS),
        }

    def unique_tag(self, prefix: str = "mlpack-test") -> str:
        """A fresh local image tag, removed at session end."""
        tag = f"localhost/{prefix}:{uuid.uuid4().hex[:10]}"
        self.images.append(tag)
        return tag

    def cmd(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run a podman/buildah command against the private store."""
        proc = subprocess.run(list(args), capture_output=True, text=True, env=self.process_env, timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"{shlex.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def build(self, context: Path, dockerfile: Path | None = None, tag: str | None = None) -> str:
        """Build ``context`` (Dockerfile at ``dockerfile``, default ``context/Dockerfile``)."""
        tag = tag or self.unique_tag()
        if tag not in self.images:
            self.images.append(tag)
        dockerfile = dockerfile or Path(context) / "Dockerfile"
        self.cmd("buildah", "bud", "-q", *BUILD_OPTS, "--format", "docker",
                 "-f", str(dockerfile), "-t", tag, str(context))
        return tag

    def track_image(self, tag: str) -> None:
        """Remove ``tag`` at session end (for images built by other means, e.g. containerize)."""
        if tag not in self.images:
            self.images.append(tag)

    def run(self, image: str, args: Sequence[str] = (), env: Mapping[str, str] | None = None,
            network: str = "none", timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a one-off container to completion (``podman run --rm``); never raises on exit code."""
        env_flags = [f for k, v in (env or {}).items() for f in ("-e", f"{k}={v}")]
        return self.cmd("podman", "run", "--rm", "--init", "--network", network, *env_flags, image, *args,
                        check=False, timeout=timeout)

    def run_detached(self, image: str, args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                     network: str = "host", volumes: Sequence[str] = ()) -> str:
        """Start a container in the background and return its id (removed at session end).

        Never publish ports here: with ``--network host`` bind the server to 127.0.0.1.
        ``volumes`` are ``-v`` arguments (``HOST:CONTAINER[:ro]``).
        """
        if network not in ("host", "none"):
            raise ValueError("only --network host or none: port publishing is not allowed here")
        env_flags = [f for k, v in (env or {}).items() for f in ("-e", f"{k}={v}")]
        mounts = [f for v in volumes for f in ("-v", v)]
        cid = self.cmd(
            "podman", "run", "-d", "--init", "--network", network, *env_flags, *mounts, image, *args
        ).stdout.strip()
        self.containers.append(cid)
        return cid

    def logs(self, cid: str) -> str:
        proc = self.cmd("podman", "logs", cid, check=False)
        return proc.stdout + proc.stderr

    def is_running(self, cid: str) -> bool:
        proc = self.cmd("podman", "inspect", "--format", "{{.State.Running}}", cid, check=False)
        return proc.stdout.strip() == "true"

    def wait_http(self, url: str, cid: str | None = None, timeout: float = 60) -> tuple[int, bytes]:
        """Poll ``url`` until it answers; fail with the container's logs if it dies or times out."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    return resp.status, resp.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()
            except OSError as exc:
                last = exc
            if cid is not None and not self.is_running(cid):
                pytest.fail(f"container exited before {url} answered:\n{self.logs(cid)[-3000:]}")
            time.sleep(0.2)
        logs = self.logs(cid)[-3000:] if cid else ""
        pytest.fail(f"{url} did not answer within {timeout}s ({last}):\n{logs}")

    def stop(self, cid: str, timeout: int = 10) -> None:
        """Stop (SIGTERM, then SIGKILL after ``timeout`` s) and remove a container."""
        self.cmd("podman", "stop", "-t", str(timeout), cid, check=False)
        self.cmd("podman", "rm", "-f", cid, check=False)
        if cid in self.containers:
            self.containers.remove(cid)

    def image_size(self, tag: str) -> int:
        """Image size in bytes."""
        return int(self.cmd("podman", "image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())

    def inspect_image(self, tag: str, template: str) -> str:
        """``podman image inspect --format TEMPLATE``, e.g. ``{{.Config.User}}``."""
        return self.cmd("podman", "image", "inspect", "--format", template, tag).stdout.strip()

    def cleanup(self) -> None:
        if self.containers:
            self.cmd("podman", "rm", "-f", "-t", "0", *self.containers, check=False)
            self.containers.clear()
        if self.images:
            self.cmd("podman", "rmi", "-f", *self.images, check=False)
            self.images.clear()


def _setup() -> dict[str, str]:
    """Run container-setup.sh and return the variables it exports (skip if it cannot run)."""
    if os.name != "posix" or not Path("/proc/mounts").exists():
        pytest.skip("!!! CONTAINER TESTS SKIPPED: buildah/podman need Linux !!!")
    try:
        proc = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=1200)
    except FileNotFoundError:
        pytest.skip("!!! CONTAINER TESTS SKIPPED: bash not found !!!")
    if proc.returncode == CANNOT_INSTALL:
        pytest.skip(f"!!! CONTAINER TESTS SKIPPED: container tools cannot be installed here: {proc.stderr.strip()} !!!")
    if proc.returncode != 0:
        pytest.fail(f"scripts/container-setup.sh failed ({proc.returncode}):\n{proc.stderr}")
    env: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        parts = shlex.split(line)
        if len(parts) == 2 and parts[0] == "export" and "=" in parts[1]:
            key, value = parts[1].split("=", 1)
            env[key] = value
    if "CONTAINERS_STORAGE_CONF" not in env:
        pytest.fail(f"scripts/container-setup.sh printed no CONTAINERS_* settings:\n{proc.stdout}")
    return env


_shared: ContainerEnv | None = None


@pytest.fixture(scope="session")
def container_env() -> Iterator[ContainerEnv]:
    """Buildah/podman with a private store and a local ``python:3.11-slim`` base image."""
    global _shared
    # Shared so that importing this fixture into a test module as well as loading the
    # plugin from conftest still sets up (and cleans up) a single environment.
    if _shared is None:
        _shared = ContainerEnv(env=_setup())
    try:
        yield _shared
    finally:
        _shared.cleanup()
