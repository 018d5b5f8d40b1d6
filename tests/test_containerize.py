"""``mlpack.containerize``: backend choice and commands; real builds under the container marker."""

from __future__ import annotations

import io
import json
import os
import textwrap
from pathlib import Path

import pytest

from mlpack.containerize import build_command, containerize, detect_backend
from mlpack.dockerfile import DockerOptions, render_dockerfile, render_entrypoint
from mlpack.exceptions import ContainerizeError
from tests.containers import ContainerEnv, container_env, free_port  # noqa: F401  (fixture for this module)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    path = tmp_path / "bundle"
    (path / "env" / "docker").mkdir(parents=True)
    (path / "env" / "docker" / "Dockerfile").write_text("FROM python:3.11-slim\n")
    return path


def fake_bin(tmp_path: Path, **scripts: str) -> dict[str, str]:
    """An env whose PATH holds only the given fake executables (name -> sh body)."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in scripts.items():
        exe = bin_dir / name
        exe.write_text(f"#!/bin/sh\n{body}\n")
        exe.chmod(0o755)
    return {"PATH": str(bin_dir)}


NO_ENGINE = 'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2; exit 1'


@pytest.mark.parametrize(
    "backend, head",
    [
        ("docker", ["docker", "build"]),
        ("podman", ["podman", "build", "--format", "docker"]),
        ("buildah", ["buildah", "bud", "--format", "docker"]),
    ],
)
def test_dry_run_command(bundle: Path, backend: str, head: list[str]) -> None:
    result = containerize(bundle, "iris:1", backend=backend, build_args={"A": "1"}, dry_run=True, env={"PATH": ""})
    root = str(bundle.resolve())
    assert result.command == [
        *head, "-f", f"{root}/env/docker/Dockerfile", "-t", "iris:1", "--build-arg", "A=1", root,
    ]
    assert result.backend == backend and result.image == "iris:1"
    assert result.command_line.startswith(f"{backend} ")


def test_extra_options_from_env_or_argument(bundle: Path) -> None:
    env = {"PATH": "", "MLPACK_CONTAINERIZE_OPTS": "--pull=never --isolation chroot"}
    cmd = containerize(bundle, "x:1", backend="buildah", dry_run=True, env=env).command
    assert cmd[:7] == ["buildah", "bud", "--format", "docker", "--pull=never", "--isolation", "chroot"]
    cmd = containerize(bundle, "x:1", backend="podman", dry_run=True, env=env, extra_args=["--format=oci"]).command
    assert cmd[:3] == ["podman", "build", "--format=oci"]
    with pytest.raises(ContainerizeError, match="MLPACK_CONTAINERIZE_OPTS"):
        containerize(bundle, "x:1", dry_run=True, env={"MLPACK_CONTAINERIZE_OPTS": "'unclosed"})


def test_backend_from_env_variable(bundle: Path) -> None:
    env = {"PATH": "", "MLPACK_CONTAINERIZE_BACKEND": "podman"}
    assert containerize(bundle, "x:1", dry_run=True, env=env).backend == "podman"
    assert containerize(bundle, "x:1", backend="buildah", dry_run=True, env=env).backend == "buildah"
    with pytest.raises(ContainerizeError, match="unknown container backend 'kaniko'"):
        containerize(bundle, "x:1", dry_run=True, env={"MLPACK_CONTAINERIZE_BACKEND": "kaniko"})


def test_image_name(bundle: Path) -> None:
    assert containerize(bundle, name="iris_clf", version="abc", dry_run=True, env={}).image == "iris_clf:abc"
    with pytest.raises(ContainerizeError, match="no image name"):
        containerize(bundle, dry_run=True, env={})
    for bad in ("--rm", "Iris:1", "iris 1", "iris:1;ls"):
        with pytest.raises(ContainerizeError, match="invalid image name"):
            containerize(bundle, bad, dry_run=True, env={})


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(ContainerizeError, match="env/docker/Dockerfile"):
        containerize(tmp_path, "x:1", dry_run=True, env={})


def test_no_backend_names_alternatives(bundle: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ContainerizeError, match="install docker, podman or buildah, or pass --backend"):
        containerize(bundle, "x:1", env={"PATH": str(empty)})
    with pytest.raises(ContainerizeError, match="podman not found on PATH.*--backend docker/buildah"):
        containerize(bundle, "x:1", backend="podman", env={"PATH": str(empty)})
    # a dry run still shows the usual command
    assert containerize(bundle, "x:1", dry_run=True, env={"PATH": str(empty)}).backend == "docker"


def test_docker_without_engine(bundle: Path, tmp_path: Path) -> None:
    env = fake_bin(tmp_path, docker=NO_ENGINE)
    with pytest.raises(ContainerizeError, match="engine is not reachable.*Cannot connect.*podman or buildah"):
        containerize(bundle, "x:1", env=env)
    with pytest.raises(ContainerizeError, match="Cannot connect.*--backend podman/buildah"):
        containerize(bundle, "x:1", backend="docker", env=env)
    # auto-detection moves on to a working backend
    env = fake_bin(tmp_path, podman="exit 0")
    assert detect_backend(env) == "podman"
    env = fake_bin(tmp_path, docker="exit 0")
    assert detect_backend(env) == "docker"


def test_build_runs_backend_and_streams_output(bundle: Path, tmp_path: Path) -> None:
    log = tmp_path / "args"
    env = fake_bin(tmp_path, buildah=f'printf "%s\\n" "$@" > {log}; echo "STEP 1/1: FROM python"')
    out = io.StringIO()
    result = containerize(bundle, "x:1", backend="buildah", env=env, stream=out)
    assert log.read_text().splitlines() == result.command[1:]
    assert out.getvalue() == "STEP 1/1: FROM python\n"


def test_build_failure_shows_output_tail(bundle: Path, tmp_path: Path) -> None:
    body = 'i=0; while [ $i -lt 100 ]; do echo "line $i"; i=$((i+1)); done; echo "pip: no such package" >&2; exit 3'
    env = fake_bin(tmp_path, podman=body)
    with pytest.raises(ContainerizeError) as info:
        containerize(bundle, "x:1", backend="podman", env=env)
    message = str(info.value)
    assert "exit code 3" in message and "pip: no such package" in message and "line 99" in message
    assert "line 10\n" not in message  # only the tail


def test_build_command_rejects_bad_build_arg(bundle: Path) -> None:
    with pytest.raises(ContainerizeError, match="build argument"):
        build_command("docker", bundle, "x:1", build_args={"A B": "1"})


# --- real images (buildah + podman) ----------------------------------------------------------

LIVEZ_APP = """\
import os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path == "/livez" else 404
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "3000"))), Handler).serve_forever()
"""


@pytest.mark.container
@pytest.mark.slow
@pytest.mark.timeout(900)  # the first session on a fresh machine installs tools and a base image
def test_fixture_builds_and_serves(container_env: ContainerEnv, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(LIVEZ_APP)
    (tmp_path / "Dockerfile").write_text(
        'FROM python:3.11-slim\nCOPY app.py /app/app.py\nUSER 1000\nCMD ["python3", "/app/app.py"]\n'
    )
    tag = container_env.build(tmp_path, tmp_path / "Dockerfile", container_env.unique_tag())
    assert container_env.image_size(tag) > 10_000_000
    port = free_port()
    cid = container_env.run_detached(tag, env={"PORT": str(port)})
    status, body = container_env.wait_http(f"http://127.0.0.1:{port}/livez", cid)
    assert (status, body) == (200, b"ok")
    container_env.stop(cid)
    assert cid not in container_env.containers


# A stand-in for `mlpack serve` installed by the bundle's install.sh: reports what it was given.
FAKE_SERVE = """\
#!/usr/bin/env python3
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
args = sys.argv[1:]
info = {"argv": args, "uid": os.getuid(), "cwd": os.getcwd(), "tricky": os.environ.get("TRICKY"),
        "setup": os.path.exists("/etc/mlpack-setup-ran")}
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(info).encode()
        self.send_response(200 if self.path == "/livez" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
host, port = args[args.index("--host") + 1], int(args[args.index("--port") + 1])
HTTPServer((host, port), Handler).serve_forever()
"""


@pytest.mark.container
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_rendered_dockerfile_builds_and_runs(container_env: ContainerEnv, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    for d in ("env/docker", "env/python/wheels", "src"):
        (bundle / d).mkdir(parents=True)
    options = DockerOptions(env={"TRICKY": 'a $HOME "b"'}, setup_script="src/setup.sh")
    (bundle / "env/docker/Dockerfile").write_text(render_dockerfile(options))
    (bundle / "env/docker/entrypoint.sh").write_text(render_entrypoint())
    (bundle / "env/python/fake_serve.py").write_text(FAKE_SERVE)
    (bundle / "env/python/install.sh").write_text(textwrap.dedent("""\
        set -eu
        cd "$(dirname "$0")"
        # into the Python first on PATH: the image's virtual environment
        install -m 0755 fake_serve.py "$(dirname "$(command -v python)")/mlpack"
    """))
    (bundle / "src/setup.sh").write_text("#!/bin/sh\ntouch /etc/mlpack-setup-ran\n")
    # a file only its owner may read (e.g. written with mkstemp) must still be readable
    (bundle / "src/private.txt").write_text("x")
    os.chmod(bundle / "src/private.txt", 0o600)

    tag = container_env.unique_tag("mlpack-bundle-test")
    env = container_env.containerize_env
    out = io.StringIO()
    result = containerize(bundle, tag, env=env, stream=out)
    assert result.backend == "buildah", out.getvalue()
    assert container_env.inspect_image(tag, "{{.Config.User}}") == "1034:1034"
    assert "3000/tcp" in container_env.inspect_image(tag, "{{json .Config.ExposedPorts}}")
    assert "/livez" in container_env.inspect_image(tag, "{{json .Config.Healthcheck}}")

    port = free_port()
    cid = container_env.run_detached(tag, ["--workers=2"], env={"PORT": str(port), "MLPACK_HOST": "127.0.0.1"})
    status, body = container_env.wait_http(f"http://127.0.0.1:{port}/livez", cid)
    info = json.loads(body)
    assert status == 200
    assert info["argv"] == [
        "serve", "/home/mlpack/bundle", "--production", "--host", "127.0.0.1", "--port", str(port), "--workers=2",
    ]
    assert info["uid"] == 1034 and info["cwd"] == "/home/mlpack/bundle"
    assert info["tricky"] == 'a $HOME "b"' and info["setup"] is True
    health = container_env.cmd("podman", "healthcheck", "run", cid, check=False)
    assert health.returncode == 0, health.stdout + health.stderr
    container_env.stop(cid)

    # any other command runs as is, as the service user, and can read the whole bundle
    proc = container_env.run(tag, ["python3", "-c", "import os; print(os.getuid(), open('src/private.txt').read())"])
    assert (proc.returncode, proc.stdout.strip()) == (0, "1034 x"), proc.stderr
