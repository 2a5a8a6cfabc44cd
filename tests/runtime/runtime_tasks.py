"""Module-level task functions for the runtime tests (they must be importable by workers)."""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from singularity.runtime.pool import SharedArrays


def square(x: int) -> int:
    return x * x


def boom(x: int) -> int:
    if x == 3:
        raise ValueError("bad item 3")
    return x


def die_once(arg: tuple[str, int]) -> int:
    """Kill this worker the first time item 0 is seen (a marker file remembers it)."""
    marker, x = arg
    if x == 0 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return x + 1


def always_die(x: int) -> int:
    os._exit(1)


def sleepy(x: float) -> float:
    time.sleep(x)
    return x


def shared_sum(arg: tuple[SharedArrays, int]) -> float:
    handle, i = arg
    a = handle.load()["a"]
    return float(a[i].sum())


def shared_is_memmap(handle: SharedArrays) -> bool:
    return isinstance(handle.load()["a"], np.memmap)


def log_line(x: int) -> int:
    logging.getLogger("singularity.test").info("hello from worker %d item %d", os.getpid(), x)
    return x


def thread_state(_: int) -> dict[str, int | str]:
    import numba
    from threadpoolctl import threadpool_info

    return {
        "numba": numba.get_num_threads(),
        "omp_env": os.environ.get("OMP_NUM_THREADS", ""),
        "max_pool_threads": max([i["num_threads"] for i in threadpool_info()] or [1]),
    }


def spin(seconds: float) -> float:
    """Busy for ``seconds`` of pure Python (holds the GIL between switches, as real work does)."""
    end = time.monotonic() + seconds
    x = 0.0
    while time.monotonic() < end:
        x += 1.0
    return x


def log_burst(arg: tuple[int, int, int, str]) -> int:
    """Log ``n`` lines tagged (cycle, item, j); the first time item 0 of a cycle is seen (the
    marker file remembers it), log without end while another thread SIGKILLs this worker."""
    cycle, item, n, marker = arg
    log = logging.getLogger("singularity.test.burst")
    if item == 0 and not os.path.exists(marker):
        import signal
        import threading

        open(marker, "w").close()
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGKILL)).start()
        j = 0
        while True:
            log.info("burst %d %d %d %s", cycle, item, j, "x" * 200)
            j += 1
    for j in range(n):
        log.info("burst %d %d %d %s", cycle, item, j, "x" * 200)
    return item


class _WriteOnDel:
    """Writes to its file when deleted (with functions bound now: a module being torn down may
    have lost its globals by then)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        self.write = os.write

    def __del__(self) -> None:
        self.write(self.fd, b"deleted")


_KEPT: list[_WriteOnDel] = []


def mark_exit(folder: str) -> int:
    """Leave traces of this worker's exit: an atexit handler's file and, written when the
    interpreter tears its modules down, a module global's ``__del__`` file."""
    import atexit

    atexit.register(lambda: open(os.path.join(folder, "atexit"), "w").close())
    _KEPT.append(_WriteOnDel(os.path.join(folder, "teardown")))
    return os.getpid()


def has_module(name: str) -> bool:
    import sys

    return name in sys.modules
