"""Trust gate, exact and bounded imports, alias-free manifests and bundle integrity, against crafted archives."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import textwrap
import time
from pathlib import Path

import pytest
import yaml

import mlpack
from mlpack import bundles, models
from mlpack.build import build_bundle
from mlpack.exceptions import ArchiveError, IntegrityError, Untrusted
from tests.server import free_port


class Marker:
    """Unpickling this creates a file: stands in for any code a pickle can run."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):  # noqa: ANN204
        return (open, (self.path, "w"))


# ------------------------------------------------------------------ helpers


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _write_archive(path: Path, files: dict[str, bytes], *, manifest: str = "model.yaml", rehash: bool = True) -> Path:
    """A tar.gz of ``files``; with ``rehash`` the manifest's sha256 are recomputed, as an attacker would."""
    files = dict(files)
    if rehash:
        info = yaml.safe_load(files[manifest])
        info["files"] = {k: hashlib.sha256(files[k]).hexdigest() for k in info["files"] if k in files}
        files[manifest] = yaml.safe_dump(info).encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


def _exported_model(tmp_path: Path, iris_svc, **kwargs) -> tuple[Path, dict[str, bytes]]:
    mlpack.sklearn.save_model("m", iris_svc, **kwargs)
    archive = models.export_model("m", tmp_path / "m.mlmodel")
    models.delete("m")
    return archive, _members(archive)


def _outside_store(tmp_path: Path, home: Path) -> list[Path]:
    return sorted(p for p in tmp_path.rglob("*") if p != home and home not in p.parents)


def _assert_nothing_kept(home: Path) -> None:
    assert models.list() == []
    assert not any((home / ".tmp").iterdir()) if (home / ".tmp").exists() else True


# ------------------------------------------------------------------ trust gate, Python API


def test_saved_models_are_trusted_and_get_shows_provenance(home: Path, iris_svc) -> None:
    model = mlpack.sklearn.save_model("m", iris_svc)
    assert model.provenance.kind == "saved" and model.trusted
    shown = models.get("m").to_dict()["provenance"]
    assert shown["kind"] == "saved" and shown["trusted"] is True


def test_malicious_pickle_with_recomputed_hashes_is_gated(home: Path, tmp_path: Path, iris_svc) -> None:
    import joblib

    archive, files = _exported_model(tmp_path, iris_svc)
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    joblib.dump(Marker(marker), buf)
    files["saved_model.joblib"] = buf.getvalue()
    evil = _write_archive(tmp_path / "evil.mlmodel", files)

    model = models.import_model(evil)  # every hash checks out: the archive is well-formed
    assert model.provenance.kind == "imported" and model.provenance.source == str(evil)
    assert not model.trusted
    with pytest.raises(Untrusted) as err:
        mlpack.sklearn.load_model(model.tag)
    assert f"mlpack models trust {model.tag}" in str(err.value) and str(evil) in str(err.value)
    with pytest.raises(Untrusted):
        model.load_model()
    assert not marker.exists()

    models.trust(model.tag)  # the user says so: now it loads (and runs the pickle)
    assert models.get(model.tag).trusted
    mlpack.sklearn.load_model(model.tag)
    assert marker.exists()


def test_xgboost_native_needs_no_trust_but_custom_objects_do(home: Path, tmp_path: Path) -> None:
    import numpy as np
    import xgboost as xgb

    X = np.random.default_rng(0).normal(size=(40, 3))
    booster = xgb.train({"objective": "reg:squarederror"}, xgb.DMatrix(X, label=X[:, 0]), num_boost_round=3)
    mlpack.xgboost.save_model("xg", booster, custom_objects={"scale": 2.0})
    archive = models.export_model("xg", tmp_path)
    models.delete("xg")
    imported = models.import_model(archive)
    assert not imported.trusted
    loaded = mlpack.xgboost.load_model(imported.tag)  # native .ubj: data, not code
    assert loaded.num_boosted_rounds() == 3
    with pytest.raises(Untrusted, match="custom_objects.pkl"):
        _ = models.get(imported.tag).custom_objects
    models.trust(imported.tag)
    assert models.get(imported.tag).custom_objects == {"scale": 2.0}


