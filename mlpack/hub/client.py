"""A thin, typed client of the hub's REST API (``/api/v1``) over one kept-alive connection.

Every HTTP failure becomes one ``MlpackError`` with a message that names the hub and the fix;
the token never appears in a message. Blobs stream in both directions with bounded memory:
uploads go from the file to the socket with ``sendfile`` (the hub hashes what it receives
and refuses a mismatch), downloads are read into a few reused buffers that one thread hashes
while another writes them (``HashingFile``), and are fsynced once.
"""

from __future__ import annotations

import http.client
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..exceptions import AlreadyExists, BadInput, IntegrityError, InUse, MlpackError, NotFound
from .client_config import HubSettings
from .hashfile import HashingFile
from .wire import Reply, ReplyTooLarge, Wire, read_reply, sendfile_body

CHUNK = 1 << 20  # local file copies
DOWNLOAD_BUFFER = 2 << 20  # bytes per read from the socket into a reused buffer
DOWNLOAD_DEPTH = 3  # buffers being hashed or written while the next one is read
MISSING_BATCH = 1000  # sha256s per ``blobs/missing`` call
Advance = Callable[[int], None]


class HubError(MlpackError):
    """The hub answered with an error the client cannot recover from."""

    exit_code = 4


class HubUnreachable(HubError):
    """No HTTP answer from the hub (refused, DNS, timeout, TLS)."""


class HubAuthError(HubError):
    """The hub refused the token (401) or its rights (403)."""

    exit_code = 5


