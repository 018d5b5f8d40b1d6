"""Push and pull through a real hub subprocess between two stores (two MLPACK_HOMEs)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.hub_fixtures import answering_server, hub_token, running_hub
from tests.server import ROOT, free_port, running_server

SERVICE = textwrap.dedent(
    """
    import numpy as np
    import mlpack
    from mlpack.io import NumpyNdarray

    runner = mlpack.sklearn.get("iris_clf:latest").to_runner()
    svc = mlpack.Service("iris_classifier", runners=[runner])

    @svc.api(input=NumpyNdarray(), output=NumpyNdarray())
    async def predict(arr: np.ndarray) -> np.ndarray:
        return await runner.predict.async_run(arr)
    """
)


@dataclass
class HubProc:
    url: str
    data: Path

    def token(self, name: str, *read_only: str) -> str:
        return hub_token(self.data, name, read_only=bool(read_only), env=_env(self.data.parent / "hub-home"))

    def blob_files(self) -> set[str]:
        root = self.data / "blobs"
        return {p.name for p in root.glob("??/*") if p.is_file()}

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPACK_")}
    return {**env, "MLPACK_HOME": str(home), "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **extra}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProc]:
    data = tmp_path / "hub-data"
    with running_hub(data, "--no-access-log", env=_env(tmp_path / "hub-home")) as server:
        yield HubProc(server.url, data)


class Store:
    """One user's MLPACK_HOME and the CLI run against it."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def __call__(self, *args: str, cwd: Path | None = None, check: bool = False, **env: str) -> subprocess.CompletedProcess:
        res = subprocess.run([sys.executable, "-m", "mlpack", *args], capture_output=True, text=True,
                             cwd=cwd or ROOT, env=_env(self.home, **env), timeout=300)
        if check:
            assert res.returncode == 0, res.stderr
        return res

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "mlpack", *args], env=_env(self.home), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def py(self, code: str) -> str:
        res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                             env=_env(self.home), cwd=ROOT, timeout=300)
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    def entries(self, kind: str) -> list[str]:
        return [e["tag"] for e in json.loads(self(kind, "list", "-o", "json", check=True).stdout)]

    def visible_dirs(self, kind: str) -> list[Path]:
        return [p for p in (self.home / kind).glob("*/*") if p.is_dir()]


def save_iris(store: Store, **labels: str) -> str:
    return store.py(f"""
        import mlpack
        from sklearn import datasets, svm
        X, y = datasets.load_iris(return_X_y=True)
        print(mlpack.sklearn.save_model("iris_clf", svm.SVC(gamma="scale").fit(X, y), labels={labels!r},
                                        signatures={{"predict": {{"batchable": True}}}}).tag)
    """)


def save_big(store: Store, megabytes: int) -> str:
    return store.py(f"""
        import numpy as np, mlpack
        from sklearn.dummy import DummyClassifier
        blob = np.random.default_rng(0).integers(0, 255, {megabytes} << 20, dtype=np.uint8)
        clf = DummyClassifier().fit([[0], [1]], [0, 1])
        print(mlpack.sklearn.save_model("big", clf, custom_objects={{"blob": blob}}).tag)
    """)


@pytest.fixture
def stores(tmp_path: Path, hub: HubProc) -> tuple[Store, Store, str]:
    token = hub.token("alice")
    a, b = Store(tmp_path / "alice"), Store(tmp_path / "bob")
    a("hub", "login", hub.url, "--token", token, check=True)
    b("hub", "login", hub.url, "--token", token, "--trust", check=True)
    return a, b, token


