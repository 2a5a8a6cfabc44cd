"""A parent that dies however it dies (SIGKILL, SIGTERM) leaves no worker, semaphore or
temporary directory behind, whether its pool was idle or busy."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
CLEANUP_BOUND_S = 15.0  # generous on a loaded 2-core machine; the usual figure is ~1 s

_PARENT = textwrap.dedent(
    """
    import json, sys, time
    sys.path[:0] = [{tests!r}, {src!r}]
    import numpy as np
    import runtime_tasks as tasks
    from singularity.runtime.pool import WorkerPool
    from singularity.runtime.signals import sigterm_as_interrupt
    sigterm_as_interrupt()  # as every long-running command does
    pool = WorkerPool(2).start()
    handle = pool.share({{"a": np.ones(1000)}})
    print(json.dumps({{"workers": pool.worker_pids(), "tmp": str(pool._tmpdir)}}), flush=True)
    if {busy!r}:
        pool.map(tasks.spin, [120.0] * 4, chunksize=1)
    else:
        time.sleep(120)
    """
)


def _leftovers(pid: int, family: list[psutil.Process], tmp: str) -> list[str]:
    out = [f"process {p.pid}" for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    out += glob.glob(f"/dev/shm/sem.loky-{pid}-*")
    if os.path.exists(tmp):
        out.append(tmp)
    return out


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_dead_parent_leaves_nothing(sig: int, busy: bool) -> None:
    code = _PARENT.format(tests=str(HERE), src=str(SRC), busy=busy)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    family: list[psutil.Process] = []
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("{"), proc.stderr.read() if proc.stderr else ""
        info = json.loads(line)
        assert len(info["workers"]) == 2 and os.path.isdir(info["tmp"])
        if busy:
            time.sleep(0.5)  # the batches are running
        family = psutil.Process(proc.pid).children(recursive=True)
        assert {p.pid for p in family} >= set(info["workers"])
        assert glob.glob(f"/dev/shm/sem.loky-{proc.pid}-*")
        t0 = time.monotonic()
        os.kill(proc.pid, sig)
        proc.wait(timeout=CLEANUP_BOUND_S)
        left = _leftovers(proc.pid, family, info["tmp"])
        while left and time.monotonic() - t0 < CLEANUP_BOUND_S:
            time.sleep(0.05)
            left = _leftovers(proc.pid, family, info["tmp"])
        elapsed = time.monotonic() - t0
        assert left == [], f"after {elapsed:.1f}s: {left}"
        print(f"clean after {elapsed:.2f}s ({signal.Signals(sig).name}, {'busy' if busy else 'idle'})")
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in family:  # never leave a failed run's orphans behind
            if p.is_running():
                p.kill()


def test_workers_survive_the_thread_that_spawned_them() -> None:
    # The parent-death signal fires when the spawning *thread* ends; workers must check that
    # the parent process is really gone before exiting.
    import threading

    import runtime_tasks as tasks

    from singularity.runtime.pool import WorkerPool

    with WorkerPool(2) as pool:
        box: dict[str, list[int]] = {}
        t = threading.Thread(target=lambda: box.setdefault("pids", pool.worker_pids()))
        t.start()
        t.join(120)
        time.sleep(0.5)  # the signal has been delivered by now
        assert pool.worker_pids() == box["pids"]
        assert pool.map(tasks.square, range(6), chunksize=1) == [x * x for x in range(6)]
        assert pool.worker_pids() == box["pids"]  # no worker died and was replaced
