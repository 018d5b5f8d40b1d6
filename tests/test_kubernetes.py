"""`mlpack deploy kubernetes`: manifests that validate strictly against the Kubernetes schemas."""

from __future__ import annotations

import textwrap
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

import mlpack

K8S_VERSION = "1.30"  # a release current clusters run; the schemas ship with kubernetes-validate

SERVICE = textwrap.dedent(
    """
    import mlpack
    from mlpack.io import NumpyNdarray

    runner = mlpack.sklearn.get("iris_clf:latest").to_runner()
    svc = mlpack.Service("iris_classifier", runners=[runner])

    @svc.api(input=NumpyNdarray(), output=NumpyNdarray())
    async def predict(arr):
        return await runner.predict.async_run(arr)
    """
)


@pytest.fixture
def bundle_tag(cli, tmp_path: Path, home: Path, iris_svc) -> str:
    mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True}})
    project = tmp_path / "project"
    project.mkdir()
    (project / "service.py").write_text(SERVICE)
    (project / "mlpackfile.yaml").write_text('service: "service.py:svc"\n')
    res = cli("build", str(project), "-o", "tag")
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def _objects(text: str) -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs), "one object of each kind"
    return by_kind


def _validate(objects: dict[str, dict]) -> None:
    for obj in objects.values():
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_manifests_validate_and_carry_probes_resources_security(cli, bundle_tag: str) -> None:
    res = cli("deploy", "kubernetes", bundle_tag, "--image", "registry.example/iris:1", "--replicas", "2",
              "--max-replicas", "6", "--cpu", "2", "--memory", "2Gi", "--namespace", "ml")  # fmt: skip
    assert res.returncode == 0, res.stderr
    objects = _objects(res.stdout)
    assert set(objects) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    _validate(objects)
    assert {o["metadata"]["namespace"] for o in objects.values()} == {"ml"}
    name = bundle_tag.split(":")[0].replace("_", "-")
    version = bundle_tag.split(":")[1]

    deploy = objects["Deployment"]
    assert deploy["metadata"]["name"] == name and deploy["spec"]["replicas"] == 2
    assert deploy["metadata"]["labels"]["app.kubernetes.io/version"] == version
    pod = deploy["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "registry.example/iris:1"
    assert container["args"] == ["--workers=2"]  # follows the CPU limit
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    sec = container["securityContext"]
    assert sec["runAsNonRoot"] is True and sec["runAsUser"] == 1034
    assert sec["readOnlyRootFilesystem"] is True and sec["allowPrivilegeEscalation"] is False
    assert sec["capabilities"] == {"drop": ["ALL"]}
    # the server drains for 30 s after SIGTERM; the pod must be given longer than that
    assert pod["spec"]["terminationGracePeriodSeconds"] > 30 + 5
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["PORT"] == "3000" and env["MLPACK_HOST"] == "0.0.0.0"
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])  # writable despite the read-only root

    selector = deploy["spec"]["selector"]["matchLabels"]
    assert objects["Service"]["spec"]["selector"] == selector
    assert objects["Service"]["spec"]["ports"][0]["port"] == 3000
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    hpa = objects["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_config_becomes_a_configmap_and_output_is_deterministic(cli, bundle_tag: str, tmp_path: Path) -> None:
    config = tmp_path / "configuration.yaml"
    config.write_text("runners:\n  batching:\n    max_batch_size: 50\n")
    out = tmp_path / "k8s.yaml"
    args = ("deploy", "kubernetes", bundle_tag, "--image", "iris:1", "--config", str(config))
    res = cli(*args, "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and str(out) in res.stderr
    text = out.read_text()
    objects = _objects(text)
    _validate(objects)
    assert yaml.safe_load(objects["ConfigMap"]["data"]["config.yaml"]) == {"runners": {"batching": {"max_batch_size": 50}}}
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert env["MLPACK_CONFIG"] == mount["mountPath"] + "/config.yaml"
    assert {"name": "config", "configMap": {"name": objects["ConfigMap"]["metadata"]["name"]}} in pod["volumes"]
    assert cli(*args).stdout == text  # same bytes every time


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--cpu", "lots"], "--cpu"),
        (["--memory", "1 GB"], "--memory"),
        (["--replicas", "3", "--max-replicas", "2"], "--max-replicas"),
        (["--namespace", "Bad_NS"], "--namespace"),
        (["--port", "70000"], "--port"),
    ],
)
def test_bad_options_are_one_line_errors(cli, bundle_tag: str, flags: list[str], message: str) -> None:
    res = cli("deploy", "kubernetes", bundle_tag, "--image", "iris:1", *flags)
    assert res.returncode != 0 and res.stdout == ""
    assert message in res.stderr and "Traceback" not in res.stderr


