"""Several server processes forked from one loaded parent, each with its own listening socket.

The parent (the CLI process) has imported the service and loaded its models before it forks,
so every worker starts ready and the models' memory stays shared copy-on-write (the garbage
collector is frozen first: a collection in a worker would otherwise write to every object it
walks, and copy the pages). Each worker listens on a socket of its own, all bound to the same
host and port with ``SO_REUSEPORT``: the kernel spreads new connections over the workers by a
hash of their addresses, instead of handing them to whichever worker wakes first on a shared
socket. The parent holds every socket for the life of the server, so connections that arrive
while a worker restarts wait in its socket's queue.

The supervisor forwards SIGTERM/SIGINT (as SIGTERM, so that every worker drains its in-flight
requests), restarts a worker that dies unexpectedly, and gives up, exiting non-zero, when a
worker keeps dying soon after it started.
"""

from __future__ import annotations

import gc
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from .exceptions import ConfigError

log = logging.getLogger("mlpack.serve")

QUICK_EXIT_SECONDS = 10.0  # a worker that dies sooner than this after its start failed "at start"
MAX_QUICK_EXITS = 5  # in a row, in one slot: then the server gives up
KILL_AFTER_SECONDS = 5.0  # past the graceful timeout, a worker still running is killed
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def uvicorn_target(
    make_app: Callable[[], Any], config: dict[str, Any], on_server: Callable[[Any], None] | None = None
) -> Callable[[socket.socket], int]:
    """A worker's ``target``: uvicorn's server on the worker's socket, for ``make_app()`` (made in
    the worker); ``on_server(server)`` before it runs."""

    def run(sock: socket.socket) -> int:
        import uvicorn

        server = uvicorn.Server(uvicorn.Config(make_app(), **config))
        if on_server is not None:
            on_server(server)

        def stop(*_: Any) -> None:  # a signal before uvicorn listens for its own
            server.should_exit = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        server.run(sockets=[sock])
        return 0 if server.started else 3  # 3: uvicorn's code for a failed start-up

    return run


def listening_sockets(host: str, port: int, count: int, backlog: int = 2048) -> list[socket.socket]:
    """``count`` sockets listening on the same ``host:port`` (``SO_REUSEPORT``); port 0 picks one free port for all."""
    if not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - Linux, macOS and the BSDs have it
        raise ConfigError("several workers need SO_REUSEPORT, which this platform lacks; use --workers 1")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]  # the port the first one got, for the others too
            sock.listen(backlog)
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        from .fsutil import reason

        raise ConfigError(f"cannot listen on {host}:{port}: {reason(exc)}") from exc
    return sockets


@dataclass
class _Slot:
    """One worker's place: its socket, its current process, and how it has been failing."""

    index: int
    sock: socket.socket
    pid: int = 0
    started: float = 0.0
    quick_exits: int = 0
    restart_at: float | None = None


