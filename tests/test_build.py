"""`mlpack build`, bundles, serving a bundle, and the real container image."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import yaml

import mlpack
from tests.containers import ContainerEnv, container_env, free_port  # noqa: F401 - fixture
from tests.server import running_server

SERVICE = textwrap.dedent(
    """
    import numpy as np
    import mlpack
    from mlpack.io import NumpyNdarray
    from helpers.post import to_list

    runner = mlpack.sklearn.get("iris_clf:latest").to_runner()
    svc = mlpack.Service("iris_classifier", runners=[runner])

    @svc.api(input=NumpyNdarray(), output=NumpyNdarray())
    async def predict(arr: np.ndarray) -> np.ndarray:
        return await runner.predict.async_run(arr)

    @svc.api(input=NumpyNdarray(), output=NumpyNdarray())
    def names(arr):
        return np.array(to_list(arr))
    """
)


@pytest.fixture
def project(tmp_path: Path, home: Path, iris_svc) -> Path:
    mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True}})
    proj = tmp_path / "project"
    (proj / "helpers").mkdir(parents=True)
    (proj / "service.py").write_text(SERVICE)
    (proj / "helpers" / "__init__.py").write_text("")
    (proj / "helpers" / "post.py").write_text("def to_list(a):\n    return [float(x) for x in a.ravel()]\n")
    (proj / "data").mkdir()
    (proj / "data" / "big.csv").write_text("1,2,3\n")
    (proj / "notes.md").write_text("notes\n")
    (proj / "secret.env").write_text("TOKEN=x\n")
    (proj / ".git").mkdir()
    (proj / ".git" / "config").write_text("[core]\n")
    (proj / "__pycache__").mkdir()
    (proj / "__pycache__" / "service.cpython-311.pyc").write_bytes(b"\0")
    (proj / ".mlpackignore").write_text("*.env\n")
    (proj / "requirements.txt").write_text("# comment\npandas\n")
    (proj / "mlpackfile.yaml").write_text(
        yaml.safe_dump(
            {
                "service": "service.py:svc",
                "description": "Iris species from flower measurements",
                "labels": {"owner": "ds-team"},
                "include": ["*.py", "*.md", "*.env", "data/"],
                "exclude": ["data/"],
                "python": {"packages": ["sklearn", "numpy>=1.20"], "requirements_txt": "requirements.txt"},
                "docker": {"env": {"MODE": "prod"}},
            }
        )
    )
    return proj


def _build(cli, project: Path, *args: str) -> str:
    res = cli("build", str(project), "-o", "tag", *args)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_bundle_layout_and_manifest(cli, project: Path, home: Path) -> None:
    from importlib.metadata import version

    tag = _build(cli, project, "--label", "stage=dev")
    path = Path(cli("bundles", "get", tag, "-o", "path").stdout.strip())
    assert path.parent.parent == home / "bundles"
    files = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    assert {"README.md", "bundle.yaml", "apis/openapi.yaml", "env/docker/Dockerfile", "env/docker/entrypoint.sh",
            "env/python/requirements.txt", "env/python/install.sh", "env/python/version.txt",
            "src/service.py", "src/helpers/post.py", "src/notes.md"} <= files  # fmt: skip
    assert not any(f.startswith(("src/data/", "src/.git/", "src/__pycache__")) or f.endswith(".env") for f in files)
    model_version = mlpack.models.get("iris_clf").tag.version
    assert f"models/iris_clf/{model_version}/saved_model.joblib" in files
    assert (path / "models" / "iris_clf" / "latest").read_text().strip() == model_version
    info = yaml.safe_load((path / "bundle.yaml").read_text())
    assert info["service"] == "service.py:svc" and info["name"] == "iris_classifier"
    assert f"{info['name']}:{info['version']}" == tag
    assert info["labels"] == {"owner": "ds-team", "stage": "dev"}
    assert info["mlpack_version"] == mlpack.__version__ and info["creation_time"].endswith("Z")
    assert info["models"][0]["tag"] == f"iris_clf:{model_version}"
    assert [a["name"] for a in info["apis"]] == ["predict", "names"]
    assert info["apis"][0]["input"]["type"] == "NumpyNdarray"
    assert info["python"]["version"].startswith("3.") and info["docker"]["env"] == {"MODE": "prod"}
    assert set(info["files"]) == files - {"bundle.yaml", "provenance.yaml"}  # provenance is store metadata
    assert yaml.safe_load((path / "provenance.yaml").read_text())["kind"] == "built"
    reqs = (path / "env" / "python" / "requirements.txt").read_text().split()
    assert f"scikit-learn=={version('scikit-learn')}" in reqs and "sklearn" not in " ".join(reqs).replace("scikit-learn", "")
    assert "numpy>=1.20" in reqs or f"numpy=={version('numpy')}" in reqs
    assert f"pandas=={version('pandas')}" in reqs
    assert f"mlpack=={mlpack.__version__}" in reqs
    wheels = list((path / "env" / "python" / "wheels").glob("mlpack-*.whl"))
    assert len(wheels) == 1  # mlpack runs from a source checkout here: its wheel travels with the bundle
    assert "ENTRYPOINT" in (path / "env" / "docker" / "Dockerfile").read_text()
    listed = json.loads(cli("bundles", "list", "-o", "json").stdout)
    assert [b["tag"] for b in listed] == [tag]


def test_explicit_version_and_duplicate(cli, project: Path) -> None:
    assert _build(cli, project, "--version", "v1") == "iris_classifier:v1"
    again = cli("build", str(project), "--version", "v1")
    assert again.returncode != 0 and "already exists" in again.stderr


def test_build_errors_are_one_line(cli, project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cli("build", str(empty))
    assert res.returncode != 0 and "no mlpackfile.yaml" in res.stderr and "Traceback" not in res.stderr
    (project / "mlpackfile.yaml").write_text("service: service.py:svc\npython: {packges: [x]}\n")
    res = cli("build", str(project))
    assert res.returncode != 0 and "packges" in res.stderr


def test_serve_bundle_after_source_and_model_are_gone(cli, project: Path, tmp_path: Path, home: Path) -> None:
    tag = _build(cli, project)
    shutil.rmtree(project)
    refused = cli("models", "delete", "iris_clf", "-y")
    assert refused.returncode != 0 and tag in refused.stderr
    assert cli("models", "delete", "iris_clf", "-y", "--force").returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with running_server(tag, home=home, cwd=elsewhere) as srv:
        with srv.client() as c:
            assert c.post("/predict", json=[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]).json() == [0, 2]
            assert c.post("/names", json=[[1, 2]]).json() == [1.0, 2.0]
            served = c.get("/docs.json").json()
    bundle_path = Path(cli("bundles", "get", tag, "-o", "path").stdout.strip())
    assert yaml.safe_load((bundle_path / "apis" / "openapi.yaml").read_text()) == served
    with running_server(str(bundle_path), home=home, cwd=elsewhere) as srv:  # by path too
        assert httpx.post(srv.url + "/predict", json=[[6.7, 3.0, 5.2, 2.3]]).json() == [2]


def test_export_delete_import_serve(cli, project: Path, tmp_path: Path, home: Path) -> None:
    tag = _build(cli, project)
    archive = Path(cli("bundles", "export", tag, str(tmp_path)).stdout.strip())
    assert archive.suffix == ".mlbundle"
    assert cli("bundles", "delete", tag, "-y").returncode == 0
    assert json.loads(cli("bundles", "list", "-o", "json").stdout) == []
    imported = cli("bundles", "import", str(archive))
    assert imported.returncode == 0 and imported.stdout.strip() == tag
    refused = cli("serve", tag, "--port", str(free_port()), cwd=tmp_path)  # imported: its code does not run untrusted
    assert refused.returncode == 4 and f"mlpack bundles trust {tag}" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert cli("bundles", "trust", tag).returncode == 0
    with running_server(tag, home=home, cwd=tmp_path) as srv:
        assert httpx.post(srv.url + "/predict", json=[[5.1, 3.5, 1.4, 0.2]]).json() == [0]


def test_containerize_dry_run(cli, project: Path) -> None:
    tag = _build(cli, project)
    res = cli("containerize", tag, "-t", "iris:1", "--backend", "podman", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("podman build") and "-t iris:1" in res.stdout and "env/docker/Dockerfile" in res.stdout
    missing = cli("containerize", tag, "--backend", "docker", env={"PATH": "/nonexistent"})
    assert missing.returncode != 0 and "podman" in missing.stderr and "buildah" in missing.stderr


@pytest.mark.slow
def test_fresh_venv_with_only_the_bundle_requirements_serves_it(cli, project: Path, tmp_path: Path, home: Path) -> None:
    tag = _build(cli, project)
    bundle = Path(cli("bundles", "get", tag, "-o", "path").stdout.strip())
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    res = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--find-links", str(bundle / "env/python/wheels"),
         "-r", str(bundle / "env/python/requirements.txt")],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    port = free_port()
    proc = subprocess.Popen(
        [str(venv / "bin" / "mlpack"), "serve", str(bundle), "--port", str(port)],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MLPACK_HOME": str(tmp_path / "empty-home")},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read()
            import time

            time.sleep(0.1)
        assert httpx.post(f"http://127.0.0.1:{port}/predict", json=[[6.7, 3.0, 5.2, 2.3]]).json() == [2]
    finally:
        proc.terminate()
        proc.wait(20)


def _readyz(container_env: ContainerEnv, port: int, cid: str) -> int:
    """``/readyz``'s status once the container's server answers 200 (models loaded), or after ~20 s."""
    import time

    status, _ = container_env.wait_http(f"http://127.0.0.1:{port}/readyz", cid, timeout=120)
    for _ in range(100):
        if status == 200:
            break
        time.sleep(0.2)
        status, _ = container_env.wait_http(f"http://127.0.0.1:{port}/readyz", cid)
    return status


@pytest.mark.slow
@pytest.mark.container
@pytest.mark.timeout(1800)
def test_container_image_serves_predictions(cli, project: Path, tmp_path: Path, container_env: ContainerEnv) -> None:
    """As a user would: `mlpack build`, then `mlpack containerize`; no index is reachable from the build."""
    import time

    tag = _build(cli, project)
    bundle = Path(cli("bundles", "get", tag, "-o", "path").stdout.strip())
    before = sorted(p.name for p in (bundle / "env/python/wheels").iterdir())
    image = container_env.unique_tag("iris-classifier")
    started = time.monotonic()
    # no network inside the build (chroot isolation cannot cut it off; runc can)
    env = {**container_env.containerize_env, "MLPACK_CONTAINERIZE_OPTS": "--pull=never --isolation oci --network none"}
    res = cli("containerize", tag, "-t", image, env=env, timeout=1700)
    build_seconds = time.monotonic() - started
    assert res.returncode == 0, res.stderr[-4000:]
    assert res.stdout.strip() == image and "vendored" in res.stderr
    # the stored bundle is left as it was; the wheels went into a temporary build context
    assert sorted(p.name for p in (bundle / "env/python/wheels").iterdir()) == before
    size_mb = container_env.image_size(image) / 1e6
    print(f"\ncontainer image {image}: {size_mb:.0f} MB, built in {build_seconds:.0f} s")
    assert size_mb < 450  # 665 MB before the two-stage image; 399 MB measured (target 400)
    assert container_env.inspect_image(image, "{{.Config.User}}") not in ("", "root", "0")
    # lean: no wheels, bytecode, test suites or pip in the image
    script = (
        "ls env/python/wheels | wc -l; find /opt/mlpack -name __pycache__ | wc -l; "
        "find /opt/mlpack -path '*/site-packages/*/tests' | wc -l; "
        "python -c 'import importlib.util as u; print(u.find_spec(\"pip\"))'"
    )
    listing = container_env.run(image, ["sh", "-c", script])
    assert listing.returncode == 0 and listing.stdout.split() == ["0", "0", "0", "None"], listing.stdout + listing.stderr
    port = free_port()
    cid = container_env.run_detached(image, ["--workers=1"], env={"PORT": str(port), "MLPACK_HOST": "127.0.0.1"})
    try:
        status = _readyz(container_env, port, cid)
        res = httpx.post(f"http://127.0.0.1:{port}/predict", json=[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
        assert res.status_code == 200 and res.json() == [0, 2]
    finally:
        container_env.stop(cid)

    # bearer tokens in the image, as the README's "Bearer tokens" section runs it: a mounted file
    # named by MLPACK_AUTH_TOKEN_FILE, readable by the image's service user (not root)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("# team tokens\ns3cret-one\n")
    tokens.chmod(0o644)
    port = free_port()
    cid = container_env.run_detached(
        image, ["--workers=1"], volumes=[f"{tokens}:/run/secrets/mlpack-tokens:ro"],
        env={"PORT": str(port), "MLPACK_HOST": "127.0.0.1", "MLPACK_AUTH_TOKEN_FILE": "/run/secrets/mlpack-tokens"},
    )
    try:
        status = _readyz(container_env, port, cid)
        assert status == 200  # probes stay open without a token
        row = [[6.7, 3.0, 5.2, 2.3]]
        refused = httpx.post(f"http://127.0.0.1:{port}/predict", json=row)
        assert refused.status_code == 401 and "error" in refused.json(), refused.text
        wrong = httpx.post(f"http://127.0.0.1:{port}/predict", json=row, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = httpx.post(f"http://127.0.0.1:{port}/predict", json=row, headers={"Authorization": "Bearer s3cret-one"})
        assert ok.status_code == 200 and ok.json() == [2], ok.text
    finally:
        container_env.stop(cid)


def test_bentofile_yaml_is_read_too(cli, project: Path) -> None:
    (project / "mlpackfile.yaml").rename(project / "bentofile.yaml")
    tag = _build(cli, project)
    assert tag.startswith("iris_classifier:")


def _small_project(root: Path, home: Path, iris_svc) -> Path:
    mlpack.sklearn.save_model("iris_clf", iris_svc)
    proj = root / "proj"
    (proj / "helpers").mkdir(parents=True)
    (proj / "helpers" / "__init__.py").write_text("")
    (proj / "helpers" / "post.py").write_text("def to_list(a):\n    return [float(x) for x in a.ravel()]\n")
    (proj / "service.py").write_text(SERVICE)
    (proj / "mlpackfile.yaml").write_text("service: service.py:svc\npython:\n  lock_packages: false\n")
    return proj


def test_build_refuses_links_out_of_the_project(cli, tmp_path: Path, home: Path, iris_svc) -> None:
    from mlpack.build import build_bundle
    from mlpack.exceptions import BuildError

    proj = _small_project(tmp_path, home, iris_svc)
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "secret.txt").write_text("TOKEN=hunter2\n")
    (outside / "deep" / "key.pem").write_text("PRIVATE\n")
    (proj / "passwd_link").symlink_to("/etc/passwd")
    res = cli("build", str(proj))
    assert res.returncode != 0 and res.stderr.count("\n") == 1, res.stderr
    assert "passwd_link" in res.stderr and "/etc/passwd" in res.stderr and "exclude" in res.stderr
    (proj / "passwd_link").unlink()

    (proj / "secret.env").symlink_to("../outside/secret.txt")
    with pytest.raises(BuildError, match=r"secret.env is a link to .*outside/secret.txt.*exclude"):
        build_bundle(proj)
    (proj / "secret.env").unlink()
    (proj / "shared").symlink_to(outside, target_is_directory=True)
    with pytest.raises(BuildError, match=r"shared/ is a link to .*outside"):
        build_bundle(proj)

    # excluded, the links are fine; a link that stays inside is followed
    (proj / "mlpackfile.yaml").write_text("service: service.py:svc\nexclude: [shared/]\npython:\n  lock_packages: false\n")
    (proj / "helpers_alias").symlink_to("helpers", target_is_directory=True)
    (proj / "loop").symlink_to(".", target_is_directory=True)
    bundle = build_bundle(proj)
    files = set(bundle.info.files)
    assert "src/helpers_alias/post.py" in files and "src/service.py" in files
    assert not any("secret" in f or "key.pem" in f or "passwd" in f for f in files)
    assert not any("hunter2" in p.read_text(errors="ignore") for p in bundle.path.rglob("*") if p.is_file())  # the secret


def test_build_without_the_service_module_fails(cli, tmp_path: Path, home: Path, iris_svc) -> None:
    proj = _small_project(tmp_path, home, iris_svc)
    (proj / "mlpackfile.yaml").write_text("service: service.py:svc\ninclude: ['helpers/']\n")
    res = cli("build", str(proj))
    assert res.returncode != 0 and res.stderr.count("\n") == 1, res.stderr
    assert "would not contain the service module service.py" in res.stderr
    assert json.loads(cli("bundles", "list", "-o", "json").stdout) == []
