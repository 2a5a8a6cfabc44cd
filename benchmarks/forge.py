"""Stage-by-stage wall time of one full forge cycle on real candles.

    python benchmarks/forge.py [--bars 8000] [--workers 2] [--population 500] [--generations 20]

Imports the 8 core pairs (1h) from ../shared/data into a temporary store, runs
``singularity.forge.cycle.run_forge`` on BTC/USDT with the default settings and prints one JSON
object: stage seconds, total seconds, the bake-off winner and whether a champion was promoted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from rich.console import Console

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SINGULARITY_SHARED_DATA", REPO.parent / "shared" / "data")) / "binance-spot-2024-2026"
CORE8 = ("BTC", "ETH", "SOL", "XRP", "BNB", "DOGE", "ADA", "LTC")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=8000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--population", type=int, default=500)
    ap.add_argument("--generations", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"real candles not found at {DATA}")

    from singularity.config import load_settings
    from singularity.data.importers import import_file
    from singularity.data.store import CandleStore
    from singularity.forge.cycle import ForgeOptions, run_forge

    with tempfile.TemporaryDirectory() as tmp:
        s = load_settings(environ={}, cwd=Path(tmp), overrides={"data.dir": str(Path(tmp) / "data")}).settings
        store = CandleStore(s.data.dir)
        for base in CORE8:
            sym, tf, df = import_file(DATA / f"{base}_USDT-1h.feather")
            store.write("binance", sym, tf, df)
        opts = ForgeOptions(symbol="BTC/USDT", timeframe="1h", population=a.population, generations=a.generations,
                            seed=a.seed, workers=a.workers, bars=a.bars, progress=False)
        t0 = time.perf_counter()
        out = run_forge(s, opts, say=Console(stderr=True).print)
        wall = time.perf_counter() - t0
    print(json.dumps({
        "benchmark": "forge cycle", "symbol": "BTC/USDT", "timeframe": "1h", "bars": a.bars,
        "workers": a.workers, "population": a.population, "generations": a.generations,
        "cpus": os.cpu_count(), "seconds": round(wall, 2),
        "stage_seconds": {k: round(v, 2) for k, v in out.stage_seconds.items()},
        "bakeoff_winner": out.bakeoff.get("winner"), "champion": out.champion is not None,
        "split": out.split, "when": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    }))


if __name__ == "__main__":
    main()