class Supervisor:
    """Forks one worker per socket, each running ``target(sock)`` (its exit code); restarts them as needed."""

    def __init__(self, sockets: list[socket.socket], target: Callable[[socket.socket], int], *, grace: float) -> None:
        self.slots = [_Slot(i, s) for i, s in enumerate(sockets)]
        self.target = target
        self.grace = grace  # how long a worker may take to drain, after SIGTERM
        self.stopping = False
        self.kill_at: float | None = None
        self.failed = False  # gave up, or a worker did not stop cleanly
        self._signals: list[int] = []

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT or a worker that keeps failing; the process's exit code."""
        others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        if others:  # a thread does not survive fork: whatever it holds (a lock...) stays held in workers
            log.warning("threads running before the workers fork (they will not run in workers): %s", ", ".join(others))
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (*_STOP_SIGNALS, signal.SIGCHLD)}
        previous_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        self._wake = (wake_r, wake_w)
        try:
            for slot in self.slots:
                self._spawn(slot)
            while self._alive() or not self.stopping:
                select.select([wake_r], [], [], self._timeout())
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
                self._handle_signals()
                self._reap()
                self._tick(time.monotonic())
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)
        return 1 if self.failed else 0

    # -- the parent's loop --------------------------------------------------------------

    def _on_signal(self, sig: int, _frame: object) -> None:
        self._signals.append(sig)  # acted on in the loop, not here: the handler may interrupt anything

    def _handle_signals(self) -> None:
        while self._signals:
            sig = self._signals.pop(0)
            if sig in _STOP_SIGNALS:
                if self.stopping and sig == signal.SIGINT:
                    log.warning("second interrupt: stopping the workers without waiting for their requests")
                    self._send_all(signal.SIGINT)  # uvicorn's "force exit": after a SIGTERM it drops what is in flight
                else:
                    self.stop()

    def stop(self) -> None:
        """Ask every worker to finish its in-flight requests and exit."""
        if not self.stopping:
            log.info("stopping %d workers (in-flight requests finish first)", len(self.slots))
            self.stopping = True
            self.kill_at = time.monotonic() + self.grace + KILL_AFTER_SECONDS
        for slot in self.slots:
            slot.restart_at = None
        # SIGTERM, even for an interrupt: a worker that also got the terminal's SIGINT would take a second SIGINT as "force exit"
        self._send_all(signal.SIGTERM)

    def _send_all(self, sig: int) -> None:
        for slot in self.slots:
            if slot.pid:
                try:
                    os.kill(slot.pid, sig)
                except ProcessLookupError:
                    pass

    def _alive(self) -> bool:
        return any(slot.pid for slot in self.slots)

    def _timeout(self) -> float | None:
        due = [s.restart_at for s in self.slots if s.restart_at is not None]
        if self.kill_at is not None:
            due.append(self.kill_at)
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _reap(self) -> None:
        for slot in self.slots:
            if not slot.pid:
                continue
            try:
                pid, status = os.waitpid(slot.pid, os.WNOHANG)
            except ChildProcessError:  # pragma: no cover - reaped by someone else
                pid, status = slot.pid, 0
            if pid:
                slot.pid = 0
                self._exited(slot, pid, os.waitstatus_to_exitcode(status))

    def _exited(self, slot: _Slot, pid: int, code: int) -> None:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        if self.stopping:
            if code not in (0, -signal.SIGTERM, -signal.SIGINT):  # a signal before its server started: nothing lost
                log.error("worker %d [%d] %s while stopping", slot.index, pid, how)
                self.failed = True
            return
        lived = time.monotonic() - slot.started
        slot.quick_exits = slot.quick_exits + 1 if lived < QUICK_EXIT_SECONDS else 1
        if slot.quick_exits > MAX_QUICK_EXITS:
            log.error(
                "worker %d [%d] %s; it failed %d times in a row within %.0f s of starting: stopping the server",
                slot.index, pid, how, MAX_QUICK_EXITS, QUICK_EXIT_SECONDS,
            )  # fmt: skip
            self.failed = True
            self.stop()
            return
        delay = 0.0 if slot.quick_exits == 1 else min(0.25 * 2 ** (slot.quick_exits - 2), 8.0)
        log.warning("worker %d [%d] %s after %.1f s; starting a new one in %.2f s", slot.index, pid, how, lived, delay)
        slot.restart_at = time.monotonic() + delay

    def _tick(self, now: float) -> None:
        if self.stopping:
            if self.kill_at is not None and now >= self.kill_at and self._alive():
                log.error("workers still running %.0f s after SIGTERM: killing them", self.grace + KILL_AFTER_SECONDS)
                self.failed = True
                self._send_all(signal.SIGKILL)
                self.kill_at = None
            return
        for slot in self.slots:
            if slot.restart_at is not None and now >= slot.restart_at:
                slot.restart_at = None
                self._spawn(slot)

    # -- forking --------------------------------------------------------------------------

    def _spawn(self, slot: _Slot) -> None:
        # Whatever the parent allocated is in the workers for good: keep the collector off it,
        # so that no worker's collection writes to (and copies) the pages the models live in.
        gc.collect()
        gc.freeze()
        pause_openmp()
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            self._child(slot, parent)  # never returns
        slot.pid, slot.started = pid, time.monotonic()
        log.info("started worker %d [%d]", slot.index, pid)

    def _child(self, slot: _Slot, parent: int) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for sig in (*_STOP_SIGNALS, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)  # until the worker's server installs its own
            os.close(self._wake[0])
            os.close(self._wake[1])
            _die_with(parent)
            for other in self.slots:
                if other is not slot:
                    other.sock.close()
            code = self.target(slot.sock)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            log.exception("worker %d failed", slot.index)
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)


def _die_with(parent: int) -> None:
    """Have the kernel send this worker SIGTERM (drain, then exit) if the supervisor dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover
        return
    if os.getppid() != parent:  # it died before the call above
        os.kill(os.getpid(), signal.SIGTERM)


# The thread pools of native libraries (OpenMP, as XGBoost and scikit-learn use it; BLAS) size
# themselves from these variables when they are loaded, so they must be set before the service is
# imported. OpenMP's threads also spin-wait after each parallel region unless passive: measured in
# a worker forked from a process that ran XGBoost, 1000 one-row predictions took 2.0-2.4 s of CPU
# (0.4-0.5 s passive, or with one thread), the spinning thread taking the other worker's core.
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def share_cores(workers: int, environ: MutableMapping[str, str] = os.environ) -> int:
    """Size the native thread pools of each of ``workers`` workers to its share of this process's
    CPUs, passive between calls; variables the user set win. Returns the threads per worker."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        cpus = os.cpu_count() or 1
    share = max(1, cpus // max(1, workers))
    for name in _THREAD_ENV:
        environ.setdefault(name, str(share))
    environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return share


_OPENMP_RUNTIMES = ("libgomp", "libomp", "libiomp")
_OMP_PAUSE_HARD = 2


def pause_openmp() -> list[str]:
    """Stop the thread pools of the OpenMP runtimes this process has loaded; the ones paused.

    A process that forked after GNU libgomp ran a parallel region (XGBoost's predict, or a
    scikit-learn estimator, e.g. in a service's warm-up at import) hangs at its own first
    parallel region: the pool's threads did not survive the fork, but libgomp waits for them.
    ``omp_pause_resource_all(omp_pause_hard)`` (OpenMP 5.0) ends the pool; the next parallel
    region, in the parent or a worker, starts a fresh one. Only runtimes already mapped are
    touched (none is loaded here), found in ``/proc/self/maps`` (Linux).
    """
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if any(name in line for name in _OPENMP_RUNTIMES)}
    except OSError:  # not Linux: nothing to find this way
        return []
    import ctypes

    paused = []
    for path in sorted(p for p in paths if p.startswith("/") and any(n in os.path.basename(p) for n in _OPENMP_RUNTIMES)):
        try:
            pause = ctypes.CDLL(path).omp_pause_resource_all
        except (OSError, AttributeError):  # an OpenMP before 5.0: no way to pause it
            log.warning("cannot stop the OpenMP threads of %s before forking: workers may hang in it", path)
            continue
        pause.argtypes, pause.restype = [ctypes.c_int], ctypes.c_int
        if pause(_OMP_PAUSE_HARD) == 0:
            paused.append(path)
    return paused
