"""The run survives a killed worker with the same result; Ctrl-C leaves no process behind;
repeated runs with numpy/numba/LightGBM loaded never hang; the Dask backend gives the same
hall of fame as the local pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
from gp_data import random_market

from singularity.evolution import evolve
from singularity.evolution.settings import EvolutionSettings
from singularity.runtime.pool import WorkerPool

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


def _hof(result) -> list[tuple[str, float]]:
    return [(h.expression, h.fitness) for h in result.hall_of_fame]


def _generations_logged(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


def test_worker_killed_mid_run_gives_the_same_result(tmp_path) -> None:
    inputs, candles = random_market(n=1500, n_features=6, seed=8)
    kw = dict(population=150, generations=6, seed=4, settings=EvolutionSettings(stagnation_generations=50))
    expected = evolve(inputs, candles, **kw)
    stats = tmp_path / "gp.jsonl"
    killed: dict[str, int] = {}

    with WorkerPool(2) as pool:
        assert len(pool.worker_pids()) == 2
        pids: list[int] = []

        def killer() -> None:
            deadline = time.monotonic() + 120
            while _generations_logged(stats) < 2 and time.monotonic() < deadline:
                time.sleep(0.005)
            killed["after_generations"] = _generations_logged(stats)
            pids.extend(pool.worker_pids())
            os.kill(pids[0], signal.SIGKILL)

        t = threading.Thread(target=killer, daemon=True)
        t.start()
        got = evolve(inputs, candles, pool=pool, stats_path=stats, **kw)
        t.join(5)
    assert killed and killed["after_generations"] < 7, "the kill came after the run ended"
    assert not psutil.pid_exists(pids[0])
    assert _hof(got) == _hof(expected)


_SIGINT_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{tests!r}, {src!r}]
    from gp_data import random_market
    from singularity.evolution import evolve
    from singularity.evolution.settings import EvolutionSettings
    from singularity.runtime.pool import WorkerPool
    inputs, candles = random_market(n=3000, n_features=8, seed=1)
    with WorkerPool(2) as pool:
        print("workers", *pool.worker_pids(), flush=True)
        evolve(inputs, candles, population=400, generations=500, seed=1, pool=pool,
               settings=EvolutionSettings(stagnation_generations=1000), stats_path={stats!r})
    """
)


def test_ctrl_c_shuts_the_pool_down_and_leaves_no_process(tmp_path) -> None:
    stats = tmp_path / "gp.jsonl"
    code = _SIGINT_SCRIPT.format(tests=str(HERE), src=str(SRC), stats=str(stats))
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,  # its own process group, as a terminal job
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("workers"), proc.stderr.read() if proc.stderr else ""
        deadline = time.monotonic() + 120
        while _generations_logged(stats) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        assert len(family) >= 3  # the parent and its two workers at least
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        proc.wait(timeout=60)
        _gone, alive = psutil.wait_procs(family, timeout=20)
        assert not alive, [p.pid for p in alive]
        assert proc.returncode != 0
        assert "KeyboardInterrupt" in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()


_REPEAT_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{tests!r}, {src!r}]
    import lightgbm, numba, numpy  # loaded in the parent before any pool
    from gp_data import random_market
    from singularity.evolution import evolve
    from singularity.evolution.settings import EvolutionSettings
    from singularity.runtime.pool import WorkerPool
    from singularity.runtime.pool import run_map
    import runtime_heavy
    inputs, candles = random_market(n=300, n_features=4, seed=2)
    settings = EvolutionSettings(batch_timeout_s=60)
    for i in range(20):
        with WorkerPool(2) as pool:
            assert run_map(pool, runtime_heavy.import_heavy, [0, 1], chunksize=1) == [1, 1]
            evolve(inputs, candles, population=16, generations=1, seed=i, pool=pool,
                   settings=settings)
        print("run", i, flush=True)
    """
)


def _read_line(stream, into: list[str]) -> None:  # type: ignore[no-untyped-def]
    into.append(stream.readline())


@pytest.mark.slow
def test_twenty_consecutive_runs_never_hang(tmp_path) -> None:
    (tmp_path / "runtime_heavy.py").write_text(
        "def import_heavy(_):\n    import lightgbm, numba, numpy\n    return 1\n"
    )
    code = _REPEAT_SCRIPT.format(tests=str(HERE), src=str(SRC)).replace(
        "import runtime_heavy", f"sys.path.insert(0, {str(tmp_path)!r}); import runtime_heavy"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    per_run_s = 180.0  # generous: spawning and importing on a loaded 2-core machine
    done: list[str] = []
    try:
        assert proc.stdout is not None
        for _ in range(20):
            line: list[str] = []
            reader = threading.Thread(target=_read_line, args=(proc.stdout, line))
            reader.start()
            reader.join(per_run_s)
            assert line and line[0].startswith("run"), (done, "a run hung or failed")
            done.append(line[0].strip())
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    assert done[-1] == "run 19"


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_hall_of_fame() -> None:
    distributed = pytest.importorskip("distributed")
    from singularity.runtime.dask_pool import DaskPool

    inputs, candles = random_market(n=400, n_features=4, seed=6)
    kw = dict(population=40, generations=3, seed=7,
              settings=EvolutionSettings(islands=2, batch_timeout_s=60))
    local = evolve(inputs, candles, **kw)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster, DaskPool(cluster.scheduler_address) as pool:
        assert pool.workers == 2
        remote = evolve(inputs, candles, pool=pool, **kw)
    assert _hof(remote) == _hof(local)
