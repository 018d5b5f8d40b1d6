"""Content-addressed blob storage: a local directory or an S3-compatible bucket.

A blob is written under its claimed sha256 only after the bytes streamed in hash to it:
locally to a temporary file (hashed while it is written, in parallel) that is fsynced and
renamed into place, never copied; in S3 as a multipart upload that
is completed only then (an aborted or unfinished upload is never visible). Memory stays
bounded by one part whatever the size.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ...exceptions import BadInput, ConfigError, NotFound
from ...store import fsync_dir
from ..hashfile import HashingFile

READ_CHUNK = 2 << 20  # fewer, larger hand-offs to the event loop when serving a blob
PARALLEL_FROM = 4 << 20  # blobs larger than this are hashed and written in parallel threads
S3_PART = 8 << 20  # S3 parts must be at least 5 MiB, except the last
_STALE_SECONDS = 24 * 3600


class HashMismatch(BadInput):
    def __init__(self, claimed: str, actual: str) -> None:
        super().__init__(
            f"the uploaded bytes hash to {actual}, not {claimed}; the blob was refused (corrupt or tampered upload)",
            status=422,
        )


class BlobWriter(Protocol):
    def write(self, parts: Sequence[bytes]) -> None: ...
    def commit(self) -> int: ...
    def abort(self) -> None: ...


class Storage(Protocol):
    description: str

    def writer(self, sha256: str, size_hint: int | None = None) -> BlobWriter: ...
    def exists(self, sha256: str) -> bool: ...
    def open(self, sha256: str) -> Iterator[bytes]: ...
    def delete(self, sha256: str) -> None: ...
    def delete_many(self, digests: list[str]) -> None: ...
    def check(self) -> None: ...
    def sweep(self) -> None: ...


def open_storage(url: str | None, data_dir: Path, endpoint_url: str | None = None) -> Storage:
    """``None`` or ``file:///dir`` for a directory (default ``data_dir/blobs``), ``s3://bucket/prefix`` for S3."""
    if not url:
        return LocalStorage(data_dir / "blobs")
    if url.startswith("file://"):
        return LocalStorage(Path(url[len("file://") :]))
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise ConfigError(f"--storage {url!r} names no bucket; use s3://bucket/prefix")
        return S3Storage(bucket, prefix.strip("/"), endpoint_url)
    raise ConfigError(f"unsupported --storage {url!r}; use s3://bucket/prefix, or leave it out for files under --data")


class _LocalWriter:
    def __init__(self, storage: LocalStorage, sha256: str, size_hint: int | None) -> None:
        self.storage, self.sha256 = storage, sha256
        self.fd, self.tmp = tempfile.mkstemp(dir=storage.tmp, prefix=f"{sha256[:12]}-")
        # threads pay off only for large blobs (the declared size; unknown counts as large)
        self.file = HashingFile(self.fd, depth=2, parallel=size_hint is None or size_hint > PARALLEL_FROM)

    def write(self, parts: Sequence[bytes]) -> None:
        self.file.write(parts)

    def commit(self) -> int:
        try:
            actual, size = self.file.finish()  # all written and fsynced
            if actual != self.sha256:
                raise HashMismatch(self.sha256, actual)
            target = self.storage.path(self.sha256)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.tmp, target)
            fsync_dir(target.parent)
            return size
        finally:
            self.abort()

    def abort(self) -> None:
        self.file.close()
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