@pytest.mark.slow
def test_push_pull_then_serve_the_pulled_bundle(tmp_path: Path, hub: HubProc, stores) -> None:
    a, b, token = stores
    model_tag = save_iris(a, team="ds")
    proj = tmp_path / "project"
    proj.mkdir()
    (proj / "service.py").write_text(SERVICE)
    (proj / "mlpackfile.yaml").write_text(yaml.safe_dump({"service": "service.py:svc", "labels": {"owner": "ds"}}))
    tag = a("build", str(proj), "-o", "tag", check=True).stdout.strip()

    pushed = a("push", tag)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.strip() == tag
    assert f"pushed model {model_tag}" in pushed.stderr and f"pushed bundle {tag}" in pushed.stderr
    again = a("bundles", "push", tag)
    assert again.returncode == 0 and "already on the hub (identical)" in again.stderr

    listed = json.loads(b("hub", "list", "bundles", "-o", "json", check=True).stdout)
    assert [i["tag"] for i in listed["items"]] == [tag] and listed["items"][0]["pushed_by"] == "alice"
    assert model_tag in b("hub", "list", "models", "-q", "iris", check=True).stdout  # a table
    found = json.loads(b("hub", "list", "models", "-q", "iris", "--label", "team=ds", "-o", "json", check=True).stdout)
    assert [i["tag"] for i in found["items"]] == [model_tag]
    assert b("hub", "list", "models", "--label", "team=other", "-o", "json", check=True).stdout.count('"tag"') == 0

    pulled = b("pull", tag)
    assert pulled.returncode == 0, pulled.stderr
    assert b.entries("bundles") == [tag] and b.entries("models") == [model_tag]  # the bundle brought its model
    for kind, t in (("bundles", tag), ("models", model_tag)):
        name, version = t.split(":")
        src, dst = a.home / kind / name / version, b.home / kind / name / version
        assert sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file()) == sorted(
            {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()} | {"provenance.yaml"})
        manifest = "bundle.yaml" if kind == "bundles" else "model.yaml"
        assert (dst / manifest).read_bytes() == (src / manifest).read_bytes()
        prov = yaml.safe_load((dst / "provenance.yaml").read_text())
        assert prov["kind"] == "pulled" and prov["trusted"] is True and prov["source"] == hub.url
    assert "nothing pulled" in b("pull", tag, check=True).stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with running_server(tag, home=b.home, cwd=elsewhere) as srv:
        answer = httpx.post(srv.url + "/predict", json=[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], timeout=30)
        assert answer.status_code == 200 and answer.json() == [0, 2]

    # bob's login did not say --trust for this other URL: entries from it are not trusted
    c = Store(tmp_path / "carol")
    assert c("models", "pull", model_tag, "--hub", hub.url, "--token", token).returncode == 0
    name, version = model_tag.split(":")
    assert yaml.safe_load((c.home / "models" / name / version / "provenance.yaml").read_text())["trusted"] is False


@pytest.mark.slow
def test_second_version_sharing_files_sends_no_blob(hub: HubProc, stores) -> None:
    a, _, token = stores
    first = save_iris(a)
    assert a("models", "push", first).returncode == 0
    before = hub.blob_files()
    second = save_iris(a, stage="prod")  # same estimator bytes, new manifest
    name, version = second.split(":")
    entry = a.home / "models" / name / version
    files = yaml.safe_load((entry / "model.yaml").read_text())["files"]
    manifest_sha = hashlib.sha256((entry / "model.yaml").read_bytes()).hexdigest()
    with hub.api(token) as api:
        missing = api.post("/blobs/missing", json={"sha256": [*files.values(), manifest_sha]}).json()["missing"]
    assert missing == [manifest_sha]  # only the manifest is new
    res = a("models", "push", second)
    assert res.returncode == 0 and "1 blob(s) transferred" in res.stderr
    assert hub.blob_files() - before == {manifest_sha}


@pytest.mark.slow
def test_tampered_blob_is_refused_and_nothing_is_visible(hub: HubProc, stores) -> None:
    a, b, _ = stores
    tag = save_iris(a)
    a("models", "push", tag, check=True)
    name, version = tag.split(":")
    digest = yaml.safe_load((a.home / "models" / name / version / "model.yaml").read_text())["files"]["saved_model.joblib"]
    stored = hub.data / "blobs" / digest[:2] / digest
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    stored.write_bytes(bytes(data))
    res = b("models", "pull", tag)
    assert res.returncode != 0 and "does not match its sha256" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert b.entries("models") == [] and b.visible_dirs("models") == []
    assert not any((b.home / ".tmp").iterdir())


