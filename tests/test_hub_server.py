"""The hub server as a subprocess, driven over its REST API with httpx (real SQLite, files, S3, PostgreSQL)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.hub_fixtures import hub_cli, hub_token, moto_s3, postgres, running_hub  # noqa: F401

API = "/api/v1"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(kind: str, name: str, version: str, files: dict[str, bytes], **extra) -> str:
    body = {
        "name": name,
        "version": version,
        "creation_time": extra.pop("creation_time", "2026-01-01T00:00:00.000000Z"),
        "labels": extra.pop("labels", {}),
        **extra,
        "files": {rel: sha(data) for rel, data in files.items()},
    }
    if kind == "models":
        body.setdefault("module", "mlpack.sklearn")
    return yaml.safe_dump(body, sort_keys=False)


def upload(client, blobs: list[bytes]) -> None:
    for data in blobs:
        r = client.put(f"{API}/blobs/{sha(data)}", content=data)
        assert r.status_code in (200, 201), r.text


def push(client, kind: str, name: str, version: str, files: dict[str, bytes], *, send_blobs: bool = True, **extra):
    """Upload the manifest and files as blobs, then commit; returns the commit response."""
    text = manifest(kind, name, version, files, **extra)
    if send_blobs:
        upload(client, [text.encode(), *files.values()])
    body = {"manifest_text": text, "files": {rel: {"sha256": sha(d), "size": len(d)} for rel, d in files.items()}}
    return client.put(f"{API}/{kind}/{name}/{version}", json=body)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """One hub for the module (tests use their own names); GC without grace so collection shows at once."""
    data = tmp_path_factory.mktemp("hub") / "hub-data"
    token = hub_token(data, "alice")
    reader = hub_token(data, "viewer", read_only=True)
    with running_hub(data, "--gc-grace", "0") as server:
        server.data, server.token, server.reader = data, token, reader
        yield server


def stored_blobs(data: Path) -> set[str]:
    return {p.name for p in (data / "blobs").glob("??/*") if p.is_file()}


def test_tokens_guard_every_call(hub) -> None:
    writer = hub_token(hub.data, "writer")
    reader_token = hub_token(hub.data, "reader", read_only=True)
    with hub.client() as anon:
        r = anon.get(f"{API}/models")
        assert r.status_code == 401 and "Bearer" in r.json()["error"]
    with hub.client("mlph_not-a-real-token") as bad:
        assert bad.get(f"{API}/models").status_code == 401
    with hub.client(reader_token) as reader:
        assert reader.get(f"{API}/models").status_code == 200
        assert reader.get(f"{API}/whoami").json() == {**reader.get(f"{API}/whoami").json(), "name": "reader", "read_only": True}
        r = reader.put(f"{API}/blobs/{sha(b'x')}", content=b"x")
        assert r.status_code == 403 and "read-only" in r.json()["error"]
        r = push(reader, "models", "tok", "v1", {"a.bin": b"a"}, send_blobs=False)
        assert r.status_code == 403
        assert reader.delete(f"{API}/models/tok/v1").status_code == 403
    with hub.client(writer) as w:
        assert w.get(f"{API}/whoami").json()["read_only"] is False
    listing = hub_cli("hub", "token", "list", "--data", str(hub.data), "-o", "json").stdout
    rights = {t["name"]: t["read_only"] for t in yaml.safe_load(listing)}
    assert rights["writer"] is False and rights["reader"] is True
    assert writer not in listing and reader_token not in listing
    stored = b"".join(p.read_bytes() for p in hub.data.glob("hub.db*")).decode("latin-1")
    assert writer not in stored and hashlib.sha256(writer.encode()).hexdigest() in stored  # stored hashed only
    hub_cli("hub", "token", "revoke", "reader", "--data", str(hub.data))
    with hub.client(reader_token) as revoked:
        assert revoked.get(f"{API}/models").status_code == 401
    again = hub_cli("hub", "token", "revoke", "reader", "--data", str(hub.data), check=False)
    assert again.returncode != 0 and "no token named" in again.stderr


def test_push_list_get_and_download(hub) -> None:
    big = bytes(range(256)) * 12_000  # 3 MB: several upload chunks
    files = {"saved_model.joblib": big, "custom_objects.pkl": b"extra"}
    with hub.client(hub.token) as c:
        digests = [sha(d) for d in files.values()]
        assert c.post(f"{API}/blobs/missing", json={"sha256": digests}).json() == {"missing": sorted(digests)}
        r = push(c, "models", "ls_iris", "v1", files, labels={"team": "ls-risk"}, creation_time="2026-01-01T00:00:00Z")
        assert r.status_code == 201, r.text
        assert c.post(f"{API}/blobs/missing", json={"sha256": digests}).json() == {"missing": []}
        small = {"saved_model.joblib": b"small"}
        assert push(c, "models", "ls_iris", "v2", small, creation_time="2026-02-01T00:00:00Z").status_code == 201
        assert (
            push(
                c, "models", "lsxiother", "v1", {"m.bin": b"o"}, labels={"team": "ls-ops"}, creation_time="2026-03-01T00:00:00Z"
            ).status_code
            == 201
        )

        def tags(**params) -> list[str]:
            return [i["tag"] for i in c.get(f"{API}/models", params={"q": "ls", **params}).json()["items"]]

        listing = c.get(f"{API}/models", params={"q": "ls"}).json()
        assert listing["total"] == 3 and tags() == ["lsxiother:v1", "ls_iris:v2", "ls_iris:v1"]
        assert {i["pushed_by"] for i in listing["items"]} == {"alice"}
        assert tags(q="ls_i", order="asc") == ["ls_iris:v1", "ls_iris:v2"]  # '_' is literal, not a LIKE wildcard
        assert tags(label="team=ls-risk") == ["ls_iris:v1"]
        assert c.get(f"{API}/models", params=[("label", "team=ls-risk"), ("label", "team=ls-ops")]).json()["total"] == 0
        assert tags(sort="size", limit=1) == ["ls_iris:v1"]
        page = c.get(f"{API}/models", params={"q": "ls", "limit": 2, "offset": 2}).json()
        assert page["total"] == 3 and [i["tag"] for i in page["items"]] == ["ls_iris:v1"]
        assert c.get(f"{API}/models", params={"label": "nokey"}).status_code == 400
        assert c.get(f"{API}/models", params={"sort": "random"}).status_code == 400
        assert c.get(f"{API}/bundles", params={"q": "ls"}).json()["total"] == 0
        assert c.get(f"{API}/widgets").status_code == 404

        versions = c.get(f"{API}/models/ls_iris").json()
        assert versions["latest"] == "v2" and [v["version"] for v in versions["versions"]] == ["v2", "v1"]
        entry = c.get(f"{API}/models/ls_iris/v1").json()
        assert entry["files"] == {rel: {"sha256": sha(d), "size": len(d)} for rel, d in files.items()}
        assert entry["manifest"]["labels"] == {"team": "ls-risk"} and entry["labels"] == {"team": "ls-risk"}
        assert entry["manifest_sha256"] == sha(entry["manifest_text"].encode()) and entry["used_by"] == []
        assert entry["size"] == len(big) + len(b"extra") + len(entry["manifest_text"].encode())
        assert c.get(f"{API}/models/ls_iris/latest").json()["version"] == "v2"
        assert c.get(f"{API}/models/ls_iris/v").status_code == 400  # ambiguous prefix
        assert c.get(f"{API}/models/ls_iris/nope").status_code == 404

        r = c.get(f"{API}/models/ls_iris/v1/files/saved_model.joblib")
        assert r.content == big and r.headers["x-sha256"] == sha(big)
        assert c.get(f"{API}/models/ls_iris/v1/files/model.yaml").text == entry["manifest_text"]
        assert c.get(f"{API}/blobs/{sha(b'extra')}").content == b"extra"
        assert c.get(f"{API}/models/ls_iris/v1/files/missing.bin").status_code == 404


def test_commit_needs_every_blob(hub) -> None:
    files = {"a.bin": b"first", "b.bin": b"second"}
    with hub.client(hub.token) as c:
        text = manifest("models", "needs", "v1", files)
        upload(c, [text.encode(), b"first"])
        r = push(c, "models", "needs", "v1", files, send_blobs=False)
        assert r.status_code == 409 and r.json()["missing"] == [sha(b"second")]
        assert c.get(f"{API}/models", params={"q": "needs"}).json()["total"] == 0  # nothing half-there
        assert c.get(f"{API}/models/needs/v1").status_code == 404
        upload(c, [b"second"])
        assert push(c, "models", "needs", "v1", files, send_blobs=False).status_code == 201


def test_tampered_upload_is_refused(hub) -> None:
    with hub.client(hub.token) as c:
        claimed = sha(b"the real content")
        r = c.put(f"{API}/blobs/{claimed}", content=b"something else")
        assert r.status_code == 422 and claimed in r.json()["error"]
        assert c.post(f"{API}/blobs/missing", json={"sha256": [claimed]}).json()["missing"] == [claimed]
        assert claimed not in stored_blobs(hub.data) and sha(b"something else") not in stored_blobs(hub.data)
        assert not list((hub.data / "blobs" / ".tmp").iterdir())
        assert c.put(f"{API}/blobs/not-a-digest", content=b"x").status_code == 400


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"files": {"../escape": {"sha256": "0" * 64, "size": 1}}}, "leaves the entry"),
        ({"files": {"/abs": {"sha256": "0" * 64, "size": 1}}}, "leaves the entry"),
        ({"files": {}}, "does not send"),
        ({"manifest_text": "name: other\nversion: v1\nfiles: {}\n"}, "not m:v1"),
        ({"manifest_text": "a: &x [1]\nb: *x\n"}, "aliases"),
        ({"manifest_text": "name: [unclosed\n"}, "not valid YAML"),
    ],
)
def test_commit_validates_the_push(hub, change: dict, expected: str) -> None:
    files = {"a.bin": b"a"}
    text = manifest("models", "m", "v1", files)
    body = {"manifest_text": text, "files": {"a.bin": {"sha256": sha(b"a"), "size": 1}}, **change}
    with hub.client(hub.token) as c:
        upload(c, [text.encode(), b"a"])
        r = c.put(f"{API}/models/m/v1", json=body)
        assert r.status_code == 400 and expected in r.json()["error"], r.text
        assert c.put(f"{API}/models/Bad..Name/v1", json=body).status_code == 400


def test_wrong_size_is_refused(hub) -> None:
    with hub.client(hub.token) as c:
        text = manifest("models", "sized", "v1", {"a.bin": b"abc"})
        upload(c, [text.encode(), b"abc"])
        r = c.put(f"{API}/models/sized/v1", json={"manifest_text": text, "files": {"a.bin": {"sha256": sha(b"abc"), "size": 99}}})
        assert r.status_code == 400 and "bytes" in r.json()["error"]


def test_tags_are_immutable_and_one_concurrent_push_wins(hub) -> None:
    with hub.client(hub.token) as c:
        assert push(c, "models", "fixed", "v1", {"a.bin": b"a"}).status_code == 201
        r = push(c, "models", "fixed", "v1", {"a.bin": b"changed"})
        assert r.status_code == 409 and "already on the hub" in r.json()["error"]
        contenders = [{"a.bin": f"content {i}".encode()} for i in range(8)]
        for files in contenders:  # blobs first, so every commit is valid and only the tag collides
            upload(c, [manifest("models", "race", "v1", files).encode(), *files.values()])
    results: list[int] = []
    barrier = threading.Barrier(len(contenders))

    def commit(files: dict[str, bytes]) -> None:
        with hub.client(hub.token) as client:
            barrier.wait()
            results.append(push(client, "models", "race", "v1", files, send_blobs=False).status_code)

    threads = [threading.Thread(target=commit, args=(f,)) for f in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] + [409] * (len(contenders) - 1)
    with hub.client(hub.token) as c:
        winner = c.get(f"{API}/models/race/v1").json()
        assert winner["files"]["a.bin"]["sha256"] in {sha(f["a.bin"]) for f in contenders}
        assert c.get(f"{API}/models", params={"q": "race"}).json()["total"] == 1


def test_bundles_need_their_models_and_deletes_respect_use(hub) -> None:
    model_files = {"saved_model.joblib": b"model bytes", "only_in_model.bin": b"unique to the model"}
    bundle_files = {"src/service.py": b"print('hi')", "models/iris_clf/v1/saved_model.joblib": b"model bytes"}
    uses = {"models": [{"tag": "iris_clf:v1", "module": "mlpack.sklearn"}], "service": "service.py:svc"}
    with hub.client(hub.token) as c:
        r = push(c, "bundles", "iris_svc", "b1", bundle_files, **uses)
        assert r.status_code == 409 and r.json()["missing_models"] == ["iris_clf:v1"]
        assert push(c, "models", "iris_clf", "v1", model_files).status_code == 201
        assert push(c, "bundles", "iris_svc", "b1", bundle_files, **uses).status_code == 201
        assert c.get(f"{API}/models/iris_clf/v1").json()["used_by"] == ["iris_svc:b1"]
        assert c.get(f"{API}/bundles/iris_svc/b1").json()["models"] == ["iris_clf:v1"]

        r = c.delete(f"{API}/models/iris_clf/v1")
        assert r.status_code == 409 and r.json()["used_by"] == ["iris_svc:b1"] and "used by" in r.json()["error"]
        assert c.get(f"{API}/models/iris_clf/v1").status_code == 200
        before = stored_blobs(hub.data)
        r = c.delete(f"{API}/models/iris_clf/v1", params={"force": "true"})
        assert r.status_code == 200 and r.json()["deleted"] == "iris_clf:v1"
        assert c.get(f"{API}/models/iris_clf/v1").status_code == 404
        # the model's own blobs are collected; the one the bundle shares stays, and the bundle still downloads
        gone = before - stored_blobs(hub.data)
        model_manifest = manifest("models", "iris_clf", "v1", model_files).encode()
        assert {sha(b"unique to the model"), sha(model_manifest)} <= gone
        assert sha(b"model bytes") in stored_blobs(hub.data)  # still referenced by the bundle
        got = c.get(f"{API}/bundles/iris_svc/b1/files/models/iris_clf/v1/saved_model.joblib")
        assert got.content == b"model bytes"
        assert c.delete(f"{API}/bundles/iris_svc/b1").status_code == 200
        bundle_manifest = manifest("bundles", "iris_svc", "b1", bundle_files, **uses).encode()
        left = stored_blobs(hub.data)
        assert not {sha(d) for d in [bundle_manifest, *bundle_files.values()]} & left
        assert c.delete(f"{API}/bundles/iris_svc/b1").status_code == 404


def test_recently_touched_blobs_survive_collection(tmp_path: Path) -> None:
    """With the default grace period, a blob a push was just told about is kept even if unreferenced."""
    data = tmp_path / "hub"
    token = hub_token(data, "alice")
    with running_hub(data) as server, server.client(token) as c:
        upload(c, [b"pending push"])
        assert push(c, "models", "m", "v1", {"a.bin": b"a"}).status_code == 201
        assert c.delete(f"{API}/models/m/v1").json()["blobs_collected"] == 0
        assert sha(b"pending push") in stored_blobs(data)


def test_probes_metrics_and_docs(hub) -> None:
    from openapi_spec_validator import validate

    with hub.client() as c:
        assert c.get("/livez").text == "ok" and c.get("/readyz").text == "ready"
        spec = c.get("/docs.json").json()
        validate(spec)
        assert "/api/v1/{kind}/{name}/{version}" in spec["paths"]
        page = c.get("/docs").text
        assert "/docs/assets/swagger-ui-bundle.js" in page and "http" not in page.split("<script>")[0].replace("http-equiv", "")
        assert c.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
        line = 'mlpack_hub_requests_total{endpoint="GET /api/v1/{kind}",http_status="401"} '

        def unauthorized_lists() -> float:
            found = [ln for ln in c.get("/metrics").text.splitlines() if ln.startswith(line)]
            return float(found[0].rsplit(" ", 1)[1]) if found else 0.0

        before = unauthorized_lists()
        c.get(f"{API}/models")
        c.get(f"{API}/bundles")
        assert unauthorized_lists() == before + 2


def test_readyz_reports_storage_trouble(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    with running_hub(data) as server, server.client() as c:
        (data / "blobs" / ".tmp").rmdir()
        r = c.get("/readyz")
        assert r.status_code == 503 and "storage" in r.text


@pytest.mark.slow
def test_s3_storage_against_moto(tmp_path: Path, moto_s3) -> None:  # noqa: F811
    bucket = moto_s3.new_bucket()
    data = tmp_path / "hub"
    token = hub_token(data, "alice")
    large = bytes(range(251)) * 80_000  # 20 MB: a multipart upload of three parts
    files = {"saved_model.ubj": large, "small.txt": b"small"}
    args = ("--storage", f"s3://{bucket}/team", "--s3-endpoint-url", moto_s3.endpoint, "--gc-grace", "0")
    with running_hub(data, *args, env=moto_s3.env) as server, server.client(token) as c:
        assert push(c, "models", "xgb", "v1", files).status_code == 201
        text = manifest("models", "xgb", "v1", files).encode()
        expected = {f"team/blobs/{d[:2]}/{d}" for d in (sha(large), sha(b"small"), sha(text))}
        assert set(moto_s3.keys(bucket)) == expected
        assert not (data / "blobs").exists()  # nothing on local disk
        assert c.get(f"{API}/models/xgb/v1/files/saved_model.ubj").content == large
        r = c.put(f"{API}/blobs/{sha(b'real')}", content=large)  # tampered large upload: aborted multipart
        assert r.status_code == 422
        assert set(moto_s3.keys(bucket)) == expected
        assert moto_s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        assert c.delete(f"{API}/models/xgb/v1").status_code == 200
        assert moto_s3.keys(bucket) == []


@pytest.mark.slow
def test_two_hubs_on_one_postgres_and_bucket(tmp_path: Path, moto_s3, postgres) -> None:  # noqa: F811
    bucket = moto_s3.new_bucket()
    db = postgres.new_database()
    token = hub_token(tmp_path / "a", "alice", db=db)
    common = ("--db", db, "--storage", f"s3://{bucket}/hub", "--s3-endpoint-url", moto_s3.endpoint)
    with (
        running_hub(tmp_path / "a", *common, env=moto_s3.env) as a,
        running_hub(tmp_path / "b", *common, env=moto_s3.env) as b,
        a.client(token) as ca,
        b.client(token) as cb,
    ):
        assert push(ca, "models", "shared", "v1", {"w.bin": b"weights"}).status_code == 201
        entry = cb.get(f"{API}/models/shared/v1").json()
        assert entry["pushed_by"] == "alice" and cb.get(f"{API}/models/shared/v1/files/w.bin").content == b"weights"
        assert cb.post(f"{API}/blobs/missing", json={"sha256": [sha(b"weights")]}).json()["missing"] == []

        contenders = [({"w.bin": f"race {i}".encode()}, ca if i % 2 else cb) for i in range(6)]
        for files, client in contenders:
            upload(client, [manifest("models", "race", "v1", files).encode(), *files.values()])
        results: list[int] = []
        barrier = threading.Barrier(len(contenders))

        def commit(files: dict[str, bytes], server) -> None:
            with server.client(token) as client:
                barrier.wait()
                results.append(push(client, "models", "race", "v1", files, send_blobs=False).status_code)

        threads = [threading.Thread(target=commit, args=(f, a if cl is ca else b)) for f, cl in contenders]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [201] + [409] * (len(contenders) - 1)

        assert cb.delete(f"{API}/models/shared/v1").status_code == 200
        assert ca.get(f"{API}/models/shared/v1").status_code == 404
        assert ca.get(f"{API}/models").json()["total"] == 1


def test_interrupted_upload_leaves_nothing(hub) -> None:
    """A client that dies mid-blob leaves no blob and no temporary file behind."""
    import socket
    import time
    from urllib.parse import urlsplit

    claimed = sha(b"never finished")
    url = urlsplit(hub.url)
    with socket.create_connection((url.hostname, url.port)) as sock:
        head = (
            f"PUT {API}/blobs/{claimed} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {hub.token}\r\n"
            f"Content-Length: {10 << 20}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        sock.sendall(head.encode() + b"x" * (3 << 20))
        tmp = hub.data / "blobs" / ".tmp"
        deadline = time.monotonic() + 30
        while not list(tmp.iterdir()) and time.monotonic() < deadline:  # the server is writing it
            time.sleep(0.05)
        assert list(tmp.iterdir()), "the upload never started"
    deadline = time.monotonic() + 30
    while list(tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp.iterdir()) == []
    assert claimed not in stored_blobs(hub.data)
    with hub.client(hub.token) as c:
        assert c.post(f"{API}/blobs/missing", json={"sha256": [claimed]}).json()["missing"] == [claimed]


def test_uploads_arrive_intact_however_they_are_framed(hub) -> None:
    """The hub's body-receiving protocol (no copies) loses and mixes nothing: a body sent with its
    headers, one in thousands of tiny chunks that arrive together, and pipelined requests."""
    import http.client
    import random
    import socket
    from urllib.parse import urlsplit

    rng = random.Random(5)
    whole = rng.randbytes(70_000)  # just over uvicorn's 64 KiB pause threshold
    chunked = rng.randbytes(3 << 20)
    first, second = rng.randbytes(300_000), rng.randbytes(5)
    url = urlsplit(hub.url)

    def head(data: bytes, framing: str) -> bytes:
        return (f"PUT {API}/blobs/{sha(data)} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {hub.token}\r\n"
                f"Content-Type: application/octet-stream\r\n{framing}\r\n\r\n").encode()

    pieces, at = [], 0
    while at < len(chunked):
        n = rng.randrange(1, 4000)
        pieces.append(b"%x\r\n%s\r\n" % (len(chunked[at : at + n]), chunked[at : at + n]))
        at += n
    wire = (head(whole, f"Content-Length: {len(whole)}") + whole
            + head(chunked, "Transfer-Encoding: chunked") + b"".join(pieces) + b"0\r\n\r\n"
            + head(first, f"Content-Length: {len(first)}") + first
            + head(second, f"Content-Length: {len(second)}") + second)

    class Reader:  # http.client reads each pipelined answer from the one buffered stream, left open
        def __init__(self, stream) -> None:  # noqa: ANN001
            self.stream = stream

        def makefile(self, _mode: str):  # noqa: ANN202
            return self

        def __getattr__(self, name: str):  # noqa: ANN204
            return getattr(self.stream, name)

        def close(self) -> None:
            pass

    with socket.create_connection((url.hostname, url.port)) as sock, sock.makefile("rb") as stream:
        sock.sendall(wire)
        for data in (whole, chunked, first, second):
            response = http.client.HTTPResponse(Reader(stream))  # type: ignore[arg-type]
            response.begin()
            body = response.read()
            assert response.status == 201, body
            assert yaml.safe_load(body) == {"sha256": sha(data), "size": len(data), "created": True}
    with hub.client(hub.token) as c:
        for data in (whole, chunked, first, second):
            assert c.get(f"{API}/blobs/{sha(data)}").content == data


def test_steady_allocator_takes_on_glibc() -> None:
    import platform

    from mlpack.hub.server.protocol import steady_allocator

    assert steady_allocator() is (platform.libc_ver()[0] == "glibc")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--db", "nonsense"), "is not a database URL"),
        (("--db", "postgresql://user:s3cret@127.0.0.1:1/hub"), "cannot use the hub database"),
        (("--storage", "ftp://somewhere"), "unsupported --storage"),
    ],
)
def test_serve_refuses_bad_settings_in_one_line(tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    proc = hub_cli("hub", "serve", "--data", str(tmp_path / "hub"), "--port", "1", *args, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and expected in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "s3cret" not in proc.stderr


def test_readme_server_commands(tmp_path: Path) -> None:
    """The README's token and serve commands, as written (the port aside), on the default data dir."""
    env = {"MLPACK_HOME": str(tmp_path / "home")}
    created = hub_cli("hub", "token", "create", "alice", env=env)
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("mlph_") and "shown only now" in created.stderr
    hub_cli("hub", "token", "create", "ci", "--read-only", env=env)
    table = hub_cli("hub", "token", "list", env=env).stdout
    assert [line.split()[:2] for line in table.splitlines()[1:]] == [["alice", "read-write"], ["ci", "read-only"]]
    hub_cli("hub", "token", "revoke", "ci", env=env)
    assert "ci" not in hub_cli("hub", "token", "list", env=env).stdout.split()
    assert (tmp_path / "home" / "hub" / "hub.db").is_file()
    with running_hub(None, env=env) as server, server.client(token) as c:
        assert c.get(f"{API}/models", params={"q": "iris"}).json()["total"] == 0
        assert c.get(f"{API}/whoami").json()["name"] == "alice"