class HubBusy(HubError):
    """503: the hub asks to try again (e.g. the blob is being garbage-collected right now)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MissingBlobs(HubError):
    """A commit named blobs the hub does not hold (409 with ``missing``)."""

    def __init__(self, message: str, missing: Sequence[str]) -> None:
        super().__init__(message)
        self.missing = list(missing)


def _error_text(reply: Reply) -> str:
    try:
        body = reply.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    text = reply.text.strip().splitlines()
    return text[0][:200] if text else reply.reason


class HubClient:
    """Calls to one hub with one token; use as a context manager to close connections."""

    def __init__(self, settings: HubSettings, *, timeout: float = 60.0) -> None:
        self.settings = settings
        self.url = settings.url
        self._wire = Wire(
            settings.url,
            {"Authorization": f"Bearer {settings.token}", "User-Agent": "mlpack-hub-client", "Accept": "*/*"},
            timeout,
        )

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._wire.close()

    # -- plumbing --------------------------------------------------------------------------
    def _api(self, path: str, params: Any = None) -> str:
        return self._wire.target("/api/v1" + path, params)

    def _unreachable(self, exc: BaseException, what: str) -> HubUnreachable:
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return HubUnreachable(f"hub {self.url} did not answer in time ({type(exc).__name__}) while {what}")
        return HubUnreachable(
            f"cannot reach hub {self.url} while {what}: {exc or type(exc).__name__}; is it running? check the URL"
        )

    def _send(self, method: str, path: str, *, what: str, params: Any = None, json: Any = None) -> Reply:
        """One request answered in full; an HTTP error becomes the matching ``MlpackError``."""
        try:
            reply = self._wire.request(method, self._api(path, params), json=json)
        except ReplyTooLarge as exc:
            raise HubError(f"hub {self.url} sent an {exc} while {what}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc, what) from exc
        if reply.status >= 400:
            self._raise(reply, what)
        return reply

    def _open(self, method: str, path: str, *, what: str, **kwargs: Any) -> http.client.HTTPResponse:
        """A request whose successful answer's body the caller reads (and closes)."""
        try:
            response = self._wire.send(method, self._api(path), **kwargs)
            if response.status < 400:
                return response
            reply = read_reply(response)
        except ReplyTooLarge as exc:
            raise HubError(f"hub {self.url} sent an {exc} while {what}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc, what) from exc
        self._raise(reply, what)
        raise AssertionError("unreachable")  # pragma: no cover

    def _raise(self, response: Reply, what: str) -> None:
        status, text = response.status, _error_text(response)
        if status == 401:
            raise HubAuthError(
                f"hub {self.url} refused the token ({text}) while {what}; run `mlpack hub login {self.url} --token TOKEN`"
            )
        if status == 403:
            raise HubAuthError(f"hub {self.url} does not allow {what} with this token: {text}")
        if status == 404:
            raise NotFound(f"{text} (hub {self.url})")
        if status == 409:
            try:
                missing = response.json().get("missing")
            except (ValueError, AttributeError):
                missing = None
            if missing:
                raise MissingBlobs(f"hub {self.url} lacks {len(missing)} blob(s) while {what}", missing)
            if "in use" in text or "used by" in text:
                raise InUse(f"{text} (hub {self.url})")
            raise AlreadyExists(f"{text} (hub {self.url})")
        if status == 503:
            try:
                retry_after = min(30.0, float(response.headers.get("retry-after", "1")))
            except ValueError:
                retry_after = 1.0
            raise HubBusy(f"hub {self.url} is busy while {what}: {text}; try again", retry_after)
        if status in (400, 413, 422):
            raise BadInput(f"hub {self.url} rejected {what}: {text}")
        raise HubError(f"hub {self.url} failed while {what}: HTTP {status}: {text}")

    def whoami(self) -> dict[str, Any]:
        """The token's name and rights, as the hub sees them."""
        return self._send("GET", "/whoami", what="checking the token").json()

    # -- catalog ---------------------------------------------------------------------------
    def list(
        self,
        kind: str,
        *,
        q: str | None = None,
        labels: Mapping[str, str] | None = None,
        sort: str | None = None,
        order: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> dict[str, Any]:
        params: list[tuple[str, str]] = [(k, str(v)) for k, v in
                                         (("q", q), ("sort", sort), ("order", order), ("limit", limit), ("offset", offset))
                                         if v not in (None, "")]
        params += [("label", f"{k}={v}") for k, v in (labels or {}).items()]
        return self._send("GET", f"/{kind}", params=params, what=f"listing {kind}").json()

    def entry(self, kind: str, name: str, version: str) -> dict[str, Any] | None:
        """One version's record (``version`` may be ``latest``), or None when the hub lacks it."""
        try:
            return self._send("GET", f"/{kind}/{name}/{version}", what=f"reading {kind[:-1]} {name}:{version}").json()
        except NotFound:
            return None

    def commit(self, kind: str, name: str, version: str, manifest_text: str, files: Mapping[str, Mapping[str, Any]]) -> Any:
        body = {"manifest_text": manifest_text, "files": {k: dict(v) for k, v in files.items()}}
        return self._send("PUT", f"/{kind}/{name}/{version}", json=body, what=f"committing {kind[:-1]} {name}:{version}").json()

    def delete(self, kind: str, name: str, version: str, *, force: bool = False) -> None:
        params = {"force": "true"} if force else None
        self._send("DELETE", f"/{kind}/{name}/{version}", params=params, what=f"deleting {kind[:-1]} {name}:{version}")

    # -- blobs -----------------------------------------------------------------------------
    def missing(self, digests: Sequence[str]) -> list[str]:
        """The subset of ``digests`` the hub does not hold."""
        unique = sorted(set(digests))
        found: list[str] = []
        for i in range(0, len(unique), MISSING_BATCH):
            batch = unique[i : i + MISSING_BATCH]
            answer = self._send("POST", "/blobs/missing", json={"sha256": batch}, what="checking which files the hub holds")
            found += [d for d in answer.json().get("missing", []) if d in set(batch)]
        return found

    def upload_blob(self, digest: str, path: Path, size: int, advance: Advance | None = None) -> None:
        """Send ``path`` as blob ``digest``; the hub hashes what it receives and refuses a mismatch.

        The client does not hash while sending (the receiver's check is the one that counts, and
        a second pass would cost as much CPU as the transfer); only a refusal re-reads the file,
        to say whether the local copy is the damaged one.
        """

        def changed(how: str) -> IntegrityError:
            return IntegrityError(f"{path} {how} while being pushed; push again")

        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        what = f"uploading {path.name}"
        try:
            for attempt in range(4):
                try:
                    body = sendfile_body(path, size, advance, changed)
                    response = self._open("PUT", f"/blobs/{digest}", what=what, headers=headers, send_body=body)
                    read_reply(response)  # the short JSON answer: the connection is then reusable
                    break
                except HubBusy as exc:
                    if attempt == 3:
                        raise
                    time.sleep(exc.retry_after)
        except BadInput:
            from ..store import sha256_file

            if sha256_file(path) != digest:
                raise IntegrityError(
                    f"{path} does not match its recorded sha256; the local entry is damaged: delete and save it again"
                ) from None
            raise

    def read_blob(self, digest: str, max_size: int) -> bytes:
        """A small blob (a manifest) in memory, refusing more than ``max_size`` bytes."""
        response = self._open("GET", f"/blobs/{digest}", what="downloading a manifest")
        try:
            data = response.read(max_size + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise HubUnreachable(f"connection to hub {self.url} broke while downloading a manifest: {exc}") from exc
        finally:
            response.close()
        if len(data) > max_size:
            self._wire.close()  # the rest of the body is still on the connection
            raise IntegrityError(f"hub {self.url} sent a manifest larger than {max_size} bytes")
        return data

    def download_blob(self, digest: str, dest: Path, size: int, advance: Advance | None = None) -> None:
        """Write blob ``digest`` to ``dest`` (fsynced), refusing more than ``size`` bytes or a wrong hash."""
        response = self._open("GET", f"/blobs/{digest}", what=f"downloading {dest.name}")
        declared = response.getheader("content-length")
        try:
            if declared is not None and declared.strip() != str(size):
                raise IntegrityError(f"hub {self.url} announced {declared} bytes for blob {digest}, not the {size} recorded")
            got, actual = self._receive(response, dest, size, advance)
        except (OSError, http.client.HTTPException) as exc:
            raise HubUnreachable(f"connection to hub {self.url} broke while downloading {dest.name}: {exc}") from exc
        finally:
            if not response.isclosed():
                self._wire.close()  # unread body left on the connection: it cannot be reused
            response.close()
        if got != size or actual != digest:
            raise IntegrityError(
                f"blob {digest[:12]}... from hub {self.url} does not match its sha256 (tampered or corrupt); "
                "nothing was saved — ask the hub's operator to check its storage"
            )

    def _receive(self, response: http.client.HTTPResponse, dest: Path, size: int, advance: Advance | None) -> tuple[int, str]:
        """Read the body into reused buffers that are hashed and written while the next is read."""
        buffers = [memoryview(bytearray(min(DOWNLOAD_BUFFER, max(size, 1) + 1))) for _ in range(DOWNLOAD_DEPTH + 1)]
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            with HashingFile(fd, depth=DOWNLOAD_DEPTH, parallel=size > DOWNLOAD_BUFFER) as out:
                got = 0
                for turn in _cycle(len(buffers)):
                    view = buffers[turn]  # free: it was queued DOWNLOAD_DEPTH + 1 writes ago
                    n = response.readinto(view)
                    if not n:
                        break
                    got += n
                    if got > size:
                        raise IntegrityError(f"hub {self.url} sent more than the {size} bytes recorded for {dest.name}")
                    out.write([view[:n]])
                    if advance:
                        advance(n)
                if got < size:
                    raise HubUnreachable(f"hub {self.url} closed the connection after {got} of {size} bytes of {dest.name}")
                actual, _ = out.finish()
        finally:
            os.close(fd)
        return got, actual


def _cycle(n: int) -> Iterator[int]:
    while True:
        yield from range(n)