@pytest.mark.slow
def test_killed_push_and_pull_leave_nothing_visible(hub: HubProc, stores) -> None:
    a, b, token = stores
    tag = save_big(a, 192)

    def kill_when(proc: subprocess.Popen, started) -> None:  # noqa: ANN001
        deadline = time.monotonic() + 120
        while not started():
            assert proc.poll() is None, f"transfer ended before it could be killed: {proc.communicate()}"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def partial_upload() -> bool:
        return any(p.stat().st_size > 0 for p in (hub.data / "blobs" / ".tmp").glob("*"))

    kill_when(a.popen("models", "push", tag), partial_upload)
    with hub.api(token) as api:
        assert api.get("/models").json()["total"] == 0
        assert api.get(f"/models/{tag.replace(':', '/')}").status_code == 404
    a("models", "push", tag, check=True)  # a later push goes through

    def partial_download() -> bool:
        return any(p.is_file() and p.stat().st_size > 0 for p in (b.home / ".tmp").rglob("*"))

    kill_when(b.popen("models", "pull", tag), partial_download)
    assert b.entries("models") == [] and b.visible_dirs("models") == []
    b("models", "pull", tag, check=True)  # the leftover staging dir does not get in the way
    assert b.entries("models") == [tag]
    b.py(f"import mlpack; mlpack.models.get({tag!r}).verify()")


