"""The defects of issue 9, each through the real CLI in a subprocess against a temporary MLPACK_HOME.

Every error here must be one line on stderr (no traceback without --debug) that names the
real cause; results go to stdout only.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import mlpack
from tests.server import ROOT, running_server

PRINTING_SERVICE = textwrap.dedent(
    """
    import mlpack
    from mlpack.io import JSON, NumpyNdarray

    print("importing the service")   # module-level prints, as tutorials have
    runner = mlpack.sklearn.get("iris_clf:latest").to_runner()
    svc = mlpack.Service("iris_classifier", runners=[runner])

    @svc.api(input=NumpyNdarray(), output=NumpyNdarray())
    async def predict(arr):
        print("predicting", len(arr), "rows")
        return await runner.predict.async_run(arr)

    @svc.api(input=JSON(), output=JSON())
    def echo(record):
        print("got", record)
        return {"seen": record}
    """
)


def one_error_line(res, *needles: str) -> str:
    """The run failed with exactly one ``error:`` line holding every needle, and no traceback."""
    assert res.returncode != 0, res.stdout
    assert "Traceback" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def run_umask(args: list[str], umask: int, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlpack", *args], cwd=cwd, env=env, capture_output=True, text=True,
        preexec_fn=lambda: os.umask(umask), timeout=120,
    )  # fmt: skip


@pytest.fixture
def saved(home: Path, iris_svc) -> mlpack.models.Model:
    return mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True}})


@pytest.fixture
def printing(tmp_path: Path, saved) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "service.py").write_text(PRINTING_SERVICE)
    (proj / "iris.csv").write_text("a,b,c,d\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    return proj


# ---------------------------------------------------------------- export into DIR/


def test_models_export_into_a_missing_directory_then_import(cli, saved, tmp_path: Path) -> None:
    res = cli("models", "export", "iris_clf", "./out/", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    archive = tmp_path / "out" / f"iris_clf-{saved.tag.version}.mlmodel"
    assert res.stdout.strip() == str(Path("out") / archive.name) and archive.is_file()
    again = cli("models", "export", "iris_clf", "./out/", cwd=tmp_path)  # replaced, no FileExistsError
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [archive.name]  # no leftovers
    existing_dir = cli("models", "export", "iris_clf", "out", cwd=tmp_path)  # an existing dir, no slash
    assert existing_dir.returncode == 0 and existing_dir.stdout.strip() == str(Path("out") / archive.name)
    assert cli("models", "delete", "iris_clf", "-y").returncode == 0
    back = cli("models", "import", f"./out/{archive.name}", cwd=tmp_path)  # the README's next step
    assert back.returncode == 0 and back.stdout.strip() == str(saved.tag), back.stderr


def test_export_where_a_file_is_in_the_way_is_one_line(cli, saved, tmp_path: Path) -> None:
    (tmp_path / "out").write_text("not a directory")
    one_error_line(cli("models", "export", "iris_clf", "./out/", cwd=tmp_path), "out", "not a directory")
    one_error_line(cli("models", "export", "iris_clf", "out/a.mlmodel", cwd=tmp_path), "not a directory")
    assert (tmp_path / "out").read_text() == "not a directory"


def test_export_honours_the_umask(saved, home: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MLPACK_HOME": str(home)}
    for umask, mode in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
        res = run_umask(["models", "export", "iris_clf", f"u{umask:o}/"], umask, env, tmp_path)
        assert res.returncode == 0, res.stderr
        assert stat.S_IMODE(os.stat(tmp_path / res.stdout.strip()).st_mode) == mode


def test_python_export_model_into_a_directory(saved, tmp_path: Path) -> None:
    written = mlpack.models.export_model("iris_clf", f"{tmp_path}/new/dir/")
    assert written == tmp_path / "new" / "dir" / f"iris_clf-{saved.tag.version}.mlmodel" and written.is_file()
    assert mlpack.models.export_model("iris_clf", tmp_path / "new" / "dir") == written  # existing dir, replaced


# ---------------------------------------------------------------- mlpack run: stdout, output files


def test_prints_of_the_service_go_to_stderr(cli, printing: Path) -> None:
    res = cli("run", "service.py:svc", "predict", "--input-file", "iris.csv", cwd=printing)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [0, 2]  # stdout is the results, nothing else (`| jq` works)
    assert "importing the service" in res.stderr and "predicting 2 rows" in res.stderr
    res = cli("run", "service.py:svc", "echo", "--input", '{"a": 1}', cwd=printing)  # a sync API
    assert res.returncode == 0 and json.loads(res.stdout) == {"seen": {"a": 1}}, res.stdout
    assert "got {'a': 1}" in res.stderr
    jq = cli("run", "service.py:svc", "predict", "--input-file", "iris.csv", "-o", "jsonl", cwd=printing)
    assert [json.loads(line) for line in jq.stdout.splitlines()] == [0, 2]


def test_output_files_honour_the_umask(printing: Path, home: Path) -> None:
    env = {**os.environ, "MLPACK_HOME": str(home)}
    for umask, mode in ((0o022, 0o644), (0o002, 0o664)):
        out = printing / f"out-{umask:o}.csv"
        res = run_umask(
            ["run", "service.py:svc", "predict", "--input-file", "iris.csv", "--output-file", out.name], umask, env, printing
        )
        assert res.returncode == 0, res.stderr
        assert stat.S_IMODE(out.stat().st_mode) == mode and out.read_text().splitlines()[1:] == ["0", "2"]


def test_output_file_through_a_link_keeps_the_link(cli, printing: Path) -> None:
    (printing / "real.json").write_text("old")
    (printing / "link.json").symlink_to("real.json")
    res = cli("run", "service.py:svc", "predict", "--input-file", "iris.csv", "--output-file", "link.json", cwd=printing)
    assert res.returncode == 0, res.stderr
    assert (printing / "link.json").is_symlink() and json.loads((printing / "real.json").read_text()) == [0, 2]


def test_unknown_output_extension_is_refused(cli, printing: Path) -> None:
    res = cli("run", "service.py:svc", "predict", "--input-file", "iris.csv", "--output-file", "out.xlsx", cwd=printing)
    line = one_error_line(res, "out.xlsx", ".xlsx")
    assert all(ext in line for ext in (".json", ".jsonl", ".csv", ".parquet")), line
    assert not (printing / "out.xlsx").exists()
    forced = cli(
        "run", "service.py:svc", "predict", "--input-file", "iris.csv", "--output-file", "out.xlsx", "-o", "csv", cwd=printing
    )
    assert forced.returncode == 0 and (printing / "out.xlsx").read_text().splitlines()[1:] == ["0", "2"]


def test_missing_input_file_says_no_such_file(cli, printing: Path) -> None:
    for name in ("missing.txt", "missing.csv"):
        one_error_line(cli("run", "service.py:svc", "predict", "--input-file", name, cwd=printing), name, "no such file")
    one_error_line(cli("run", "service.py:svc", "predict", "--input-file", ".", cwd=printing), "is a directory")


def test_results_to_a_full_disk_are_one_line(printing: Path, home: Path) -> None:
    env = {**os.environ, "MLPACK_HOME": str(home), "NO_COLOR": "1"}
    for args in (["run", "service.py:svc", "predict", "--input-file", "iris.csv"], ["models", "list", "-o", "json"]):
        with open("/dev/full", "w") as full:
            res = subprocess.run([sys.executable, "-m", "mlpack", *args], cwd=printing, env=env, stdout=full,
                                 stderr=subprocess.PIPE, text=True, timeout=120)  # fmt: skip
        one_error_line(res, "stdout", "no space left")


# ---------------------------------------------------------------- serve: ports and targets


def test_ports_outside_the_tcp_range_are_refused(cli, printing: Path) -> None:
    res = cli("serve", "service.py:svc", "--port", "99999", cwd=printing)
    assert res.returncode == 2 and "99999" in res.stderr and "65535" in res.stderr and "Traceback" not in res.stderr
    one_error_line(cli("serve", "service.py:svc", cwd=printing, env={"MLPACK_PORT": "70000"}), "MLPACK_PORT", "70000")
    config = printing / "config.yaml"
    config.write_text("api_server: {port: 65536}\n")
    one_error_line(cli("serve", "service.py:svc", "--config", str(config), cwd=printing), "port")


def test_port_zero_picks_a_port_and_logs_it(printing: Path, home: Path, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    env = {**os.environ, "MLPACK_HOME": str(home), "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mlpack", "serve", "service.py:svc", "--port", "0"], cwd=printing,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline, port = time.monotonic() + 60, None
        while port is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"serving iris_classifier .* on http://127\.0\.0\.1:(\d+)", log.read_text())
            port = int(found.group(1)) if found else None
            time.sleep(0.1)
        assert port, log.read_text()
        assert port != 0
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        response = httpx.post(f"http://127.0.0.1:{port}/predict", json=[[5.1, 3.5, 1.4, 0.2]], timeout=10)
        assert response.status_code == 200 and response.json() == [0]
        assert f"Uvicorn running on http://127.0.0.1:{port}" in log.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.parametrize("command", [["serve"], ["run", "--input", "[[1,2,3,4]]"], ["containerize", "--dry-run"]])
def test_path_targets_say_what_is_wrong(cli, tmp_path: Path, command: list[str]) -> None:
    verb, *rest = command
    api = ["predict"] if verb == "run" else []
    missing = cli(verb, "/nonexistent/dir", *api, *rest, cwd=tmp_path)
    line = one_error_line(missing, "/nonexistent/dir", "no such file or directory")
    assert "tag" not in line
    one_error_line(cli(verb, str(tmp_path), *api, *rest, cwd=tmp_path), "not a bundle", "no bundle.yaml")


# ---------------------------------------------------------------- the store: MLPACK_HOME, staging


def test_unusable_home_is_one_clear_error(cli, tmp_path: Path, saved, home: Path) -> None:
    archive = mlpack.models.export_model("iris_clf", f"{tmp_path}/")
    a_file = tmp_path / "home-file"
    a_file.write_text("")
    for bad in (a_file, a_file / "sub"):
        env = {"MLPACK_HOME": str(bad)}
        one_error_line(cli("models", "list", env=env), f"MLPACK_HOME={bad}")
        one_error_line(cli("models", "import", str(archive), env=env), f"MLPACK_HOME={bad}")
        one_error_line(cli("bundles", "list", env=env), f"MLPACK_HOME={bad}")


def test_empty_and_missing_stores_say_so_on_stderr(cli, tmp_path: Path) -> None:
    missing = tmp_path / "typo-home"
    res = cli("models", "list", "-o", "json", env={"MLPACK_HOME": str(missing)})
    assert res.returncode == 0 and json.loads(res.stdout) == []
    assert f"no models in the store {missing}" in res.stderr and "does not exist" in res.stderr
    missing.mkdir()
    res = cli("bundles", "list", env={"MLPACK_HOME": str(missing)})
    assert res.returncode == 0 and "no bundles in the store" in res.stderr and "mlpack build" in res.stderr
    assert "does not exist" not in res.stderr and res.stdout.split() == ["Tag", "Size", "Models", "Creation", "Time"]


LIVE_WRITER = textwrap.dedent(
    """
    import sys, time
    import mlpack.models

    def write(path):
        (path / "saved_model.joblib").write_bytes(b"partial")
        print(path, flush=True)
        sys.stdin.readline()   # a slow writer: stays inside its staging dir until told
        raise SystemExit(0)

    mlpack.models.save("mlpack.sklearn", "slow", write)
    """
)


def test_staging_dirs_of_dead_writers_go_on_the_next_write(home: Path, iris_svc) -> None:
    mlpack.sklearn.save_model("first", iris_svc)  # makes .tmp
    legacy = home / ".tmp" / "models-legacy"  # an older mlpack's staging dir, no lock: kept for a day
    legacy.mkdir()
    env = {**os.environ, "MLPACK_HOME": str(home), "PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen([sys.executable, "-c", LIVE_WRITER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        staged = [Path(w.stdout.readline().strip()) for w in writers]
        assert all(p.is_dir() and p.parent == home / ".tmp" for p in staged)
        writers[0].kill()  # dies mid-save: SIGKILL, no clean-up of its own
        writers[0].wait()
        mlpack.sklearn.save_model("next", iris_svc)  # the next write cleans up
        assert not staged[0].exists() and not Path(f"{staged[0]}.lock").exists()
        assert staged[1].is_dir() and (staged[1] / "saved_model.joblib").read_bytes() == b"partial"  # alive: kept
        assert legacy.is_dir()
        out = subprocess.run([sys.executable, "-m", "mlpack", "models", "list", "-o", "json"], env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert sorted(m["name"] for m in json.loads(out.stdout)) == ["first", "next"]
    finally:
        for w in writers:
            w.kill()
            w.wait()
    mlpack.sklearn.save_model("last", iris_svc)
    assert sorted(p.name for p in (home / ".tmp").iterdir()) == ["models-legacy"]


# ---------------------------------------------------------------- a full disk (a real, tiny tmpfs)


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (root only; CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_full_disk_is_one_line_naming_the_path(cli, tiny_fs: Path, tmp_path: Path, home: Path, iris_svc) -> None:
    import numpy as np

    big = mlpack.sklearn.save_model("big", iris_svc, custom_objects={"blob": np.random.default_rng(0).random(100_000)})
    small_home = tiny_fs / "home"
    env = {"MLPACK_HOME": str(small_home)}
    archive = mlpack.models.export_model(big.tag, f"{tmp_path}/")
    line = one_error_line(cli("models", "import", str(archive), env=env), str(small_home), "no space left")
    assert "archive" not in line  # the store's disk is full, the archive is fine
    one_error_line(cli("models", "export", "big", f"{tiny_fs}/out/"), str(tiny_fs / "out"), "no space left")
    save = subprocess.run(
        [sys.executable, "-c", "import mlpack, numpy as np; from sklearn.dummy import DummyClassifier as D; "
         "mlpack.sklearn.save_model('big', D().fit([[0]], [0]), custom_objects={'b': np.ones(100_000)})"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert save.returncode != 0 and "StorageError: cannot write into the store at" in save.stderr.splitlines()[-1]
    rows = "a,b,c,d\n" + "5.1,3.5,1.4,0.2\n" * 150_000
    (tmp_path / "rows.csv").write_text(rows)
    (tmp_path / "service.py").write_text(PRINTING_SERVICE)
    mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True}})
    out = tiny_fs / "predictions.csv"
    res = cli("run", "service.py:svc", "predict", "--input-file", "rows.csv", "--output-file", str(out), cwd=tmp_path)
    one_error_line(res, str(out), "no space left")
    assert sorted(tiny_fs.iterdir()) == [tiny_fs / "home", tiny_fs / "out"]  # no partial output left
    (tmp_path / "mlpackfile.yaml").write_text('service: "service.py:svc"\ninclude: ["*.py", "*.csv"]\n')
    build = cli("build", str(tmp_path), env=env | {"MLPACK_MODELS_DIR": str(home / "models")})
    one_error_line(build, "no space left")


# ---------------------------------------------------------------- pathological input files

TABLE_SERVICE = textwrap.dedent(
    """
    import mlpack
    from mlpack.io import JSON, NumpyNdarray, PandasDataFrame

    svc = mlpack.Service("tables")

    @svc.api(input=NumpyNdarray(dtype="float64"), output=JSON())
    def numbers(arr):
        return arr.sum(axis=1).tolist()

    @svc.api(input=PandasDataFrame(), output=JSON())
    def frame(df):
        return [len(df)] * len(df)

    @svc.api(input=JSON(), output=JSON())
    def records(record):
        return 1
    """
)


@pytest.fixture
def tables(tmp_path: Path, home: Path) -> Path:
    proj = tmp_path / "tables"
    proj.mkdir()
    (proj / "service.py").write_text(TABLE_SERVICE)
    return proj


def peak_rss_mb(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    """Run the CLI; its result and its own peak RSS in MB (wait4's rusage: this child only)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "mlpack", *args], cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(args, proc.returncode, out.read(), err.read()), usage.ru_maxrss / 1024


@pytest.mark.parametrize("api", ["numbers", "frame"])
def test_one_huge_csv_line_is_refused_in_bounded_memory(tables: Path, home: Path, api: str) -> None:
    # 20 MB in one line: 10 million fields once took `run` past 5 GB
    (tables / "huge.csv").write_text("a,b,c,d\n1,2,3,4\n" + "1," * 10_000_000 + "1\n5,6,7,8\n")
    (tables / "wide.csv").write_text("a,b,c,d\n1,2,3,4\n" + "x" * 3_000_000 + ",1,1,1\n")
    env = {**os.environ, "MLPACK_HOME": str(home), "NO_COLOR": "1"}
    for name, problem in (("huge.csv", "more than 16,384 fields"), ("wide.csv", "longer than 1,048,576 bytes")):
        res, peak = peak_rss_mb(["run", "service.py:svc", api, "--input-file", name], tables, env)
        one_error_line(res, f"row 2 (line 3 of {name})", problem)
        assert peak < 600, f"{name}: peak RSS {peak:.0f} MB"


def test_line_and_column_limits_are_configurable(cli, tables: Path) -> None:
    (tables / "rows.csv").write_text("a,b,c,d\n1,2,3,4\n" + "1.000000000," * 3 + "1\n")
    short = cli("run", "service.py:svc", "numbers", "--input-file", "rows.csv", cwd=tables, env={"MLPACK_MAX_LINE_BYTES": "20"})
    one_error_line(short, "row 2 (line 3 of rows.csv)", "longer than 20 bytes")
    narrow = cli("run", "service.py:svc", "frame", "--input-file", "rows.csv", cwd=tables, env={"MLPACK_MAX_COLUMNS": "3"})
    one_error_line(narrow, "line 1 of rows.csv", "more than 3 fields")
    ok = cli("run", "service.py:svc", "numbers", "--input-file", "rows.csv", cwd=tables, env={"MLPACK_MAX_LINE_BYTES": "60"})
    assert ok.returncode == 0 and json.loads(ok.stdout) == [10.0, 4.0], ok.stderr
    one_error_line(cli("run", "service.py:svc", "numbers", "--input-file", "rows.csv", cwd=tables,
                       env={"MLPACK_MAX_LINE_BYTES": "lots"}), "MLPACK_MAX_LINE_BYTES")  # fmt: skip


@pytest.mark.parametrize(
    ("api", "name", "content", "where"),
    [
        ("numbers", "nul.csv", b"a,b\n1,2\n3\x00,4\n", "row 2 (line 3 of nul.csv)"),
        ("frame", "nul.csv", b"a,b\n1,2\n3\x00,4\n", "row 2 (line 3 of nul.csv)"),
        ("records", "nul.jsonl", b'{"a": 1}\n{"a": "\x00"}\n', "line 2 of nul.jsonl"),
        ("numbers", "zeros.csv", b"\x00" * 100_000, "line 1 of zeros.csv"),
        ("records", "zeros.json", b"\x00" * 100_000, "line 1 of zeros.json"),
    ],
)
def test_nul_bytes_are_one_line_with_the_row(cli, tables: Path, api: str, name: str, content: bytes, where: str) -> None:
    (tables / name).write_bytes(content)
    one_error_line(cli("run", "service.py:svc", api, "--input-file", name, cwd=tables), where, "NUL byte")


@pytest.mark.parametrize(
    ("api", "name", "content", "where"),
    [
        ("numbers", "latin1.csv", b"a,b\n1,2\n3,4\n" + "5,6 # café\n".encode("latin-1"), "row 3 (line 4 of latin1.csv)"),
        ("frame", "latin1.csv", "a,b\n1,2\nnaïve,4\n".encode("latin-1"), "row 2 (line 3 of latin1.csv)"),
        ("records", "latin1.jsonl", '{"a": 1}\n{"a": "é"}\n'.encode("latin-1"), "line 2 of latin1.jsonl"),
        ("records", "cut.json", '["é"'.encode()[:-2], "line 1 of cut.json"),
    ],
)
def test_invalid_utf8_is_one_line_with_the_row(cli, tables: Path, api: str, name: str, content: bytes, where: str) -> None:
    (tables / name).write_bytes(content)
    one_error_line(cli("run", "service.py:svc", api, "--input-file", name, cwd=tables), where, "not valid UTF-8")


def test_rows_before_a_bad_line_still_count_from_one(cli, tables: Path) -> None:
    rows = "".join(f"{i},{i}\n" for i in range(20_000))
    (tables / "late.csv").write_bytes(b"a,b\n" + rows.encode() + b"1,\xff\n")
    res = cli("run", "service.py:svc", "numbers", "--input-file", "late.csv", "--batch-size", "1000", cwd=tables)
    one_error_line(res, "row 20001 (line 20002 of late.csv)", "not valid UTF-8")


# ---------------------------------------------------------------- scikit-learn's feature-names warning

FRAME_FITTED = textwrap.dedent(
    """
    import mlpack
    from mlpack.io import NumpyNdarray

    runner = mlpack.sklearn.get("iris_df:latest").to_runner()
    svc = mlpack.Service("iris_df", runners=[runner])

    @svc.api(input=NumpyNdarray(), output=NumpyNdarray())
    async def predict(arr):
        return await runner.predict.async_run(arr)
    """
)


def test_feature_names_warning_shows_once_per_process(cli, tmp_path: Path, home: Path) -> None:
    from sklearn import datasets, svm

    frame = datasets.load_iris(as_frame=True)
    mlpack.sklearn.save_model("iris_df", svm.SVC().fit(frame.data, frame.target), signatures={"predict": {"batchable": True}})
    (tmp_path / "service.py").write_text(FRAME_FITTED)
    (tmp_path / "rows.csv").write_text("a,b,c,d\n" + "5.1,3.5,1.4,0.2\n" * 500)
    res = cli("run", "service.py:svc", "predict", "--input-file", "rows.csv", "--batch-size", "20", cwd=tmp_path)
    assert res.returncode == 0 and len(json.loads(res.stdout)) == 500, res.stderr
    assert res.stderr.count("does not have valid feature names") == 1, res.stderr  # 25 chunks, one warning
    with running_server("service.py:svc", home=home, cwd=tmp_path) as server, server.client() as client:
        for _ in range(5):
            assert client.post("/predict", json=[[5.1, 3.5, 1.4, 0.2]]).json() == [0]
        time.sleep(0.2)
        assert server.output().count("does not have valid feature names") == 1, server.output()


def test_feature_names_filter_is_only_for_that_message(saved) -> None:
    import warnings

    mlpack.sklearn.get("iris_clf").to_runner().load()
    theirs = "X does not have valid feature names, but SVC was fitted with feature names"
    with warnings.catch_warnings(record=True) as seen:
        warnings.filterwarnings("always", append=True)  # behind mlpack's filter, in front of the rest

        def warn(text: str, module: str) -> None:
            warnings.warn_explicit(text, UserWarning, f"{module}.py", 1, module=module, registry={})

        warn(theirs, "sklearn.utils.validation")  # scikit-learn's own: mlpack shows it once, itself
        warn(theirs, "mine")  # the same words from user code
        warn("something else", "sklearn.base")  # another scikit-learn warning
    assert [(str(w.message), w.filename) for w in seen] == [(theirs, "mine.py"), ("something else", "sklearn.base.py")]


# ---------------------------------------------------------------- help texts, bundles

ENTRY_COMMANDS = ("list", "get", "delete", "export", "import")
COMMANDS = [[], ["models"], ["bundles"], *([k, c] for k in ("models", "bundles") for c in ENTRY_COMMANDS),
            ["serve"], ["run"], ["build"], ["containerize"], ["deploy", "kubernetes"], ["hub"], ["hub", "serve"],
            ["hub", "list"], ["models", "push"], ["bundles", "pull"], ["models", "trust"]]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "mlpack")
