"""One pool of compute workers per machine, owned explicitly and passed in.

``WorkerPool`` owns ONE long-lived loky process executor (spawn semantics: workers never
inherit the parent's threads, locks or event loop). Workers are single-threaded: the thread
environment is set before their interpreter imports anything, and the initializer pins
threadpoolctl/numba/torch explicitly. Work goes out in batches (a few per worker), results come
back in order; a batch whose worker died (or that ran past its timeout) is retried once on fresh
workers, then the map fails with a one-line error. Ctrl-C kills the workers: nothing is left.
If the parent dies without cleaning up (SIGKILL, or SIGTERM without a handler), each worker
learns it from its parent-death signal (Linux) or, at the latest, its watchdog thread (which
polls the parent pid every 0.2 s) and exits; loky's resource tracker then removes the
semaphores and the pool's temporary directory.

Large read-only arrays reach each worker once: ``pool.share({...})`` writes them as ``.npy``
files in the pool's temporary directory and returns a small picklable ``SharedArrays`` handle;
``handle.load()`` memory-maps them in the worker (cached per process), so every worker reads
the same pages of the page cache instead of unpickling a copy with every task.

Only module-level functions and plain data cross the process boundary.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar

import numpy as np

from singularity.errors import SingularityError
from singularity.runtime.threads import limit_threads, thread_env

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)

BATCHES_PER_WORKER = 4
"""Default batching: a few batches per worker balances load without per-item dispatch."""


class WorkerError(SingularityError):
    """A batch could not be computed: its worker died or hung twice."""


def cpu_count() -> int:
    """Cores this process may use (affinity-aware where the platform tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int) -> int:
    """0 (or less) means every core."""
    return workers if workers > 0 else cpu_count()


# --------------------------------------------------------------------------- shared arrays

_SHARED_CACHE: dict[str, dict[str, np.ndarray]] = {}
_SHARED_CACHE_MAX = 8


@dataclass(frozen=True)
class SharedArrays:
    """Picklable handle to named read-only arrays: a directory of ``.npy`` files, or the arrays
    themselves when no process boundary is crossed (``inline``)."""

    key: str
    directory: str | None = None
    names: tuple[str, ...] = ()
    inline: Mapping[str, np.ndarray] | None = field(default=None, compare=False, repr=False)

    def load(self) -> dict[str, np.ndarray]:
        """The arrays, memory-mapped read-only (once per process)."""
        if self.inline is not None:
            return dict(self.inline)
        hit = _SHARED_CACHE.pop(self.key, None)
        if hit is not None:
            _SHARED_CACHE[self.key] = hit  # most recently used last: evicted last
            return hit
        if self.directory is None:
            raise WorkerError(f"shared arrays {self.key!r} are not available in this process")
        arrays = {n: np.load(Path(self.directory) / f"{n}.npy", mmap_mode="r") for n in self.names}
        _remember(self.key, arrays)
        return arrays


def _remember(key: str, arrays: dict[str, np.ndarray]) -> None:
    if key not in _SHARED_CACHE and len(_SHARED_CACHE) >= _SHARED_CACHE_MAX:
        _SHARED_CACHE.pop(next(iter(_SHARED_CACHE)))
    _SHARED_CACHE[key] = arrays


MAX_WORKER_GROWTH_BYTES = 8 * 1024**3


def share_inline(arrays: Mapping[str, np.ndarray]) -> SharedArrays:
    """A handle for serial, in-process use (``pool=None``)."""
    return SharedArrays(key=uuid.uuid4().hex, inline=dict(arrays))


def share_arrays(arrays: Mapping[str, np.ndarray], pool: Pool | None = None) -> SharedArrays:
    """Hand ``arrays`` to ``pool``'s workers once; in-process when ``pool`` is None."""
    return share_inline(arrays) if pool is None else pool.share(arrays)


# --------------------------------------------------------------------------- worker side


WATCHDOG_INTERVAL_S = 0.2