class LocalStorage:
    """Blobs at ``root/ab/<sha256>``; uploads in progress under ``root/.tmp``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.description = f"directory {self.root}"
        self.sweep()

    def sweep(self) -> None:
        """Remove uploads a killed server left behind (a day old: never one in progress)."""
        cutoff = time.time() - _STALE_SECONDS
        for entry in os.scandir(self.tmp):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def writer(self, sha256: str, size_hint: int | None = None) -> BlobWriter:
        return _LocalWriter(self, sha256, size_hint)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def open(self, sha256: str) -> Iterator[bytes]:
        try:
            f = open(self.path(sha256), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise NotFound(f"blob {sha256} is not in the hub's storage") from None
        return _read_chunks(f)

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(sha256))

    def delete_many(self, digests: list[str]) -> None:
        for sha in digests:
            self.delete(sha)

    def check(self) -> None:
        if not os.access(self.tmp, os.W_OK):
            raise OSError(f"{self.tmp} is not writable")


def _read_chunks(f: Any) -> Iterator[bytes]:
    with f:
        while chunk := f.read(READ_CHUNK):
            yield chunk


class _S3Writer:
    def __init__(self, storage: S3Storage, sha256: str) -> None:
        self.storage, self.sha256 = storage, sha256
        self.key = storage.key(sha256)
        self.digest = hashlib.sha256()
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.size = 0

    def write(self, parts: Sequence[bytes]) -> None:
        for data in parts:
            self.digest.update(data)
            self.buffer += data
            self.size += len(data)
        while len(self.buffer) >= S3_PART:
            self._flush_part(bytes(self.buffer[:S3_PART]))
            del self.buffer[:S3_PART]

    def _flush_part(self, body: bytes) -> None:
        s3 = self.storage.client
        if self.upload_id is None:
            self.upload_id = s3.create_multipart_upload(Bucket=self.storage.bucket, Key=self.key)["UploadId"]
        number = len(self.parts) + 1
        answer = s3.upload_part(Bucket=self.storage.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body)
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def commit(self) -> int:
        actual = self.digest.hexdigest()
        if actual != self.sha256:
            self.abort()
            raise HashMismatch(self.sha256, actual)
        s3, bucket = self.storage.client, self.storage.bucket
        try:
            if self.upload_id is None:
                s3.put_object(Bucket=bucket, Key=self.key, Body=bytes(self.buffer))
            else:
                if self.buffer:
                    self._flush_part(bytes(self.buffer))
                s3.complete_multipart_upload(
                    Bucket=bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
                )
                self.upload_id = None
        except BaseException:
            self.abort()
            raise
        self.buffer = bytearray()
        return self.size

    def abort(self) -> None:
        self.buffer = bytearray()
        if self.upload_id is not None:
            upload_id, self.upload_id = self.upload_id, None
            with contextlib.suppress(Exception):  # best effort: a bucket lifecycle rule cleans the rest
                self.storage.client.abort_multipart_upload(Bucket=self.storage.bucket, Key=self.key, UploadId=upload_id)


class S3Storage:
    """Blobs at ``s3://bucket/prefix/blobs/ab/<sha256>``; credentials from the AWS chain."""

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, config=Config(retries={"max_attempts": 5, "mode": "standard"})
        )
        self.description = f"s3://{bucket}/{prefix}" + (f" at {endpoint_url}" if endpoint_url else "")

    @property
    def blob_prefix(self) -> str:
        return f"{self.prefix}/blobs/" if self.prefix else "blobs/"

    def key(self, sha256: str) -> str:
        return f"{self.blob_prefix}{sha256[:2]}/{sha256}"

    def writer(self, sha256: str, size_hint: int | None = None) -> BlobWriter:
        return _S3Writer(self, sha256)

    def exists(self, sha256: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def open(self, sha256: str) -> Iterator[bytes]:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise NotFound(f"blob {sha256} is not in the hub's storage") from None
            raise
        return _stream_body(body)

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))

    def delete_many(self, digests: list[str]) -> None:
        for i in range(0, len(digests), 1000):  # the most one DeleteObjects call takes
            objects = [{"Key": self.key(sha)} for sha in digests[i : i + 1000]]
            answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise OSError(f"S3 refused to delete {first.get('Key')}: {first.get('Message')}")

    def check(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)

    def sweep(self) -> None:
        """Abort multipart uploads under our prefix that a killed server left open for a day."""
        from datetime import datetime, timedelta, timezone

        cutoff = datetime.now(timezone.utc) - timedelta(seconds=_STALE_SECONDS)
        pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self.blob_prefix)
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    with contextlib.suppress(Exception):
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def _stream_body(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(READ_CHUNK)
    finally:
        body.close()
