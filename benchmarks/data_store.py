"""The candle store against plain pandas on the same real files, in the same run.

- import: ``import_file`` + ``CandleStore.write`` (parse, validate, merge, atomic Parquet
  write) of every 1h feather file, against ``pd.read_feather`` + ``DataFrame.to_parquet``
  of the same files (no checks, no atomicity): the price of safety.
- read: ``CandleStore.read`` of every symbol against ``pd.read_feather`` of the originals.
- list: ``CandleStore.entries()`` (Parquet metadata only) against reading every file.
- append: one new candle merged into a stored BTC/USDT 1h series (the live engine's case).

Prints one JSON object (best of ``--repeat`` runs for each figure).

    .venv/bin/python benchmarks/data_store.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

DATA = Path(os.environ.get(
    "SINGULARITY_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
)) / "binance-spot-2024-2026"


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_store(repeat: int = 3) -> dict[str, float | int]:
    import pandas as pd

    from singularity.data.importers import import_file
    from singularity.data.store import CandleStore

    files = sorted(DATA.glob("*-1h.feather"))
    if not files:
        raise SystemExit(f"no 1h feather files in {DATA}")
    candles = sum(len(pd.read_feather(f, columns=["date"])) for f in files)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        def store_import() -> None:
            store = CandleStore(root / f"s{time.perf_counter_ns()}")
            for f in files:
                sym, tf, df = import_file(f)
                store.write("binance", sym, tf, df)

        def pandas_import() -> None:
            out = root / f"p{time.perf_counter_ns()}"
            out.mkdir()
            for f in files:
                pd.read_feather(f).to_parquet(out / f"{f.stem}.parquet")

        t_import = _best(store_import, repeat)
        t_import_pd = _best(pandas_import, repeat)

        store = CandleStore(root / "main")
        symbols = []
        for f in files:
            sym, tf, df = import_file(f)
            store.write("binance", sym, tf, df)
            symbols.append(sym)
        t_read = _best(lambda: [store.read("binance", s, "1h") for s in symbols], repeat)
        t_read_pd = _best(lambda: [pd.read_feather(f) for f in files], repeat)
        t_list = _best(store.entries, repeat)

        btc = store.read("binance", "BTC/USDT", "1h")
        step = pd.Timedelta(hours=1)
        state = {"frame": btc.iloc[-1:]}

        def append_one() -> None:
            nxt = state["frame"].copy()
            nxt.index = nxt.index + step
            store.write("binance", "BTC/USDT", "1h", nxt)
            state["frame"] = nxt

        t_append = _best(append_one, max(repeat, 5))

    return {
        "files": len(files),
        "candles": candles,
        "import_store_s": round(t_import, 4),
        "import_pandas_s": round(t_import_pd, 4),
        "import_ratio_store_over_pandas": round(t_import / t_import_pd, 2),
        "import_candles_per_s": round(candles / t_import),
        "read_store_s": round(t_read, 4),
        "read_feather_s": round(t_read_pd, 4),
        "read_ratio_store_over_feather": round(t_read / t_read_pd, 2),
        "list_entries_s": round(t_list, 4),
        "list_ratio_entries_over_full_read": round(t_list / t_read, 3),
        "append_one_candle_ms": round(t_append * 1000, 2),
        "append_series_rows": len(btc),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(json.dumps(bench_store(args.repeat), indent=2))


if __name__ == "__main__":
    main()