def test_import_with_trust(home: Path, tmp_path: Path, iris, iris_svc) -> None:
    archive, _ = _exported_model(tmp_path, iris_svc)
    model = models.import_model(archive, trust=True)
    assert model.trusted and model.provenance.kind == "imported"
    X, _ = iris
    assert (mlpack.sklearn.load_model(model.tag).predict(X[:3]) == iris_svc.predict(X[:3])).all()


def test_provenance_is_never_exported_nor_taken_from_an_archive(home: Path, tmp_path: Path, iris_svc) -> None:
    archive, files = _exported_model(tmp_path, iris_svc)
    assert "provenance.yaml" not in files and set(files) == {"model.yaml", "saved_model.joblib"}
    trusting = yaml.safe_dump({"kind": "saved", "trusted": True}).encode()
    carried = _write_archive(tmp_path / "carried.mlmodel", {**files, "provenance.yaml": trusting})
    with pytest.raises(ArchiveError, match="provenance.yaml"):
        models.import_model(carried)
    info = yaml.safe_load(files["model.yaml"])
    info["files"]["provenance.yaml"] = hashlib.sha256(trusting).hexdigest()
    recorded = _write_archive(
        tmp_path / "recorded.mlmodel",
        {**files, "model.yaml": yaml.safe_dump(info).encode(), "provenance.yaml": trusting},
        rehash=False,
    )
    with pytest.raises(ArchiveError, match="provenance.yaml"):
        models.import_model(recorded)
    _assert_nothing_kept(home)


# ------------------------------------------------------------------ exact, bounded imports


def _sparse_member(name: str, real_size: int) -> bytes:
    """A GNU sparse ('S') header declaring ``real_size`` bytes with one byte of data, plus that data."""
    info = tarfile.TarInfo(name)
    info.size = 1
    info.type = tarfile.GNUTYPE_SPARSE
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    header[386:398] = b"%011o\0" % (real_size - 1)  # sparse map: one chunk at the very end
    header[398:410] = b"%011o\0" % 1
    header[483:495] = b"%011o\0" % real_size  # realsize
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + b"x".ljust(512, b"\0")


def test_sparse_member_is_refused(home: Path, tmp_path: Path, iris_svc) -> None:
    _, files = _exported_model(tmp_path, iris_svc)
    info = yaml.safe_load(files["model.yaml"])
    info["files"]["hole.bin"] = "0" * 64
    manifest = yaml.safe_dump(info).encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        member = tarfile.TarInfo("model.yaml")
        member.size = len(manifest)
        tar.addfile(member, io.BytesIO(manifest))
        tar.fileobj.write(_sparse_member("hole.bin", 2 << 30))  # 2 GiB once unpacked
        tar.offset += 1024
    archive = tmp_path / "holes.mlmodel"
    archive.write_bytes(raw.getvalue())
    with tarfile.open(archive) as tar:  # the crafted header really is a 2 GiB sparse member
        hole = tar.getmember("hole.bin")
        assert hole.issparse() and hole.size == 2 << 30
    before = _outside_store(tmp_path, home)
    with pytest.raises(ArchiveError, match="is a sparse file"):
        models.import_model(archive)
    assert _outside_store(tmp_path, home) == before
    assert sum(p.stat().st_size for p in home.rglob("*") if p.is_file()) < 1 << 20
    _assert_nothing_kept(home)


def test_pax_sparse_member_is_refused(home: Path, tmp_path: Path, iris_svc) -> None:
    _, files = _exported_model(tmp_path, iris_svc)
    archive = tmp_path / "pax.mlmodel"
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            if name == "saved_model.joblib":
                member.pax_headers = {"GNU.sparse.map": f"0,{len(data)}", "GNU.sparse.size": str(4 << 30)}
            tar.addfile(member, io.BytesIO(data))
    with pytest.raises(ArchiveError, match="is a sparse file"):
        models.import_model(archive)
    _assert_nothing_kept(home)