def test_help_texts_are_clean(cli, command: list[str]) -> None:
    res = cli(*command, "--help", env={"COLUMNS": "250", "TERM": "dumb"})
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())  # what it says, however the terminal wraps it
    assert not re.search(r"\S \.(\s|$)", text), text  # a stripped "[...]" left " ." behind
    assert "\\[" not in text, text  # a rich markup escape shown as is
    listing = res.stdout.partition("\nCommands:\n")[2]
    assert not any(line.rstrip().endswith("...") for line in listing.splitlines()), listing  # a summary cut short
    assert "[default: ]" not in text and "[default: (" not in text, text
    if command == ["serve"]:
        assert "[default: 3000]" in text and "[default: 127.0.0.1]" in text and "MLPACK_PORT" in text
    if command == ["run"]:
        assert "[default: 50000]" in text and "[default: stdout]" in text


@pytest.mark.slow
def test_bundle_export_into_a_directory_and_python_versions_agree(cli, saved, tmp_path: Path) -> None:
    import platform

    import yaml

    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "service.py").write_text(PRINTING_SERVICE)
    (proj / "mlpackfile.yaml").write_text('service: "service.py:svc"\ninclude: ["*.py"]\n')
    built = cli("build", str(proj), "-o", "tag")
    assert built.returncode == 0, built.stderr
    tag = built.stdout.strip()
    bundle = mlpack.bundles.get(tag)
    info = yaml.safe_load((bundle.path / "bundle.yaml").read_text())
    version_txt = (bundle.path / "env" / "python" / "version.txt").read_text().strip()
    assert version_txt == info["python"]["version"] == platform.python_version()
    assert version_txt.startswith(info["docker"]["python_version"] + ".")
    assert f"FROM python:{info['docker']['python_version']}-slim" in (bundle.path / "env" / "docker" / "Dockerfile").read_text()
    for _ in range(2):  # a second export replaces the first
        res = cli("bundles", "export", tag, "./exports/", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
    archive = tmp_path / "exports" / f"{tag.replace(':', '-')}.mlbundle"
    assert sorted((tmp_path / "exports").iterdir()) == [archive]
    assert mlpack.bundles.export_bundle(tag, f"{tmp_path}/py/") == tmp_path / "py" / archive.name
    assert cli("bundles", "delete", tag, "-y").returncode == 0
    back = cli("bundles", "import", f"./exports/{archive.name}", cwd=tmp_path)
    assert back.returncode == 0 and back.stdout.strip() == tag, back.stderr
