"""The full feature set for the 8 core pairs x the last N 1h candles of ../shared/data.

Measures, in one run and on the same data: the build with a 2-worker pool (cache off) and,
as its peer, the same build serially; a cache hit; extending the cached build by one new
candle; and CEEMDAN windows per second against PyEMD on the same windows and noise (the
CEEMDAN engineer's ``benchmarks/ceemdan.py:bench_ceemdan``). Prints one JSON object.

    .venv/bin/python benchmarks/features.py [--candles 5000] [--workers 2] [--no-serial]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from singularity.data.importers import read_freqtrade_feather

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SINGULARITY_SHARED_DATA", HERE.parents[1] / "shared" / "data"))
CORE8 = ("BTC", "ETH", "SOL", "XRP", "BNB", "DOGE", "ADA", "LTC")


def load_universe(candles: int) -> dict[str, pd.DataFrame]:
    out = {}
    for base in CORE8:
        out[f"{base}/USDT"] = read_freqtrade_feather(DATA / "binance-spot-2024-2026" / f"{base}_USDT-1h.feather")
    # the last ``candles`` timestamps shared by all eight (plus two for the extension steps)
    common = out["BTC/USDT"].index
    for df in out.values():
        common = common.intersection(df.index)
    keep = common[-(candles + 2):]
    return {s: df.loc[keep] for s, df in out.items()}


def _bench_ceemdan() -> dict[str, float | int]:
    spec = importlib.util.spec_from_file_location("bench_ceemdan_mod", HERE / "ceemdan.py")
    if spec is None or spec.loader is None:
        return {}
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.bench_ceemdan(windows=3, trials=50, window=256)


def _timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-serial", action="store_true", help="skip the serial peer build")
    parser.add_argument("--no-ceemdan", action="store_true", help="skip CEEMDAN vs PyEMD")
    args = parser.parse_args()

    from singularity.features.factory import FeatureFactory
    from singularity.features.gnn import clear_model_cache
    from singularity.features.settings import FeatureSettings
    from singularity.runtime.pool import WorkerPool

    settings = FeatureSettings()
    full = load_universe(args.candles)
    base = {s: df.iloc[:-2] for s, df in full.items()}  # N candles
    plus1 = {s: df.iloc[:-1] for s, df in full.items()}  # N + 1, then ``full``: N + 2
    report: dict[str, object] = {
        "assets": len(base), "candles": len(next(iter(base.values()))),
        "workers": args.workers, "cpu_count": os.cpu_count(),
    }
    # load every numba kernel and torch once, so no timing below pays for compilation
    tiny = FeatureSettings.model_validate({
        "indicators": {"ma_periods": [10]}, "ceemdan": {"window": 64, "trials": 2},
        "graph": {"corr_window": 32, "gnn_train_window": 60, "gnn_epochs": 1},
    })
    warm_u = {s: df.iloc[-300:] for s, df in base.items()}
    FeatureFactory(tiny).build(warm_u, progress=False)

    with tempfile.TemporaryDirectory() as tmp, WorkerPool(args.workers) as pool:
        _, report["pool_start_s"] = _timed(lambda: pool.map(abs, [-1, -2]))
        # a long-lived pool's workers have imported torch and loaded the numba kernels once;
        # the first task of a fresh worker pays for that, so it is timed apart
        _, report["pool_warmup_s"] = _timed(
            lambda: FeatureFactory(tiny, pool=pool).build(warm_u, progress=False))
        clear_model_cache()  # no GNN fit memoised by the warm-up builds
        factory = FeatureFactory(settings, pool=pool, cache_dir=Path(tmp))
        fs, build_s = _timed(lambda: factory.build(base, progress=False))
        assert factory.last_cache_relation == "miss"
        report["build_s"] = round(build_s, 2)
        report["features"] = len(fs.catalogue)
        report["families"] = sorted({s.family for s in fs.catalogue})
        report["notes"] = list(fs.notes)
        report["build_stages_s"] = dict(fs.timings)
        _, hit_s = _timed(lambda: factory.build(base, progress=False))
        assert factory.last_cache_relation == "hit"
        report["cache_hit_s"] = round(hit_s, 3)
        # live engine: same process, the graph network's fits are memoised in memory
        ext, ext_s = _timed(lambda: factory.build(plus1, progress=False))
        assert factory.last_cache_relation == "extend"
        report["extend_one_candle_s"] = round(ext_s, 2)
        report["extend_notes"] = list(ext.notes)
        report["extend_stages_s"] = dict(ext.timings)
        # a fresh process (CLI): nothing memoised, the latest GNN window is refitted
        clear_model_cache()
        cold, cold_s = _timed(lambda: factory.build(full, progress=False))
        assert factory.last_cache_relation == "extend"
        report["extend_one_candle_cold_s"] = round(cold_s, 2)
        report["extend_cold_stages_s"] = dict(cold.timings)
        report["cache_hit_speedup"] = round(build_s / hit_s, 1)
        report["extend_vs_full_build"] = round(ext_s / build_s, 3)

    if not args.no_serial:
        clear_model_cache()
        sfs, serial_s = _timed(lambda: FeatureFactory(settings).build(base, progress=False))
        report["serial_build_s"] = round(serial_s, 2)
        report["serial_stages_s"] = dict(sfs.timings)
        report["parallel_speedup"] = round(serial_s / build_s, 2)
    if not args.no_ceemdan:
        report["ceemdan_vs_pyemd"] = _bench_ceemdan()
    json.dump(report, sys.stdout)
    print()


if __name__ == "__main__":
    main()