def test_member_the_manifest_does_not_record_is_refused(home: Path, tmp_path: Path, iris_svc) -> None:
    _, files = _exported_model(tmp_path, iris_svc)
    extra = _write_archive(tmp_path / "extra.mlmodel", {**files, "notes/extra.txt": b"hello"})
    with pytest.raises(ArchiveError, match="notes/extra.txt.*does not record"):
        models.import_model(extra)
    _assert_nothing_kept(home)


def test_manifest_last_in_the_archive_still_imports(home: Path, tmp_path: Path, iris_svc) -> None:
    _, files = _exported_model(tmp_path, iris_svc)
    reordered = {"saved_model.joblib": files["saved_model.joblib"], "model.yaml": files["model.yaml"]}
    model = models.import_model(_write_archive(tmp_path / "last.mlmodel", reordered, rehash=False), trust=True)
    assert set(p.name for p in model.path.iterdir()) == {"model.yaml", "saved_model.joblib", "provenance.yaml"}


@pytest.mark.parametrize("path", ["../../../../etc/passwd", "/etc/passwd", "a\\..\\..\\x", "a//b", "./model.yaml"])
def test_manifest_paths_leaving_the_entry_are_refused(home: Path, tmp_path: Path, iris_svc, path: str) -> None:
    _, files = _exported_model(tmp_path, iris_svc)
    info = yaml.safe_load(files["model.yaml"])
    info["files"][path] = hashlib.sha256(b"root:x:0:0").hexdigest()
    evil = _write_archive(tmp_path / "out.mlmodel", {**files, "model.yaml": yaml.safe_dump(info).encode()}, rehash=False)
    with pytest.raises(ArchiveError, match="unsafe"):
        models.import_model(evil)
    _assert_nothing_kept(home)


def test_a_stored_manifest_naming_outside_paths_is_not_read(home: Path, iris_svc) -> None:
    model = mlpack.sklearn.save_model("m", iris_svc)
    info = yaml.safe_load((model.path / "model.yaml").read_text())
    info["files"]["../../../../../etc/passwd"] = "0" * 64
    (model.path / "model.yaml").write_text(yaml.safe_dump(info))
    with pytest.raises(IntegrityError, match="leaves the entry"):
        models.get("m").verify()


