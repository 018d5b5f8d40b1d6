"""Staging directories under ``$MLPACK_HOME/.tmp`` that say whether their writer is alive.

Each directory ``<name>`` has a lock file ``<name>.lock`` beside it, locked (``flock``) by
its writer for as long as it works there. The lock exists before the directory does, so a
directory whose lock nobody holds belongs to a writer that died (killed, crashed, power
lost) and the next write removes it: ``kill -9`` during a save leaves nothing behind for
long. ``fcntl.flock`` is used directly rather than ``filelock``: the test is a non-blocking
try on a file another process made, and the lock must live exactly as long as an open file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

_LOCK_SUFFIX = ".lock"
_INIT_SUFFIX = ".init"


def clean_stale(tmp_root: Path, unlocked_after: float) -> None:
    """Remove what dead writers left in ``tmp_root``: directories whose lock nobody holds.

    A live writer (in this process or another) holds its lock, so its directory stays.
    Anything without a lock (an older mlpack's, or not ours) goes only after ``unlocked_after``
    seconds without a change.
    """
    cutoff = time.time() - unlocked_after
    try:
        entries = list(os.scandir(tmp_root))
    except OSError:
        return
    names = {e.name for e in entries}
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.name.endswith(_LOCK_SUFFIX):
                _remove_if_dead(tmp_root, entry.name[: -len(_LOCK_SUFFIX)], entry.name)
            elif entry.name.endswith(_INIT_SUFFIX):  # a writer died before its lock got its name
                _remove_if_dead(tmp_root, None, entry.name)
            elif entry.name + _LOCK_SUFFIX in names:
                continue  # decided by its lock
            elif entry.stat(follow_symlinks=False).st_mtime < cutoff:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)


@contextlib.contextmanager
def staging_dir(tmp_root: Path, prefix: str) -> Iterator[Path]:
    """A new directory in ``tmp_root`` with a lock file beside it, held while the directory is in use.

    The lock is taken before the directory exists (under a temporary name, then linked to
    ``<dir>.lock``), so that a cleaner never sees a live writer's directory without a held lock.
    """
    import tempfile  # not at import time: listing the store never stages

    while True:
        fd, init = tempfile.mkstemp(dir=tmp_root, prefix=prefix, suffix=_INIT_SUFFIX)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else holds it
        base = init[: -len(_INIT_SUFFIX)]
        try:
            os.link(init, base + _LOCK_SUFFIX)
        except (FileExistsError, FileNotFoundError):  # a name taken, or a cleaner's race: try another
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(init)
            continue
        os.unlink(init)
        try:
            os.mkdir(base)
        except FileExistsError:
            os.unlink(base + _LOCK_SUFFIX)
            os.close(fd)
            continue
        break
    try:
        yield Path(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)  # gone already when committed
        with contextlib.suppress(OSError):
            os.unlink(base + _LOCK_SUFFIX)
        os.close(fd)


def _remove_if_dead(tmp_root: Path, base: str | None, lock_name: str) -> None:
    """Remove the directory ``base`` and its lock file if no live process holds the lock."""
    lock = tmp_root / lock_name
    fd = os.open(lock, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # its writer is alive
        if base is not None:
            shutil.rmtree(tmp_root / base, ignore_errors=True)
        os.unlink(lock)
    finally:
        os.close(fd)
