"""Longevity: one process repeats what the engine does for weeks, and its footprint is watched.

Each iteration opens and closes a worker pool (a map over it), runs a tiny forge cycle (the
real stages with a small budget, on the last ``--bars`` candles of a synthetic store) and
appends one candle, so the next cycle's window slides by one bar (the feature cache's window
path). Printed as JSON lines: the process's RSS, open file descriptors, threads, child
processes, its temporary files (pool folders, log sockets, loky semaphores) and the feature
cache's and data directory's size, after the first iteration (warm-up), in the middle and at
the end, then a summary with the growth from the first to the last sample. Goal: flat.

    python benchmarks/longevity.py [--iterations 200] [--bars 1500] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from singularity.features.cache import dir_size

FAST: dict[str, Any] = {
    "features.ceemdan.enabled": False,
    "features.graph.enabled": False,
    "bakeoff.models": ["logistic", "lightgbm"],
    "bakeoff.folds": 3,
    "gauntlet.noise_runs": 2,
    "gauntlet.permutation_runs": 50,
    "gauntlet.search_null_runs": 1,
    "gauntlet.walk_forward_blocks": 2,
}


def _candles(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    r = rng.normal(0, 0.01, n)
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[100.0], close[:-1]])
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.001,
                         "low": np.minimum(open_, close) * 0.999, "close": close,
                         "volume": rng.lognormal(8, 0.3, n)}, index=idx)


def _kind(p: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        cmd = " ".join(p.cmdline())
        for k in ("loky.backend.resource_tracker", "multiprocessing.resource_tracker",
                  "popen_loky_posix"):
            if k in cmd:
                return k
        return cmd[:40]
    return "gone"


def _sample(i: int, data_dir: Path, t0: float) -> dict[str, Any]:
    me = psutil.Process()
    tmp = tempfile.gettempdir()
    temp_files = os.listdir(tmp) + glob.glob(f"/dev/shm/sem.loky-{os.getpid()}-*")
    return {
        "iteration": i, "seconds": round(time.perf_counter() - t0, 1),
        "rss_mb": round(me.memory_info().rss / 2**20, 1), "fds": me.num_fds(),
        "threads": threading.active_count(), "os_threads": me.num_threads(),
        "children": len(me.children(recursive=True)), "temp_files": len(temp_files),
        "child_kinds": sorted({_kind(c) for c in me.children(recursive=True)}),
        "deleted_maps": sum("(deleted)" in ln for ln in open("/proc/self/maps")),
        "feature_cache_mb": round(dir_size(data_dir / "features") / 2**20, 2),
        "data_dir_mb": round(dir_size(data_dir) / 2**20, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--bars", type=int, default=1500)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()

    from singularity.config import load_settings
    from singularity.data.store import CandleStore
    from singularity.forge.cycle import ForgeOptions, run_forge
    from singularity.runtime.pool import WorkerPool

    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        (tmp / "tmp").mkdir()
        tempfile.tempdir = str(tmp / "tmp")  # this process's temporary files only
        s = load_settings(environ={}, cwd=tmp, overrides={"data.dir": str(tmp / "data"), **FAST}).settings
        store = CandleStore(s.data.dir)
        total = a.bars + a.iterations + 10
        all_candles = _candles(total)
        store.write("synthetic", "BTC/USDT", "1h", all_candles.iloc[: a.bars])
        opts = ForgeOptions(symbol="BTC/USDT", timeframe="1h", population=16, generations=1, seed=0,
                            workers=a.workers, exchange="synthetic", bars=a.bars, progress=False)
        samples = []
        marks = {1, max(1, a.iterations // 2), a.iterations}
        t0 = time.perf_counter()
        for i in range(1, a.iterations + 1):
            with WorkerPool(a.workers) as pool:
                pool.map(abs, range(-8, 8))
            run_forge(s, opts, say=lambda _m: None)
            store.write("synthetic", "BTC/USDT", "1h", all_candles.iloc[a.bars + i - 1 : a.bars + i])
            if i in marks:
                samples.append(_sample(i, Path(s.data.dir), t0))
                print(json.dumps({"benchmark": "longevity", **samples[-1]}), flush=True)
        first, last = samples[0], samples[-1]
        growth = {k: round(last[k] - first[k], 2) for k in first
                  if k not in ("iteration", "seconds", "child_kinds")}
        print(json.dumps({"benchmark": "longevity summary", "iterations": a.iterations,
                          "bars": a.bars, "workers": a.workers, "cpus": os.cpu_count(),
                          "load_at_start": [round(x, 2) for x in load],
                          "load_at_end": [round(x, 2) for x in os.getloadavg()],
                          "seconds_per_iteration": round(last["seconds"] / a.iterations, 2),
                          "growth_first_to_last": growth}), flush=True)


if __name__ == "__main__":
    main()