def test_alias_bomb_in_model_yaml_is_refused_and_listing_stays_small(home: Path, tmp_path: Path, iris_svc) -> None:
    _, files = _exported_model(tmp_path, iris_svc)
    base = files["model.yaml"].decode()
    bomb = ["lol0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    bomb += [f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    text = base.replace("metadata: {}", "metadata:\n" + textwrap.indent("\n".join(bomb), "  "))
    assert text != base and len(text) < 4096
    evil = _write_archive(tmp_path / "bomb.mlmodel", {**files, "model.yaml": text.encode()}, rehash=False)
    with pytest.raises(ArchiveError, match="aliases"):
        models.import_model(evil)
    _assert_nothing_kept(home)

    # a bomb that reached the store some other way (an old import) does not break listing
    ok = mlpack.sklearn.save_model("ok", iris_svc)
    planted = home / "models" / "bomb" / "0000000000000001"
    planted.mkdir(parents=True)
    (planted / "model.yaml").write_text(text)
    (planted / "saved_model.joblib").write_bytes(files["saved_model.joblib"])
    started = time.monotonic()
    assert [m.tag for m in models.list()] == [ok.tag]
    assert time.monotonic() - started < 30  # generous: the unguarded version took 11 s and 1.6 GB
    index = home / "models" / ".index.json"
    assert index.stat().st_size <= (ok.path / "model.yaml").stat().st_size + 512
    with pytest.raises(IntegrityError, match="aliases"):
        models.get("bomb")


def test_listing_index_is_no_bigger_than_the_manifests(home: Path, iris_svc) -> None:
    for i in range(5):
        mlpack.sklearn.save_model(f"m{i}", iris_svc, metadata={"i": i, "name": "ünïcode"})
    assert len(models.list()) == 5
    manifests = sum(p.stat().st_size for p in (home / "models").glob("*/*/model.yaml"))
    index = json.loads((home / "models" / ".index.json").read_text())
    assert len(index) == 5
    assert (home / "models" / ".index.json").stat().st_size <= manifests + 5 * 256


def test_size_and_member_caps(home: Path, tmp_path: Path, iris_svc, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, files = _exported_model(tmp_path, iris_svc)
    assert len(files["saved_model.joblib"]) > 2000
    monkeypatch.setenv("MLPACK_IMPORT_MAX_BYTES", "2000")
    with pytest.raises(ArchiveError, match="more than 2000 bytes.*MLPACK_IMPORT_MAX_BYTES"):
        models.import_model(archive)
    monkeypatch.delenv("MLPACK_IMPORT_MAX_BYTES")
    monkeypatch.setenv("MLPACK_IMPORT_MAX_MEMBERS", "1")
    with pytest.raises(ArchiveError, match="more than 1 members"):
        models.import_model(archive)
    _assert_nothing_kept(home)
    monkeypatch.setenv("MLPACK_IMPORT_MAX_MEMBERS", "2")
    assert models.import_model(archive).tag.name == "m"  # exactly at the caps is fine


def test_many_unrecorded_members_stop_at_the_first(home: Path, tmp_path: Path, iris_svc) -> None:
    _, files = _exported_model(tmp_path, iris_svc)
    flood = {**files, **{f"junk/{i}": b"" for i in range(2000)}}
    with pytest.raises(ArchiveError, match="does not record"):
        models.import_model(_write_archive(tmp_path / "flood.mlmodel", flood))
    assert not (home / "models" / "m").exists()


# ------------------------------------------------------------------ CLI


def test_cli_trust_flow(cli, home: Path, tmp_path: Path, iris_svc) -> None:
    archive, _ = _exported_model(tmp_path, iris_svc)
    imported = cli("models", "import", str(archive))
    assert imported.returncode == 0, imported.stderr
    tag = imported.stdout.strip()
    assert "untrusted" in imported.stderr and f"mlpack models trust {tag}" in imported.stderr
    shown = json.loads(cli("models", "get", tag, "-o", "json").stdout)
    assert shown["provenance"]["kind"] == "imported" and shown["provenance"]["trusted"] is False
    assert shown["provenance"]["source"] == str(archive)

    project = tmp_path / "project"
    project.mkdir()
    (project / "service.py").write_text(
        "import mlpack\nfrom mlpack.io import NumpyNdarray\n"
        "runner = mlpack.sklearn.get('m:latest').to_runner()\n"
        "svc = mlpack.Service('svc', runners=[runner])\n"
        "@svc.api(input=NumpyNdarray(), output=NumpyNdarray())\n"
        "def predict(a):\n    return runner.predict.run(a)\n"
    )
    refused = cli("run", "service.py:svc", "predict", "--input", "[[5.1,3.5,1.4,0.2]]", cwd=project)
    assert refused.returncode == 4, refused.stderr
    assert refused.stderr.count("\n") == 1 and f"mlpack models trust {tag}" in refused.stderr
    (project / "mlpackfile.yaml").write_text("service: service.py:svc\n")
    built = cli("build", str(project))
    assert built.returncode == 4 and "bundling saved_model.joblib" in built.stderr, built.stderr

    assert cli("models", "trust", tag).returncode == 0
    assert json.loads(cli("models", "get", tag, "-o", "json").stdout)["provenance"]["trusted"] is True
    ran = cli("run", "service.py:svc", "predict", "--input", "[[5.1,3.5,1.4,0.2]]", cwd=project)
    assert ran.returncode == 0 and json.loads(ran.stdout) == [0], ran.stderr
    assert cli("build", str(project)).returncode == 0

    cli("models", "delete", tag, "-y", "--force")
    trusted = cli("models", "import", "--trust", str(archive))
    assert trusted.returncode == 0 and "untrusted" not in trusted.stderr
    assert json.loads(cli("models", "get", tag, "-o", "json").stdout)["provenance"]["trusted"] is True


def test_cli_refuses_crafted_archive_with_one_line(cli, home: Path, tmp_path: Path, iris_svc) -> None:
    _, files = _exported_model(tmp_path, iris_svc)
    extra = _write_archive(tmp_path / "extra.mlmodel", {**files, "extra.py": b"print(1)"})
    res = cli("models", "import", str(extra))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "extra.py" in res.stderr
    listed = cli("models", "list", "-o", "json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


# ------------------------------------------------------------------ bundles

SERVICE = """
import mlpack
from mlpack.io import NumpyNdarray

runner = mlpack.sklearn.get("iris_clf:latest").to_runner()
svc = mlpack.Service("iris_classifier", runners=[runner])

@svc.api(input=NumpyNdarray(), output=NumpyNdarray())
def predict(arr):
    return runner.predict.run(arr)
"""


@pytest.fixture
def bundle(home: Path, tmp_path: Path, iris_svc) -> bundles.Bundle:
    mlpack.sklearn.save_model("iris_clf", iris_svc)
    project = tmp_path / "project"
    project.mkdir()
    (project / "service.py").write_text(SERVICE)
    (project / "mlpackfile.yaml").write_text("service: service.py:svc\npython:\n  lock_packages: false\n")
    return build_bundle(project)


def _run(cli, tag: str, cwd: Path):
    return cli("run", tag, "predict", "--input", "[[5.1,3.5,1.4,0.2]]", cwd=cwd)


def test_bundle_trust_gate_and_integrity(
    cli, home: Path, tmp_path: Path, bundle: bundles.Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = str(bundle.tag)
    assert bundle.provenance.kind == "built" and bundle.trusted
    ran = _run(cli, tag, tmp_path)
    assert ran.returncode == 0 and json.loads(ran.stdout) == [0], ran.stderr
    assert not list(bundle.path.rglob("__pycache__"))  # running writes nothing into the bundle

    archive = bundles.export_bundle(tag, tmp_path / "b.mlbundle")
    assert "provenance.yaml" not in _members(archive)
    bundles.delete(tag)
    imported = bundles.import_bundle(archive)
    assert not imported.trusted
    refused = _run(cli, tag, tmp_path)
    assert refused.returncode == 4 and f"mlpack bundles trust {tag}" in refused.stderr, refused.stderr
    # its models are as trusted as the bundle
    with monkeypatch.context() as m:
        m.setenv("MLPACK_MODELS_DIR", str(imported.path / "models"))
        with pytest.raises(Untrusted, match=f"part of bundle {tag}.*mlpack bundles trust {tag}"):
            mlpack.sklearn.load_model("iris_clf")
    shown = json.loads(cli("bundles", "get", tag, "-o", "json").stdout)
    assert shown["provenance"] == {**shown["provenance"], "kind": "imported", "trusted": False}

    assert cli("bundles", "trust", tag).returncode == 0
    ran = _run(cli, tag, tmp_path)
    assert ran.returncode == 0 and json.loads(ran.stdout) == [0], ran.stderr

    # an edited service.py in the stored bundle is refused where it would run
    service = imported.path / "src" / "service.py"
    service.write_text(service.read_text() + "\nimport os; open('edited-ran', 'w')\n")
    edited = _run(cli, tag, tmp_path)
    assert edited.returncode != 0 and "src/service.py" in edited.stderr and "sha256" in edited.stderr
    served = cli("serve", tag, "--port", str(free_port()), cwd=tmp_path)
    assert served.returncode != 0 and "src/service.py" in served.stderr and "Traceback" not in served.stderr
    assert not (tmp_path / "edited-ran").exists()
    service.write_text(SERVICE)  # the recorded content again: runs again
    restored = _run(cli, tag, tmp_path)
    assert restored.returncode == 0, restored.stderr
    # an added module is named and refused
    (imported.path / "src" / "json.py").write_text("raise SystemExit('planted module ran')\n")
    planted = _run(cli, tag, tmp_path)
    assert planted.returncode != 0 and "src/json.py" in planted.stderr and "does not record" in planted.stderr


def test_bundle_with_added_module_is_refused_on_import(home: Path, tmp_path: Path, bundle: bundles.Bundle) -> None:
    archive = bundles.export_bundle(bundle.tag, tmp_path / "b.mlbundle")
    bundles.delete(bundle.tag)
    files = _members(archive)
    evil = _write_archive(tmp_path / "numpy.mlbundle", {**files, "src/numpy.py": b"open('pwned', 'w')\n"}, manifest="bundle.yaml")
    with pytest.raises(ArchiveError, match="src/numpy.py"):
        bundles.import_bundle(evil)
    assert bundles.list() == []
    assert bundles.import_bundle(archive, trust=True).trusted


def test_bundle_trust_python_api(home: Path, tmp_path: Path, bundle: bundles.Bundle) -> None:
    from mlpack.target import load_service

    archive = bundles.export_bundle(bundle.tag, tmp_path / "b.mlbundle")
    bundles.delete(bundle.tag)
    imported = bundles.import_bundle(archive)
    with pytest.raises(Untrusted, match=f"mlpack bundles trust {bundle.tag}"):
        load_service(str(bundle.tag), tmp_path)
    with pytest.raises(Untrusted, match=f"mlpack bundles trust {bundle.tag}"):
        mlpack.load(str(bundle.tag))  # the 0.x loader too
    assert bundles.trust(bundle.tag).tag == imported.tag
    assert bundles.get(bundle.tag).trusted


def _readme_blocks(section: str) -> list[list[str]]:
    """The shell commands of each ```sh block under ``## section`` of the README, comments dropped."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = [chunk.split("```", 1)[0] for chunk in body.split("```sh\n")[1:]]
    return [[ln.split("#", 1)[0].strip() for ln in block.splitlines() if ln.split("#", 1)[0].strip()] for block in blocks]


def test_readme_trust_commands(cli, home: Path, tmp_path: Path, iris_svc) -> None:
    import shlex

    model_block, bundle_block = _readme_blocks("Trust")
    mlpack.sklearn.save_model("iris_clf", iris_svc)
    for line in model_block:
        res = cli(*shlex.split(line)[1:], cwd=tmp_path)
        assert res.returncode == 0, (line, res.stderr)
        if " import " in line:
            assert not models.get("iris_clf").trusted
    assert models.get("iris_clf").trusted
    project = tmp_path / "project"
    project.mkdir()
    (project / "service.py").write_text(SERVICE)
    (project / "mlpackfile.yaml").write_text("service: service.py:svc\npython:\n  lock_packages: false\n")
    build_bundle(project)
    for line in bundle_block:
        res = cli(*shlex.split(line)[1:], cwd=tmp_path)
        assert res.returncode == 0, (line, res.stderr)
        if " import " in line:
            assert bundles.get("iris_classifier").provenance.kind == "imported"
            assert bundles.get("iris_classifier").trusted
    ran = _run(cli, "iris_classifier:latest", tmp_path)
    assert ran.returncode == 0 and json.loads(ran.stdout) == [0], ran.stderr


def test_a_manifest_too_large_to_read_back_is_refused_at_save(home: Path, iris_svc) -> None:
    from mlpack.exceptions import BadInput

    with pytest.raises(BadInput, match="model.yaml would be larger than"):
        mlpack.sklearn.save_model("big", iris_svc, metadata={"blob": "x" * (5 << 20)})
    assert models.list() == []
    assert mlpack.sklearn.save_model("fine", iris_svc, metadata={"blob": "x" * (1 << 20)}).info.metadata


def test_listing_index_never_outgrows_a_dense_manifest(home: Path, iris_svc) -> None:
    model = mlpack.sklearn.save_model("dense", iris_svc)
    manifest = model.path / "model.yaml"
    text = manifest.read_text().replace("metadata: {}", "metadata: {x: [" + ",".join(["a"] * 100_000) + "]}")
    assert text != manifest.read_text()
    manifest.write_text(text)  # JSON of this is twice its YAML
    plain = mlpack.sklearn.save_model("plain", iris_svc)
    listed = models.list()
    assert [m.tag for m in listed] == [plain.tag, model.tag] and len(listed[1].info.metadata["x"]) == 100_000
    manifests = manifest.stat().st_size + (plain.path / "model.yaml").stat().st_size
    assert (home / "models" / ".index.json").stat().st_size <= manifests + 2 * 256
    assert [m.tag for m in models.list()] == [plain.tag, model.tag]  # still listed, from the manifest itself
