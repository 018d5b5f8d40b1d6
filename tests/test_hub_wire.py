"""The hub's fast transfer path keeps its guarantees: bytes changed in transit are refused and
leave nothing visible, short bodies are errors, stale keep-alive connections are replaced, and
``HashingFile`` (hash and write in parallel threads) stores and hashes exactly what it is given.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.hub_fixtures import answering_server, flipping_relay
from tests.test_hub_push_pull import HubProc, Store, hub, save_big, stores  # noqa: F401


def test_hashing_file_writes_and_hashes_exactly_its_input(tmp_path: Path) -> None:
    from mlpack.hub.hashfile import WRITE_PIECE, HashingFile

    rng = __import__("random").Random(7)
    batches = [[os.urandom(rng.randrange(1, 3 * WRITE_PIECE)) for _ in range(rng.randrange(1, 5))] for _ in range(9)]
    batches.append([b"x"] * 700)  # many tiny parts in one batch
    expected = b"".join(b"".join(batch) for batch in batches)
    for parallel in (True, False):
        path = tmp_path / f"out-{parallel}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT)
        try:
            with HashingFile(fd, depth=2, parallel=parallel) as out:
                for batch in batches:
                    out.write([memoryview(bytearray(p)) for p in batch] + [b""])
                digest, size = out.finish()
        finally:
            os.close(fd)
        assert path.read_bytes() == expected
        assert (digest, size) == (hashlib.sha256(expected).hexdigest(), len(expected))


def test_hashing_file_reports_a_failed_write(tmp_path: Path) -> None:
    from mlpack.hub.hashfile import HashingFile

    path = tmp_path / "f"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)  # writing to it fails with EBADF
    try:
        with HashingFile(fd, depth=1) as out, pytest.raises(OSError):
            for _ in range(4):
                out.write([b"a" * 1024])
            out.finish()
    finally:
        os.close(fd)


def test_a_short_or_mislabelled_download_is_an_error(tmp_path: Path) -> None:
    """A hub that announces more bytes than it sends, then closes, is refused."""
    from mlpack.exceptions import IntegrityError
    from mlpack.hub.client import HubClient, HubUnreachable
    from mlpack.hub.client_config import HubSettings

    body = os.urandom(100_000)
    digest = hashlib.sha256(body).hexdigest()

    def answer(_method: str, _path: str) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Length": str(len(body) + 5), "Connection": "close"}, body

    dest = tmp_path / "blob"
    with answering_server(answer) as (url, _), HubClient(HubSettings(url, "t")) as client:
        with pytest.raises(HubUnreachable, match="closed the connection after 100000 of 100005 bytes|broke"):
            client.download_blob(digest, dest, len(body) + 5)
        with pytest.raises(IntegrityError, match="announced 100005 bytes"):
            client.download_blob(digest, dest, len(body))


def test_a_closed_idle_connection_is_replaced(tmp_path: Path) -> None:
    """The hub dropped the kept-alive connection between two calls: the second still succeeds."""
    from mlpack.hub.client import HubClient
    from mlpack.hub.client_config import HubSettings

    def answer(_method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "application/json"}, json.dumps({"path": path}).encode()

    with answering_server(answer, close_after_each=True) as (url, seen), HubClient(HubSettings(url, "t")) as client:
        for i in range(3):
            assert client.entry("models", "m", f"v{i}") == {"path": f"/api/v1/models/m/v{i}"}
    assert seen == [f"GET /api/v1/models/m/v{i}" for i in range(3)]


@pytest.mark.slow
def test_a_byte_flipped_in_transit_is_refused_both_ways(hub: HubProc, stores) -> None:  # noqa: F811
    """Through a relay that flips one byte of a 3 MB blob: the push and the pull are refused, nothing is visible."""
    a, b, token = stores
    tag = save_big(a, 3)
    name, version = tag.split(":")
    big = yaml.safe_load((a.home / "models" / name / version / "model.yaml").read_text())["files"]["custom_objects.pkl"]
    port = urlsplit(hub.url).port
    assert port is not None
    with flipping_relay(port, up_at=1_000_000) as relay:
        res = a("models", "push", tag, MLPACK_HUB_URL=relay)
    assert res.returncode != 0 and "rejected uploading custom_objects.pkl" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    with hub.api(token) as api:
        assert api.get("/models").json()["total"] == 0
        assert big in api.post("/blobs/missing", json={"sha256": [big]}).json()["missing"]
    assert not any((hub.data / "blobs" / ".tmp").iterdir())

    a("models", "push", tag, check=True)  # straight to the hub: it goes through
    with flipping_relay(port, down_at=1_000_000) as relay:
        res = b("models", "pull", tag, MLPACK_HUB_URL=relay)
    assert res.returncode != 0 and "does not match its sha256" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert b.entries("models") == [] and b.visible_dirs("models") == []
    assert not any((b.home / ".tmp").iterdir())
    b("models", "pull", tag, check=True)
    b.py(f"import mlpack; mlpack.models.get({tag!r}).verify()")


def test_pull_reuses_fresh_files_as_they_are_and_checks_the_others(tmp_path: Path) -> None:
    """A file this pull verified on receipt is copied without a second hash pass (its bytes are
    taken as they are, fsynced); a file from an entry already in the store is hashed again, and
    downloaded instead when it no longer matches."""
    from mlpack.hub.transfer import _fill, _Sources, no_progress

    good, stale = b"verified on receipt", b"changed on disk since"
    fresh_file, local_file = tmp_path / "fresh.bin", tmp_path / "local.bin"
    fresh_file.write_bytes(good)
    local_file.write_bytes(stale)
    digest_fresh = hashlib.sha256(b"what the hub sent").hexdigest()  # not the file's: proves no re-hash
    digest_local = hashlib.sha256(b"the real content").hexdigest()
    downloads: list[str] = []

    class Client:
        def download_blob(self, digest: str, dest: Path, size: int, advance) -> None:  # noqa: ANN001
            downloads.append(digest)
            dest.write_bytes(b"the real content")

    staged = tmp_path / "staged"
    staged.mkdir()
    sources = _Sources({digest_fresh: fresh_file, digest_local: local_file}, {digest_fresh})
    files = {"a.bin": (digest_fresh, len(good)), "sub/b.bin": (digest_local, 16), "c.bin": (digest_local, 16)}
    blobs, fetched, copied = _fill(Client(), staged, files, sources, no_progress, "pull model m:v")  # type: ignore[arg-type]
    assert (staged / "a.bin").read_bytes() == good
    assert (staged / "sub" / "b.bin").read_bytes() == (staged / "c.bin").read_bytes() == b"the real content"
    assert downloads == [digest_local]  # once: c.bin is then copied from the fresh download
    assert (blobs, fetched, copied) == (1, 16, 2)