def _watch_parent(parent_pid: int) -> None:
    # Reparenting (to init or a subreaper) is how a process learns that its parent died,
    # whatever killed it. The call queue never reaches end-of-file (this worker holds both
    # ends of its pipe), so without this an orphaned worker would wait forever.
    while os.getppid() == parent_pid:
        time.sleep(WATCHDOG_INTERVAL_S)
    os._exit(75)


def _on_parent_death_signal(parent_pid: int) -> None:
    """Linux: ask for SIGUSR1 when the parent dies. The kernel sends it when the *thread* that
    spawned this worker ends (loky spawns from whichever thread submits), so the handler checks
    that the parent really is gone before exiting; the watchdog thread stays the backstop."""
    import ctypes
    import signal

    def handler(_signum: int, _frame: Any) -> None:
        if os.getppid() != parent_pid:
            os._exit(75)

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        signal.signal(signal.SIGUSR1, handler)
        libc.prctl(1, int(signal.SIGUSR1), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError, ValueError):  # not Linux: the watchdog alone
        return


def _exit_without_teardown() -> None:
    """Let this worker end like any process, minus the teardown of its modules.

    A worker's interpreter, once torch (and the TorchDynamo stack its optimisers import) is
    loaded, takes seconds of CPU to tear its modules down at exit, and the pool's shutdown waits
    for it (measured: 3.2 s vs 0.14 s per worker on a loaded 2-core machine). When loky's worker
    script calls ``sys.exit`` after the process ran its course (``multiprocessing``'s bootstrap
    has already run its exit finalizers: queues flushed, the log queue's included), this runs
    the ``atexit`` handlers, flushes the standard streams and leaves with the same status. Any
    other ``sys.exit`` (code in a task) raises SystemExit as usual."""
    import atexit
    import sys
    from multiprocessing import util

    original = sys.exit

    def exit(status: object = None) -> None:
        if not getattr(util, "_exiting", False):
            original(status)
        atexit._run_exitfuncs()
        code = 0 if status is None else status if isinstance(status, int) else 1
        if not isinstance(status, int | None):
            print(status, file=sys.stderr)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)

    sys.exit = exit  # type: ignore[assignment]


def _init_worker(log_queue: Any, log_level: int, parent_pid: int | None = None) -> None:
    if parent_pid is not None:
        import sys
        import threading

        if sys.platform.startswith("linux"):
            _on_parent_death_signal(parent_pid)
        if os.getppid() != parent_pid:
            os._exit(75)  # the parent died while this worker started
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="singularity-parent-watchdog",
                         daemon=True).start()
    limit_threads(1)
    _exit_without_teardown()
    if log_queue is not None:
        from singularity.runtime.logging import install_queue_handler

        install_queue_handler(log_queue, log_level)


def _run_batch(fn: Callable[[Any], Any], batch: Sequence[Any]) -> list[Any]:
    return [fn(item) for item in batch]


def _worker_pid() -> int:
    return os.getpid()


def _import_modules(modules: tuple[str, ...]) -> None:
    import importlib

    for name in modules:
        with contextlib.suppress(Exception):  # a real task's own import reports the error
            importlib.import_module(name)


# --------------------------------------------------------------------------- pools


class Pool(Protocol):
    """What evaluation code needs from a pool (local loky or Dask)."""

    @property
    def workers(self) -> int: ...

    def map(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        timeout: float | None = None,
        chunksize: int | None = None,
    ) -> list[R]: ...

    def share(self, arrays: Mapping[str, np.ndarray]) -> SharedArrays: ...

    def release(self, handle: SharedArrays) -> None: ...


def split_batches(items: Sequence[T], workers: int, chunksize: int | None) -> list[Sequence[T]]:
    """Consecutive batches: ``chunksize`` items each, or about BATCHES_PER_WORKER per worker."""
    n = len(items)
    if n == 0:
        return []
    size = chunksize or max(1, math.ceil(n / (workers * BATCHES_PER_WORKER)))
    return [items[i : i + size] for i in range(0, n, size)]


