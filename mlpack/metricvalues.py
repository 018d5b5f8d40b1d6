"""Metric values of one process in preallocated slots: in memory, or in files other workers read.

A series (a metric name and its label values) owns a run of slots, allocated once; an update
is plain arithmetic on a list (one process) or on a memoryview of a shared file mapping
(several workers): no lock, no system call, no cross-process traffic on the request path.

Several workers share a directory; each process has two files there, named ``<pid>-<random>``:

- ``.vals``: the doubles, in segments of ``SEGMENT`` slots, each mapped on its own, so that
  the file grows without moving what is mapped. The process holds an exclusive ``flock`` on
  it for as long as it lives; the kernel drops the lock when the process dies, however it
  dies, so a reader knows which files belong to live processes with neither pids nor polling.
- ``.keys``: one JSON line per allocation, ``[segment, base, size, name, [label values]]``,
  appended after its slots exist, so a reader that sees a key can read its slots.

A reader reads the keys, then the values (Linux keeps ``read`` coherent with shared mappings).
Files of dead processes stay, as their counters still count (readers remove those that hold only zeros).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import mmap
import os
import secrets
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

SEGMENT = 4096  # slots (doubles) per segment: 32 KiB, and an mmap offset must be page-aligned
_SEGMENT_BYTES = SEGMENT * 8

Key = tuple[int, int, int, str, tuple[str, ...]]  # segment, base, size, name, labels


class Slots:
    """The preallocated values of this process; ``segments[i][j]`` is slot ``j`` of segment ``i``.

    ``lock`` guards allocation. Updates take no lock here: a slot that only one thread writes is
    never torn or lost; the owner of a series that several threads write brings its own lock.
    """

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory
        self.lock = threading.RLock()  # whoever allocates may hold it already
        self.segments: list[Any] = []  # list[float] in memory, memoryview('d') of the file's mapping
        self._keys: list[Key] = []
        self._used = SEGMENT  # the first allocation opens a segment
        self._vals_fd = self._keys_fd = -1
        if directory is not None:
            self._open(directory)

    def allocate(self, name: str, labels: tuple[str, ...], size: int) -> tuple[int, int]:
        """``(segment, base)`` of ``size`` fresh zero slots for the series ``name{labels}``."""
        if size > SEGMENT:
            raise ValueError(f"a series of {size} slots does not fit a segment of {SEGMENT}")
        with self.lock:
            if self._used + size > SEGMENT:
                self._add_segment()
            key = (len(self.segments) - 1, self._used, size, name, labels)
            self._used += size
            self._keys.append(key)
            if self._keys_fd >= 0:
                os.write(self._keys_fd, _key_line(key))
        return key[0], key[1]

    def snapshot(self) -> Iterator[tuple[str, tuple[str, ...], list[float]]]:
        """This process's series and their values, copied under the lock."""
        with self.lock:
            rows = [(name, labels, list(self.segments[s][b : b + n])) for s, b, n, name, labels in self._keys]
        return iter(rows)

    def after_fork(self) -> None:
        """In a forked child: start from zero, in files of its own (the layout stays, for the owners)."""
        self.lock = threading.RLock()  # another thread may have held it at the fork
        if self.directory is None:
            for segment in self.segments:
                segment[:] = [0.0] * SEGMENT
            return
        for fd in (self._vals_fd, self._keys_fd):
            if fd >= 0:
                os.close(fd)  # not LOCK_UN: the lock is the parent's, on the description both share
        count, used, self.segments = len(self.segments), self._used, []
        self._open(self.directory)
        for _ in range(count):
            self._add_segment()
        self._used = used
        os.write(self._keys_fd, b"".join(_key_line(key) for key in self._keys))

    def release(self) -> None:
        """Count as a dead process from now on: readers drop this process's gauges."""
        if self._vals_fd >= 0:
            fcntl.flock(self._vals_fd, fcntl.LOCK_UN)  # counters keep counting: the file and mapping stay

    def _open(self, directory: str) -> None:
        stem = os.path.join(directory, f"{os.getpid()}-{secrets.token_hex(4)}")
        self._vals_fd = os.open(stem + ".vals", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self._vals_fd, fcntl.LOCK_EX)  # before the keys file exists, so no reader sees it unlocked
        self._keys_fd = os.open(stem + ".keys", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)

    def _add_segment(self) -> None:
        if self.directory is None:
            self.segments.append([0.0] * SEGMENT)
        else:
            index = len(self.segments)
            # allocated, not sparse: a full disk fails here, not later as a SIGBUS on a store
            os.posix_fallocate(self._vals_fd, index * _SEGMENT_BYTES, _SEGMENT_BYTES)
            mapped = mmap.mmap(self._vals_fd, _SEGMENT_BYTES, offset=index * _SEGMENT_BYTES)  # MAP_SHARED
            self.segments.append(memoryview(mapped).cast("d"))
        self._used = 0


def _key_line(key: Key) -> bytes:
    segment, base, size, name, labels = key
    return json.dumps([segment, base, size, name, list(labels)], separators=(",", ":")).encode() + b"\n"


class ProcessValues(NamedTuple):
    """One process's file: its pid, whether it is alive, and its series ``(name, labels, values)``."""

    pid: int
    alive: bool
    series: list[tuple[str, tuple[str, ...], list[float]]]


def read_directory(directory: str) -> Iterator[ProcessValues]:
    """The values of every process that wrote into ``directory``, the dead ones' included.

    The files of a dead process that holds only zeros go: a process forked for something else
    than serving (a subprocess's ``preexec_fn``, multiprocessing) made them and counted nothing.
    """
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return
    for entry in names:
        if not entry.endswith(".keys"):
            continue
        stem = os.path.join(directory, entry[: -len(".keys")])
        try:
            with open(stem + ".keys", "rb") as f:
                lines = f.read().split(b"\n")[:-1]  # a line still being written has no newline yet
            with open(stem + ".vals", "rb") as f:
                alive = _locked(f.fileno())
                data = f.read()
        except FileNotFoundError:
            continue
        values = memoryview(data[: len(data) // 8 * 8]).cast("d")
        series = []
        for line in lines:
            segment, base, size, name, labels = json.loads(line)
            start = segment * SEGMENT + base
            if start + size <= len(values):
                series.append((name, tuple(labels), values[start : start + size].tolist()))
        if not alive and not any(any(v) for _, _, v in series):
            for suffix in (".keys", ".vals"):
                with contextlib.suppress(FileNotFoundError):  # another reader was first
                    os.unlink(stem + suffix)
            continue
        yield ProcessValues(int(entry.split("-", 1)[0]), alive, series)


def _locked(fd: int) -> bool:
    """Whether a live process holds its lock on the file behind ``fd``."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    return False  # the lock goes with the descriptor when the caller closes it