@pytest.mark.slow
def test_concurrent_pushes_of_one_tag(tmp_path: Path, hub: HubProc, stores) -> None:
    a, _, token = stores
    tag = save_iris(a)
    name, version = tag.split(":")
    # a second store holding a different entry under the same tag (a label changed in its manifest)
    other = Store(tmp_path / "other")
    other("hub", "login", hub.url, "--token", token, check=True)
    (other.home / "models" / name).mkdir(parents=True)
    src, dst = a.home / "models" / name / version, other.home / "models" / name / version
    dst.mkdir()
    for p in src.iterdir():
        if p.name != "provenance.yaml":
            (dst / p.name).write_bytes(p.read_bytes())
    text = (dst / "model.yaml").read_text()
    (dst / "model.yaml").write_text(text.replace("labels: {}", "labels:\n  copy: other"))
    assert (dst / "model.yaml").read_text() != text

    procs = [s.popen("models", "push", tag) for s in (a, other, a, other)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    ok = [i for i, (rc, _, _) in enumerate(results) if rc == 0]
    failed = [i for i, (rc, _, _) in enumerate(results) if rc != 0]
    assert len(ok) == 2 and len(failed) == 2, results
    winner = (a if ok[0] % 2 == 0 else other)
    assert {i % 2 for i in ok} == {ok[0] % 2}  # the two pushers of the winning content both succeed
    for i in failed:
        assert "already on the hub" in results[i][2] and "different content" in results[i][2]
    winner_sha = hashlib.sha256((winner.home / "models" / name / version / "model.yaml").read_bytes()).hexdigest()
    with hub.api(token) as api:
        assert api.get(f"/models/{name}/{version}").json()["manifest_sha256"] == winner_sha
        assert api.get("/models").json()["total"] == 1


@pytest.mark.slow
def test_errors_are_one_clear_line(tmp_path: Path, hub: HubProc, stores) -> None:
    a, _, token = stores
    tag = save_iris(a)

    def one_line(res: subprocess.CompletedProcess, *words: str) -> None:
        assert res.returncode != 0, res
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in res.stderr, res.stderr
        for w in words:
            assert w in lines[0], lines[0]

    dead = f"http://127.0.0.1:{free_port()}"
    one_line(a("models", "push", tag, "--hub", dead), "cannot reach hub", dead)
    one_line(a("models", "push", tag, "--token", "mlph_wrong"), "refused the token", "mlpack hub login")
    assert "mlph_wrong" not in a("models", "push", tag, "--token", "mlph_wrong").stderr
    reader = hub.token("reader", "--read-only")
    one_line(a("models", "push", tag, "--token", reader), "read-only")
    one_line(a("models", "pull", "nothing:here"), "not on the hub")
    one_line(a("models", "pull", "iris_clf"), "not on the hub")
    one_line(a("models", "push", "nothing"), "no model named")
    fresh = Store(tmp_path / "fresh")
    one_line(fresh("hub", "list"), "no hub configured", "mlpack hub login")
    one_line(fresh("hub", "login", hub.url, "--token", "mlph_wrong"), "refused the token")
    assert not (fresh.home / "hub.yaml").exists()
    one_line(fresh("hub", "login", "ftp://example", "--token", "x"), "not an http(s) URL")
    # a read-only token may list and pull
    a("models", "push", tag, check=True)
    assert tag in a("hub", "list", "--token", reader, check=True).stdout


@pytest.mark.slow
def test_login_file_is_private_and_env_overrides_it(tmp_path: Path, hub: HubProc, stores) -> None:
    a, _, token = stores
    path = a.home / "hub.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = yaml.safe_load(path.read_text())
    assert saved == {"url": hub.url, "token": token, "trust": False}
    dead = f"http://127.0.0.1:{free_port()}"
    res = a("hub", "list", MLPACK_HUB_URL=dead)
    assert res.returncode != 0 and dead in res.stderr  # env beats the file
    res = a("hub", "list", MLPACK_HUB_TOKEN="mlph_nope")
    assert res.returncode != 0 and "refused the token" in res.stderr
    res = a("hub", "list", "--hub", hub.url, MLPACK_HUB_URL=dead)
    assert res.returncode == 0, res.stderr  # the flag beats env
    assert a("hub", "logout", check=True) and not path.exists()
    assert "not logged in" in a("hub", "logout", check=True).stderr
    assert a("hub", "list", MLPACK_HUB_URL=hub.url, MLPACK_HUB_TOKEN=token).returncode == 0


def test_trust_applies_only_to_the_url_it_was_given_for(tmp_path: Path) -> None:
    from mlpack.hub.client_config import HubSettings, save_login

    save_login(tmp_path, "http://127.0.0.1:3100/", "tok", trust=True)
    same = HubSettings.resolve(home=tmp_path, env={})
    assert same == HubSettings(url="http://127.0.0.1:3100", token="tok", trusted=True)
    moved = HubSettings.resolve(home=tmp_path, env={"MLPACK_HUB_URL": "http://127.0.0.1:9999"})
    assert moved.trusted is False and moved.token == "tok"
    assert HubSettings.resolve("http://h:1", "t2", home=tmp_path, env={"MLPACK_HUB_TOKEN": "t3"}).token == "t2"


def test_pull_refuses_a_hub_answer_that_leaves_the_entry(tmp_path: Path) -> None:
    """A hostile hub naming ``../`` paths or files the manifest does not record gets nothing written."""
    from mlpack.exceptions import IntegrityError
    from mlpack.hub.client import HubClient
    from mlpack.hub.client_config import HubSettings
    from mlpack.hub.transfer import pull
    from mlpack.settings import Settings

    manifest = yaml.safe_dump({"name": "m", "version": "v1", "module": "mlpack.sklearn",
                               "creation_time": "2024-01-01T00:00:00Z", "files": {"../evil": "a" * 64}})
    record = {"name": "m", "version": "v1", "manifest_sha256": hashlib.sha256(manifest.encode()).hexdigest(),
              "files": {"../evil": {"sha256": "a" * 64, "size": 3}}}

    def answer(_method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.endswith("/models/m/v1") or path.endswith("/models/m/latest"):
            return 200, {"Content-Type": "application/json"}, json.dumps(record).encode()
        if path.endswith("/blobs/" + record["manifest_sha256"]):
            return 200, {}, manifest.encode()
        return 200, {}, b"bad"

    settings = Settings(home=tmp_path / "home")
    with answering_server(answer) as (url, seen), HubClient(HubSettings(url, "t")) as client:
        with pytest.raises(IntegrityError, match="would leave the entry"):
            pull(client, "models", "m:v1", settings=settings)
    assert seen and not any("/blobs/" + "a" * 64 in s for s in seen)  # the hostile file was never fetched
    assert not (tmp_path / "evil").exists() and not (tmp_path / "home" / "models").exists()


@pytest.mark.slow
def test_a_damaged_local_file_is_refused_by_the_hub_and_named(hub: HubProc, stores) -> None:
    a, _, token = stores
    tag = save_iris(a)
    name, version = tag.split(":")
    stored = a.home / "models" / name / version / "saved_model.joblib"
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF
    stored.write_bytes(bytes(data))
    res = a("models", "push", tag)
    assert res.returncode != 0 and "local entry is damaged" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    with hub.api(token) as api:
        assert api.get("/models").json()["total"] == 0