def _track_folder(path: str) -> None:
    """Have loky's resource tracker remove ``path`` if this process dies without doing it.

    The tracker outlives its parent until the last worker exits (then it reads end-of-file and
    removes what is still registered, the pool's semaphores included)."""
    from loky.backend import resource_tracker

    resource_tracker.register(path, "folder")


def _untrack_folder(path: str) -> None:
    from loky.backend import resource_tracker

    with contextlib.suppress(Exception):
        resource_tracker.unregister(path, "folder")


class WorkerPool:
    """Local pool of single-threaded loky worker processes; a context manager.

    ``workers=0`` uses every core. ``log_queue`` (from ``LogHub``) routes the workers' logging
    to the parent's single log file.
    """

    def __init__(
        self,
        workers: int = 0,
        *,
        log_queue: Any = None,
        log_level: int = logging.INFO,
    ) -> None:
        self._workers = resolve_workers(workers)
        self._log_queue = log_queue
        self._log_level = log_level
        self._executor: Any = None
        self._tmpdir: str | None = None
        self._shared_keys: set[str] = set()
        self._closed = False

    @property
    def workers(self) -> int:
        return self._workers

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> WorkerPool:
        if self._closed:
            raise WorkerError("this worker pool was shut down; create a new one")
        if self._executor is None:
            from loky import ProcessPoolExecutor
            from loky.backend import get_context

            self._executor = ProcessPoolExecutor(
                max_workers=self._workers,
                context=get_context("loky"),
                initializer=_init_worker,
                initargs=(self._log_queue, self._log_level, os.getpid()),
                # Workers grow legitimately (torch, LightGBM, numba caches): loky's default
                # recycles a worker past +300 MB, which re-imports torch on every task.
                env={**thread_env(1), "LOKY_MAX_MEMORY_LEAK_SIZE": str(MAX_WORKER_GROWTH_BYTES)},
            )
        return self

    def preload(self, modules: Sequence[str]) -> None:
        """Start the workers now and have them import ``modules`` (one such task per worker),
        returning at once: their start-up and imports then overlap this process's own work
        instead of delaying the first ``map``. Nothing is computed; a failed import is left for
        the task that needs the module to report."""
        self.start()
        for _ in range(self._workers):
            self._executor.submit(_import_modules, tuple(modules))

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        # After an error or Ctrl-C do not wait for queued work: kill the workers.
        self.shutdown(kill=et is not None)

    def shutdown(self, *, kill: bool = False) -> None:
        self._closed = True
        self._kill_executor(kill=kill)
        # Drop this process's mappings of the shared files (a long-lived parent would keep
        # every closed pool's arrays mapped, deleted but never freed).
        for key in self._shared_keys:
            _SHARED_CACHE.pop(key, None)
        self._shared_keys.clear()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            _untrack_folder(self._tmpdir)
            self._tmpdir = None

    def _kill_executor(self, *, kill: bool = True) -> None:
        ex, self._executor = self._executor, None
        if ex is not None:
            with contextlib.suppress(Exception):
                ex.shutdown(wait=True, kill_workers=kill)

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for tests and status reports)."""
        self.start()
        if not getattr(self._executor, "_processes", None):
            self._executor.submit(_worker_pid).result()  # loky spawns on the first task
        procs = getattr(self._executor, "_processes", None) or {}
        return sorted(p.pid for p in list(procs.values()) if p.is_alive())

    # -- data ------------------------------------------------------------------------------

    def share(self, arrays: Mapping[str, np.ndarray]) -> SharedArrays:
        """Write ``arrays`` once to memory-mappable files that every worker reads."""
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="singularity-pool-")
            _track_folder(self._tmpdir)
        key = uuid.uuid4().hex
        self._shared_keys.add(key)
        directory = Path(self._tmpdir) / key
        directory.mkdir()
        for name, arr in arrays.items():
            # Private scratch files in the pool's own temp dir, removed at shutdown; readers
            # only see them after share() returns, so no atomic rename is needed.
            np.save(directory / f"{name}.npy", np.ascontiguousarray(arr))
        handle = SharedArrays(key=key, directory=str(directory), names=tuple(arrays))
        _remember(key, handle.load())  # the parent (serial fallbacks) reads the same files
        return handle

    def release(self, handle: SharedArrays) -> None:
        """Forget shared arrays no longer needed (a long-lived pool would collect them).
        Workers that still map the files keep valid mappings (POSIX unlink semantics)."""
        _SHARED_CACHE.pop(handle.key, None)
        self._shared_keys.discard(handle.key)
        if handle.directory is not None and self._tmpdir is not None:
            shutil.rmtree(handle.directory, ignore_errors=True)

    # -- work ------------------------------------------------------------------------------

    def map(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        timeout: float | None = None,
        chunksize: int | None = None,
    ) -> list[R]:
        """``[fn(x) for x in items]`` over the workers, in order.

        ``fn`` must be a module-level function and ``items`` plain picklable data. ``timeout``
        bounds each batch (seconds, measured as the batch's share of the wall time the whole
        map may take); a batch lost to a dead or hung worker is retried once on fresh workers.
        An exception raised by ``fn`` itself propagates unchanged.
        """
        items = list(items)
        batches = split_batches(items, self._workers, chunksize)
        results: list[list[R] | None] = [None] * len(batches)
        pending = list(range(len(batches)))
        attempt = 0
        try:
            while pending:
                attempt += 1
                failed, reason = self._run_round(fn, batches, pending, results, timeout)
                if not failed:
                    break
                if attempt >= 2:
                    raise WorkerError(
                        f"{len(failed)} batch(es) of {getattr(fn, '__name__', fn)} failed twice "
                        f"({reason}); giving up"
                    )
                log.warning("%s; retrying %d batch(es) on fresh workers", reason, len(failed))
                self._kill_executor()
                pending = failed
        except BaseException:
            # Ctrl-C or an error mid-map: never leave workers computing orphaned batches.
            self._kill_executor()
            raise
        out: list[R] = []
        for r in results:
            assert r is not None
            out.extend(r)
        return out

    def _run_round(
        self,
        fn: Callable[[T], R],
        batches: list[Sequence[T]],
        pending: list[int],
        results: list[list[R] | None],
        timeout: float | None,
    ) -> tuple[list[int], str]:
        from concurrent.futures import TimeoutError as FuturesTimeout
        from concurrent.futures.process import BrokenProcessPool

        self.start()
        try:
            futures: dict[int, Future[list[R]]] = {
                i: self._executor.submit(_run_batch, fn, batches[i]) for i in pending
            }
        except BrokenProcessPool as e:  # a worker died while the pool was idle
            return list(pending), f"a worker died ({type(e).__name__})"
        # Batches queue behind each other: the map may take `timeout` per round of workers.
        rounds = math.ceil(len(pending) / self._workers)
        deadline = None if timeout is None else time.monotonic() + timeout * rounds
        failed: list[int] = []
        reason = ""
        for i, fut in futures.items():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                results[i] = fut.result(timeout=left)
            except FuturesTimeout:
                failed.append(i)
                reason = f"a batch ran past its {timeout:g}s timeout"
            except BrokenProcessPool as e:  # loky's TerminatedWorkerError is one
                failed.append(i)
                reason = f"a worker died ({type(e).__name__})"
        return failed, reason

    def worker_call(self, fn: Callable[[], R]) -> R:
        """Run a no-argument module-level function in one worker (diagnostics)."""
        self.start()
        return self._executor.submit(fn).result()


def run_map(
    pool: Pool | None,
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    timeout: float | None = None,
    chunksize: int | None = None,
) -> list[R]:
    """``pool.map`` or, with no pool, the same calls serially in this process."""
    if pool is None:
        return [fn(x) for x in items]
    return pool.map(fn, items, timeout=timeout, chunksize=chunksize)
