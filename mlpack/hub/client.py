"""A thin, typed client of the hub's REST API (``/api/v1``) over httpx.

Every HTTP failure becomes one ``MlpackError`` with a message that names the hub and the fix;
the token never appears in a message. Blobs stream in both directions in 1 MiB chunks, so
memory stays bounded whatever the file size, and downloads are hashed as they arrive.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..exceptions import AlreadyExists, BadInput, IntegrityError, InUse, MlpackError, NotFound
from .client_config import HubSettings

CHUNK = 1 << 20
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


def _error_text(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    text = (response.text or "").strip().splitlines()
    return text[0][:200] if text else response.reason_phrase


class HubClient:
    """Calls to one hub with one token; use as a context manager to close connections."""

    def __init__(self, settings: HubSettings, *, timeout: float = 60.0, transport: Any = None) -> None:
        import httpx

        self.settings = settings
        self.url = settings.url
        self._httpx = httpx
        self._client = httpx.Client(
            base_url=settings.url + "/api/v1",
            headers={"Authorization": f"Bearer {settings.token}", "User-Agent": "mlpack-hub-client"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
            follow_redirects=False,
        )

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # -- plumbing --------------------------------------------------------------------------
    def _send(self, method: str, path: str, *, what: str, stream: bool = False, **kwargs: Any) -> Any:
        httpx = self._httpx
        request = self._client.build_request(method, path, **kwargs)
        try:
            response = self._client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            raise HubUnreachable(f"hub {self.url} did not answer in time ({type(exc).__name__}) while {what}") from exc
        except httpx.TransportError as exc:
            raise HubUnreachable(
                f"cannot reach hub {self.url} while {what}: {exc or type(exc).__name__}; is it running? check the URL"
            ) from exc
        if response.status_code >= 400:
            if stream:
                response.read()
            response.close()
            self._raise(response, what)
        return response

    def _raise(self, response: Any, what: str) -> None:
        status, text = response.status_code, _error_text(response)
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
        """Stream ``path`` as blob ``digest``; the hub hashes what it receives and refuses a mismatch.

        The client does not hash while sending (the receiver's check is the one that counts, and
        a second hash would cost as much CPU as the transfer); only a refusal re-reads the file,
        to say whether the local copy is the damaged one.
        """

        def chunks() -> Iterator[bytes]:
            sent = 0
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    sent += len(chunk)
                    if sent > size:
                        raise IntegrityError(f"{path} grew while being pushed; push again")
                    if advance:
                        advance(len(chunk))
                    yield chunk
            if sent != size:
                raise IntegrityError(f"{path} shrank while being pushed; push again")

        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        try:
            for attempt in range(4):
                try:
                    self._send("PUT", f"/blobs/{digest}", content=chunks(), headers=headers, what=f"uploading {path.name}")
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
        parts: list[bytes] = []
        got = 0
        response = self._send("GET", f"/blobs/{digest}", stream=True, what="downloading a manifest")
        try:
            for chunk in response.iter_bytes():  # as received: re-chunking would copy every byte
                got += len(chunk)
                if got > max_size:
                    raise IntegrityError(f"hub {self.url} sent a manifest larger than {max_size} bytes")
                parts.append(chunk)
        except self._httpx.TransportError as exc:
            raise HubUnreachable(f"connection to hub {self.url} broke while downloading a manifest: {exc}") from exc
        finally:
            response.close()
        return b"".join(parts)

    def download_blob(self, digest: str, dest: Path, size: int, advance: Advance | None = None) -> None:
        """Write blob ``digest`` to ``dest``, refusing more than ``size`` bytes or a wrong hash."""
        digest_now = hashlib.sha256()
        got = 0
        response = self._send("GET", f"/blobs/{digest}", stream=True, what=f"downloading {dest.name}")
        try:
            with open(dest, "wb") as out:
                for chunk in response.iter_bytes():  # as received: re-chunking would copy every byte
                    got += len(chunk)
                    if got > size:
                        raise IntegrityError(f"hub {self.url} sent more than the {size} bytes recorded for blob {digest}")
                    digest_now.update(chunk)
                    out.write(chunk)
                    if advance:
                        advance(len(chunk))
                out.flush()
                os.fsync(out.fileno())
        except self._httpx.TransportError as exc:
            raise HubUnreachable(f"connection to hub {self.url} broke while downloading {dest.name}: {exc}") from exc
        finally:
            response.close()
        if got != size or digest_now.hexdigest() != digest:
            raise IntegrityError(
                f"blob {digest[:12]}... from hub {self.url} does not match its sha256 (tampered or corrupt); "
                "nothing was saved — ask the hub's operator to check its storage"
            )