def test_server_never_imports_serve_or_runner(tmp_path: Path) -> None:
    """House rule: the hub server (its app with the web UI mounted) stays clear of the serving stack."""
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from mlpack.hub.server.app import create_app;"
        "from mlpack.hub.server.config import HubConfig;"
        f"app = create_app(HubConfig(data_dir=Path({str(tmp_path / 'hub')!r})));"
        "print(sorted(m for m in sys.modules if m in ('mlpack.serve', 'mlpack.runner', 'mlpack.batching', 'sklearn')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_collection_never_breaks_a_concurrent_push(tmp_path: Path, moto_s3, postgres) -> None:  # noqa: F811
    """Two hubs, no grace period: one keeps deleting (collecting) while the other pushes entries that
    share a blob with them. A commit either refuses (409 missing: upload again) or yields an entry
    whose every file downloads intact; never an entry pointing at a collected blob."""
    import time

    bucket = moto_s3.new_bucket()
    db = postgres.new_database()
    token = hub_token(tmp_path / "a", "alice", db=db)
    common = ("--db", db, "--storage", f"s3://{bucket}/hub", "--s3-endpoint-url", moto_s3.endpoint, "--gc-grace", "0")
    shared = b"weights both sides use" * 1000
    failures: list[str] = []
    committed: list[str] = []

    def put_blobs(c, blobs: list[bytes]) -> None:
        for data in blobs:
            for _ in range(50):
                r = c.put(f"{API}/blobs/{sha(data)}", content=data)
                if r.status_code != 503:  # 503: being collected right now; send it again
                    break
                time.sleep(0.05)
            assert r.status_code in (200, 201), r.text

    def pusher(server) -> None:
        with server.client(token) as c:
            for i in range(12):
                files = {"shared.bin": shared, "own.bin": f"own {i}".encode()}
                text = manifest("models", "gc-push", f"v{i}", files)
                for _ in range(20):
                    put_blobs(c, [text.encode(), *files.values()])
                    r = push(c, "models", "gc-push", f"v{i}", files, send_blobs=False)
                    if r.status_code != 409:
                        break
                if r.status_code != 201:
                    failures.append(f"v{i}: {r.status_code} {r.text}")
                    continue
                committed.append(f"v{i}")
                for rel, data in files.items():
                    got = c.get(f"{API}/models/gc-push/v{i}/files/{rel}")
                    if got.status_code != 200 or got.content != data:
                        failures.append(f"v{i}/{rel}: {got.status_code} after commit")
                assert c.delete(f"{API}/models/gc-push/v{i}").status_code == 200  # shared.bin is unreferenced again

    def deleter(server) -> None:
        with server.client(token) as c:
            for i in range(12):
                files = {"shared.bin": shared}
                put_blobs(c, [manifest("models", "gc-churn", f"v{i}", files).encode(), shared])
                if push(c, "models", "gc-churn", f"v{i}", files, send_blobs=False).status_code == 201:
                    assert c.delete(f"{API}/models/gc-churn/v{i}").status_code == 200

    def guarded(fn, server) -> None:
        try:
            fn(server)
        except Exception as exc:  # noqa: BLE001 - a thread's failure fails the test
            failures.append(f"{fn.__name__}: {exc!r}")

    with (
        running_hub(tmp_path / "a", *common, env=moto_s3.env) as a,
        running_hub(tmp_path / "b", *common, env=moto_s3.env) as b,
    ):
        threads = [threading.Thread(target=guarded, args=(pusher, a)), threading.Thread(target=guarded, args=(deleter, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == [] and len(committed) == 12
        with a.client(token) as c:  # everything deleted: with no grace, nothing stays in the bucket
            c.delete(f"{API}/models/none/v0")
            assert c.get(f"{API}/models", params={"q": "gc-"}).json()["total"] == 0
        assert moto_s3.keys(bucket) == []
