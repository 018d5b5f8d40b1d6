"""`mlpack models ...` through the real CLI in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import mlpack


@pytest.fixture
def two_models(home: Path, iris_svc):
    a = mlpack.sklearn.save_model("iris_clf", iris_svc, labels={"team": "a"})
    b = mlpack.sklearn.save_model("other", iris_svc, labels={"team": "b"})
    return a, b


def test_version(cli) -> None:
    res = cli("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"mlpack {mlpack.__version__}"


def test_list_formats(cli, two_models) -> None:
    a, b = two_models
    table = cli("models", "list")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.strip().splitlines()
    assert header.split() == ["Tag", "Module", "Size", "Creation", "Time"]
    assert rows[0].split()[0] == str(b.tag) and rows[1].split()[0] == str(a.tag)  # newest first
    as_json = json.loads(cli("models", "list", "-o", "json").stdout)
    assert [m["tag"] for m in as_json] == [str(b.tag), str(a.tag)]
    assert as_json[0]["module"] == "mlpack.sklearn" and as_json[0]["size"] > 0
    as_yaml = yaml.safe_load(cli("models", "list", "-o", "yaml").stdout)
    assert as_yaml == as_json
    filtered = json.loads(cli("models", "list", "--label", "team=a", "-o", "json").stdout)
    assert [m["tag"] for m in filtered] == [str(a.tag)]
    by_name = json.loads(cli("models", "list", "other", "-o", "json").stdout)
    assert [m["tag"] for m in by_name] == [str(b.tag)]


def test_get_formats(cli, two_models) -> None:
    a, _ = two_models
    as_yaml = yaml.safe_load(cli("models", "get", "iris_clf:latest").stdout)
    assert as_yaml["version"] == a.tag.version and as_yaml["module"] == "mlpack.sklearn"
    assert as_yaml["files"]["saved_model.joblib"]
    as_json = json.loads(cli("models", "get", str(a.tag), "-o", "json").stdout)
    assert as_json == as_yaml
    path = cli("models", "get", f"iris_clf:{a.tag.version[:12]}", "-o", "path").stdout.strip()
    assert Path(path) == a.path


def test_uppercase_tag_warns_and_works(cli, two_models) -> None:
    res = cli("models", "get", "IRIS_CLF", "-o", "path")
    assert res.returncode == 0
    assert "warning:" in res.stderr and "iris_clf" in res.stderr


def test_delete_export_import(cli, two_models, tmp_path: Path) -> None:
    a, b = two_models
    exported = cli("models", "export", str(a.tag), str(tmp_path))
    assert exported.returncode == 0, exported.stderr
    archive = Path(exported.stdout.strip())
    assert archive.is_file() and archive.suffix == ".mlmodel"
    refused = cli("models", "delete", "iris_clf")  # no tty, no -y
    assert refused.returncode != 0 and "-y" in refused.stderr
    deleted = cli("models", "delete", "iris_clf", str(b.tag), "-y")
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(cli("models", "list", "-o", "json").stdout) == []
    imported = cli("models", "import", str(archive))
    assert imported.returncode == 0 and imported.stdout.strip() == str(a.tag)
    assert [m["tag"] for m in json.loads(cli("models", "list", "-o", "json").stdout)] == [str(a.tag)]


def test_delete_with_a_typo_deletes_nothing(cli, two_models) -> None:
    res = cli("models", "delete", "iris_clf", "nope", "-y")
    assert res.returncode != 0
    assert len(json.loads(cli("models", "list", "-o", "json").stdout)) == 2


def _one_error_line(res) -> str:
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_errors_are_one_line(cli, two_models, tmp_path: Path) -> None:
    assert "invalid tag" in _one_error_line(cli("models", "get", "../etc"))
    assert "no model named 'nope'" in _one_error_line(cli("models", "get", "nope"))
    a, _ = two_models
    mlpack.sklearn.save_model("iris_clf", mlpack.sklearn.load_model(a.tag))
    assert "ambiguous" in _one_error_line(cli("models", "get", "iris_clf:" + a.tag.version[:1]))
    junk = tmp_path / "junk.mlmodel"
    junk.write_text("not an archive")
    assert "cannot read archive" in _one_error_line(cli("models", "import", str(junk)))
    (a.path / "saved_model.joblib").write_bytes(b"tampered")
    assert "sha256" in _one_error_line(cli("models", "export", str(a.tag), str(tmp_path)))


def test_debug_shows_the_traceback(cli, home: Path) -> None:
    res = cli("--debug", "models", "get", "nope")
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_bad_output_format(cli, home: Path) -> None:
    res = cli("models", "list", "-o", "xml")
    assert res.returncode == 2 and "xml" in res.stderr


def test_python_dash_m_and_console_script_agree(cli, home: Path) -> None:
    import shutil
    import subprocess
    import sys

    script = Path(sys.executable).with_name("mlpack")
    exe = str(script) if script.exists() else shutil.which("mlpack")
    assert exe, "the mlpack console script is not installed"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    assert out == cli("--version").stdout
