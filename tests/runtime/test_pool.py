"""WorkerPool: order, batching, errors, crash retry, timeouts, shared arrays, logging, threads."""

from __future__ import annotations

import os

import numpy as np
import pytest
import runtime_tasks as tasks

from singularity.runtime.logging import LogHub
from singularity.runtime.pool import (
    WorkerError,
    WorkerPool,
    run_map,
    share_arrays,
    split_batches,
)


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(2) as p:
        yield p


def test_split_batches_covers_items_in_order() -> None:
    items = list(range(10))
    batches = split_batches(items, workers=2, chunksize=None)
    assert [x for b in batches for x in b] == items
    assert len(batches) == 5  # ceil(10 / (2 workers * 4)) = 2 items per batch
    assert [len(b) for b in split_batches(items, 2, 4)] == [4, 4, 2]
    assert split_batches([], 2, None) == []


def test_map_keeps_order(pool: WorkerPool) -> None:
    assert pool.workers == 2
    assert pool.map(tasks.square, range(50)) == [x * x for x in range(50)]
    assert pool.map(tasks.square, range(7), chunksize=1) == [x * x for x in range(7)]
    assert run_map(None, tasks.square, [2, 3]) == [4, 9]


def test_workers_are_single_threaded(pool: WorkerPool) -> None:
    for state in pool.map(tasks.thread_state, range(4), chunksize=1):
        assert state == {"numba": 1, "omp_env": "1", "max_pool_threads": 1}


def test_task_error_propagates_unchanged(pool: WorkerPool) -> None:
    with pytest.raises(ValueError, match="bad item 3"):
        pool.map(tasks.boom, range(6))
    assert pool.map(tasks.square, [4]) == [16]  # the pool still works


def test_crashed_worker_batch_is_retried(tmp_path) -> None:
    marker = str(tmp_path / "died")
    with WorkerPool(2) as p:
        out = p.map(tasks.die_once, [(marker, x) for x in range(8)], chunksize=2)
    assert out == [x + 1 for x in range(8)]
    assert os.path.exists(marker)


def test_batch_that_always_crashes_fails_clearly() -> None:
    with WorkerPool(1) as p, pytest.raises(WorkerError, match="failed twice"):
        p.map(tasks.always_die, [1])


def test_hung_batch_times_out() -> None:
    with WorkerPool(1) as p, pytest.raises(WorkerError, match="timeout"):
        p.map(tasks.sleepy, [30.0], timeout=0.5)


def test_shared_arrays_reach_workers_as_memmaps(pool: WorkerPool) -> None:
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    handle = pool.share({"a": a})
    assert pool.map(tasks.shared_sum, [(handle, i) for i in range(3)]) == [6.0, 22.0, 38.0]
    assert all(pool.map(tasks.shared_is_memmap, [handle, handle], chunksize=1))
    local = share_arrays({"a": a}, None)
    assert tasks.shared_sum((local, 2)) == 38.0


def test_log_records_from_workers_reach_one_file(tmp_path) -> None:
    path = tmp_path / "run.log"
    with LogHub(path) as hub, WorkerPool(2, log_queue=hub.queue) as p:
        p.map(tasks.log_line, range(6), chunksize=1)
    lines = [ln for ln in path.read_text().splitlines() if "hello from worker" in ln]
    assert sorted(int(ln.rsplit(" ", 1)[1]) for ln in lines) == list(range(6))
    assert os.getpid() not in {int(ln.split("hello from worker ")[1].split()[0]) for ln in lines}


def test_release_removes_the_shared_files(pool: WorkerPool) -> None:
    handle = pool.share({"a": np.ones(3)})
    assert handle.directory is not None and os.path.isdir(handle.directory)
    pool.release(handle)
    assert not os.path.exists(handle.directory)


def test_a_worker_exits_without_tearing_down_its_modules(tmp_path) -> None:
    # with torch loaded, the teardown took seconds per worker and shutdown waited for it;
    # the atexit handlers still run and the exit status stays 0
    with WorkerPool(1) as p:
        p.map(tasks.mark_exit, [str(tmp_path)])
        procs = list(p._executor._processes.values())
    assert [proc.exitcode for proc in procs] == [0]
    assert (tmp_path / "atexit").exists()
    assert (tmp_path / "teardown").read_bytes() == b""


def test_preload_starts_the_workers_with_modules_imported() -> None:
    # a forge cycle's workers start and import torch while the parent computes indicators
    with WorkerPool(1) as p:
        p.preload(["no_such_module_here", "xml.dom.minidom"])  # a failed import breaks nothing
        assert p.map(tasks.has_module, ["xml.dom.minidom", "xml.sax"]) == [True, False]
