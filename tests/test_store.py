"""Store operations through the public API (mlpack.models.*) on real sklearn models."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

import mlpack
from mlpack import models
from mlpack.exceptions import AlreadyExists, AmbiguousTag, ArchiveError, IntegrityError, InUse, NotFound, Untrusted


def test_save_get_latest_and_list(home: Path, iris_svc) -> None:
    first = mlpack.sklearn.save_model("iris_clf", iris_svc, labels={"stage": "dev"})
    second = mlpack.sklearn.save_model("iris_clf", iris_svc, labels={"stage": "prod"})
    assert first.tag.version < second.tag.version
    assert models.get("iris_clf").tag == second.tag
    assert models.get("iris_clf:latest").tag == second.tag
    assert models.get(f"iris_clf:{first.tag.version}").tag == first.tag
    assert (home / "models" / "iris_clf" / "latest").read_text().strip() == second.tag.version
    listed = models.list()
    assert [m.tag for m in listed] == [second.tag, first.tag]  # newest first
    assert [m.tag for m in models.list(labels={"stage": "dev"})] == [first.tag]
    assert models.list("other") == []


def test_model_yaml_fields(home: Path, iris_svc) -> None:
    model = mlpack.sklearn.save_model("iris_clf", iris_svc, metadata={"acc": 0.97})
    info = models.get("iris_clf").info
    assert info.module == "mlpack.sklearn"
    assert info.signatures == {"predict": {"batchable": False, "batch_dim": 0}}
    assert set(info.context) == {"framework_name", "framework_versions", "mlpack_version", "python_version"}
    assert "scikit-learn" in info.context["framework_versions"]
    assert info.creation_time.endswith("Z")
    assert set(info.files) == {"saved_model.joblib"}
    assert len(info.files["saved_model.joblib"]) == 64
    assert info.metadata == {"acc": 0.97}
    assert (model.path / "model.yaml").is_file()


def test_unique_prefix_resolves_and_ambiguous_prefix_lists_matches(home: Path, iris_svc) -> None:
    a = mlpack.sklearn.save_model("m", iris_svc)
    b = mlpack.sklearn.save_model("m", iris_svc)
    common = 0
    while a.tag.version[common] == b.tag.version[common]:
        common += 1
    assert models.get(f"m:{a.tag.version[: common + 1]}").tag == a.tag
    with pytest.raises(AmbiguousTag) as err:
        models.get(f"m:{a.tag.version[:common]}")
    assert str(a.tag) in str(err.value) and str(b.tag) in str(err.value)


def test_unknown_model_and_version(home: Path, iris_svc) -> None:
    with pytest.raises(NotFound, match="no model named 'nope'"):
        models.get("nope")
    mlpack.sklearn.save_model("m", iris_svc)
    with pytest.raises(NotFound):
        models.get("m:zzzz")


def test_delete_moves_latest_back_and_removes_name(home: Path, iris_svc) -> None:
    a = mlpack.sklearn.save_model("m", iris_svc)
    b = mlpack.sklearn.save_model("m", iris_svc)
    models.delete(b.tag)
    assert models.get("m:latest").tag == a.tag
    models.delete("m")
    assert not (home / "models" / "m").exists()
    with pytest.raises(NotFound):
        models.get("m")


def test_delete_refuses_a_model_a_bundle_uses(home: Path, iris_svc) -> None:
    model = mlpack.sklearn.save_model("m", iris_svc)
    bundle = home / "bundles" / "svc" / "v1"
    bundle.mkdir(parents=True)
    (bundle / "bundle.yaml").write_text(f"name: svc\nversion: v1\nmodels:\n- tag: {model.tag}\n")
    with pytest.raises(InUse, match="svc:v1"):
        models.delete(model.tag)
    models.delete(model.tag, force=True)
    assert models.list() == []


def test_tampered_file_is_refused_on_load(home: Path, iris_svc) -> None:
    model = mlpack.sklearn.save_model("m", iris_svc)
    path = model.path / "saved_model.joblib"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        mlpack.sklearn.load_model("m")
    with pytest.raises(IntegrityError):
        models.export_model("m", home.parent)


def test_missing_latest_file_falls_back_to_newest(home: Path, iris_svc) -> None:
    mlpack.sklearn.save_model("m", iris_svc)
    b = mlpack.sklearn.save_model("m", iris_svc)
    (home / "models" / "m" / "latest").unlink()
    assert models.get("m").tag == b.tag


def test_export_import_round_trip(home: Path, tmp_path: Path, iris, iris_svc) -> None:
    model = mlpack.sklearn.save_model("m", iris_svc)
    archive = models.export_model("m", tmp_path)
    assert archive.name == f"m-{model.tag.version}.mlmodel"
    with pytest.raises(AlreadyExists):
        models.import_model(archive)
    models.delete("m")
    imported = models.import_model(archive)
    assert imported.tag == model.tag
    assert not imported.trusted and imported.provenance.kind == "imported"
    with pytest.raises(Untrusted, match=f"mlpack models trust {model.tag}"):
        mlpack.sklearn.load_model(imported.tag)
    models.trust(imported.tag)
    X, _ = iris
    assert (mlpack.sklearn.load_model(imported.tag).predict(X) == iris_svc.predict(X)).all()


def _archive(tmp_path: Path, members: list[tarfile.TarInfo], payload: bytes = b"x") -> Path:
    path = tmp_path / "evil.mlmodel"
    with tarfile.open(path, "w:gz") as tar:
        for m in members:
            if m.isfile():
                m.size = len(payload)
                tar.addfile(m, io.BytesIO(payload))
            else:
                tar.addfile(m)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    "member",
    [
        _member("../escaped.txt"),
        _member("a/../../escaped.txt"),
        _member("/tmp/escaped-absolute.txt"),
        _member("link", tarfile.SYMTYPE, "/etc/passwd"),
        _member("hard", tarfile.LNKTYPE, "../escaped.txt"),
        _member("fifo", tarfile.FIFOTYPE),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink", "fifo"],
)
def test_unsafe_archives_are_refused(home: Path, tmp_path: Path, member: tarfile.TarInfo) -> None:
    archive = _archive(tmp_path, [_member("model.yaml"), member])
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(ArchiveError, match="unsafe"):
        models.import_model(archive)
    assert sorted(p for p in tmp_path.rglob("*") if home not in p.parents and p != home) == [
        p for p in before if home not in p.parents and p != home
    ]
    assert not Path("/tmp/escaped-absolute.txt").exists()
    assert models.list() == []


def test_unreadable_archive(home: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mlmodel"
    junk.write_bytes(b"this is not a tar file")
    with pytest.raises(ArchiveError, match="cannot read archive"):
        models.import_model(junk)
    with pytest.raises(ArchiveError, match="does not exist"):
        models.import_model(tmp_path / "missing.mlmodel")


def test_archive_with_tampered_member_is_refused(home: Path, tmp_path: Path, iris_svc) -> None:
    mlpack.sklearn.save_model("m", iris_svc)
    archive = models.export_model("m", tmp_path)
    models.delete("m")
    out = tmp_path / "tampered.mlmodel"
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name == "saved_model.joblib":
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.addfile(m, io.BytesIO(data))
    with pytest.raises(IntegrityError):
        models.import_model(out)
    assert models.list() == []


def test_listing_index_follows_changes_on_disk(home: Path, iris_svc) -> None:
    import shutil

    a = mlpack.sklearn.save_model("m", iris_svc, labels={"stage": "dev"})
    b = mlpack.sklearn.save_model("m", iris_svc)
    assert len(models.list()) == 2
    assert (home / "models" / ".index.json").is_file()
    manifest = a.path / "model.yaml"
    manifest.write_text(manifest.read_text().replace("stage: dev", "stage: prod"))
    assert [m.tag for m in models.list(labels={"stage": "prod"})] == [a.tag]
    shutil.rmtree(b.path)  # removed behind the store's back
    assert [m.tag for m in models.list()] == [a.tag]
    (home / "models" / ".index.json").write_text("{not json")
    assert [m.tag for m in models.list()] == [a.tag]
