"""Files people see: atomic outputs that honour the umask, and OS errors as one clear line.

``atomic_output`` writes next to the destination and renames onto it on success, so a failed
write never leaves half a file; the file gets the mode any new file gets (``0o666`` less the
umask), where ``tempfile.mkstemp`` would make it ``0600``. ``os_error`` turns an ``OSError``
into a ``StorageError`` naming what failed and where ("no space left on the device" for a
full disk), so that the CLI shows one line instead of a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .exceptions import StorageError

_FULL = (errno.ENOSPC, errno.EDQUOT)
_REASONS = {
    errno.ENOSPC: "no space left on the device (disk full); free some space and try again",
    errno.EDQUOT: "disk quota exceeded; free some space and try again",
    errno.EFBIG: "the file is too large for its file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EISDIR: "it is a directory",
    errno.EEXIST: "it already exists",
    errno.EIO: "input/output error (a failing disk?)",
}


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _FULL


def reason(exc: OSError) -> str:
    """What went wrong, in words, without the path."""
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


def os_error(exc: OSError, action: str = "write", path: str | Path | None = None) -> StorageError:
    """``cannot <action> <path>: <reason>``, the path taken from the error when not given."""
    where = path if path is not None else exc.filename
    target = f" {where}" if where not in (None, "") else ""
    return StorageError(f"cannot {action}{target}: {reason(exc)}")


@contextlib.contextmanager
def atomic_output(path: str | Path, binary: bool = True) -> Iterator[IO[Any]]:
    """A new file beside ``path`` (mode ``0o666`` less the umask), renamed onto it on success.

    Any ``OSError`` of the file system (opening, writing, renaming) becomes a ``StorageError``
    naming ``path``; errors of the caller's own code pass through. Either way the temporary
    file is removed.
    """
    path = Path(path)
    if path.is_dir():
        raise StorageError(f"cannot write {path}: it is a directory")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        # /dev/stdout, a named pipe, a link the user made: write through it, never replace it
        try:
            special = open(path, "wb" if binary else "w", encoding=None if binary else "utf-8")  # noqa: SIM115
        except OSError as exc:
            raise os_error(exc, "write", path) from exc
        with special:
            yield _Guarded(special, path)  # type: ignore[misc]
        return
    import secrets  # not at import time: it loads hmac and OpenSSL

    tmp = fd = None
    for _ in range(16):
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            # the kernel applies the umask to 0o666, as for any file a program creates
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise os_error(exc, "write", path) from exc
        tmp = candidate
        break
    if tmp is None or fd is None:  # pragma: no cover - 16 random names all taken
        raise StorageError(f"cannot write {path}: no free temporary name beside it")
    stream = _Guarded(os.fdopen(fd, "wb") if binary else open(fd, "w", encoding="utf-8", newline=""), path)  # noqa: SIM115
    try:
        yield stream  # type: ignore[misc]
        try:
            stream.raw.close()  # flushes: a full disk may show only now
            os.replace(tmp, path)
        except OSError as exc:
            raise os_error(exc, "write", path) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            stream.raw.close()  # a failed flush must not hide the first error
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class _Guarded:
    """A file whose write errors name the destination (a full disk shows where it was full)."""

    def __init__(self, raw: IO[Any], path: Path) -> None:
        self.raw, self.path = raw, path

    def write(self, data: Any) -> int:
        try:
            return self.raw.write(data)
        except OSError as exc:
            raise os_error(exc, "write", self.path) from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new content.

    The file is created 0600 (store metadata); ``mode`` sets another.
    """
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