def test_bad_config_and_unknown_bundle(cli, bundle_tag: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("api_server:\n  no_such_key: 1\n")
    res = cli("deploy", "kubernetes", bundle_tag, "--image", "iris:1", "--config", str(bad))
    assert res.returncode != 0 and "no_such_key" in res.stderr
    res = cli("deploy", "kubernetes", "nope:latest", "--image", "iris:1")
    assert res.returncode != 0 and "no bundle named" in res.stderr


def _readme_block(heading: str) -> list[str]:
    """The `mlpack ...` lines of the first sh block under ``heading`` in the README."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text.split(f"\n{heading}\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.startswith("mlpack ")]


def test_readme_kubernetes_commands_verbatim(cli, bundle_tag: str, tmp_path: Path) -> None:
    import shlex

    lines = _readme_block("### Kubernetes")
    assert len(lines) == 2
    work = tmp_path / "work"
    work.mkdir()
    (work / "configuration.yaml").write_text("runners:\n  batching:\n    max_batch_size: 64\n")
    for line in lines:
        res = cli(*shlex.split(line)[1:], cwd=work)
        assert res.returncode == 0, (line, res.stderr)
        objects = _objects((work / "k8s.yaml").read_text())
        _validate(objects)
        assert objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.com/iris:1"
    assert objects["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 8 and "ConfigMap" in objects


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_readme_build_with_wheels_vendors_every_wheel(cli, tmp_path: Path, home: Path, iris_svc) -> None:
    """`mlpack build --wheels`: the bundle alone installs with no index (for the image's platform)."""
    import shlex
    import subprocess
    import sys

    from mlpack.wheelhouse import Target

    mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True}})
    project = tmp_path / "project"
    project.mkdir()
    (project / "service.py").write_text(SERVICE)
    (project / "mlpackfile.yaml").write_text('service: "service.py:svc"\n')
    build_line = next(line for line in _readme_block("### Images that build with no network") if " build" in line)
    res = cli(*shlex.split(build_line)[1:], cwd=project, timeout=800)
    assert res.returncode == 0, res.stderr[-3000:]
    bundle = Path(cli("bundles", "get", "iris_classifier:latest", "-o", "path").stdout.strip())
    info = yaml.safe_load((bundle / "bundle.yaml").read_text())
    assert info["docker"]["wheels"] is True
    wheels = bundle / "env/python/wheels"
    names = [p.name for p in wheels.glob("*.whl")]
    assert any(n.startswith("scikit_learn-") and "manylinux" in n for n in names)
    assert all(f"env/python/wheels/{n}" in info["files"] for n in names)  # hashed like the rest of the bundle
    # every requirement resolves from the bundle's wheels alone, for the image's platform
    python_version = (bundle / "env/python/version.txt").read_text().strip()
    target = Target(".".join(python_version.split(".")[:2]))
    check = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-index", "--find-links", str(wheels), *target.pip_flags(),
         "-d", str(tmp_path / "scratch"), "-r", str(bundle / "env/python/requirements.txt")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr[-2000:]
