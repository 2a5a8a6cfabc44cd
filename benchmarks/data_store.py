"""The candle store against plain pandas on the same real files, in the same run.

- import: ``import_file`` + ``CandleStore.write`` (parse, validate, merge, atomic Parquet
  write) of every 1h feather file, against ``pd.read_feather`` + ``DataFrame.to_parquet``
  of the same files (no checks, no atomicity): the price of safety.
- read: ``CandleStore.read`` of every symbol against ``pd.read_feather`` of the originals.
- list: ``CandleStore.entries()`` (Parquet metadata only) against reading every file.
- append: one new candle merged into a stored BTC/USDT 1h series (the live engine's case).
- append_1m: one candle at a time onto a 1,000,000-row synthetic 1m series (median, 95th
  percentile and worst of ``--appends``), beside the one-file design's append measured in the
  same run (read the whole file, merge, rewrite it atomically), and the write that folds the
  append log back into the monthly partitions.

Prints one JSON object (best of ``--repeat`` runs for each figure) with the core count and
the load average: on a shared machine, read the ratios.

    .venv/bin/python benchmarks/data_store.py [--repeat 3] [--appends 200] [--only-append]
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


def synthetic_minutes(n: int, seed: int = 0):  # type: ignore[no-untyped-def]
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    idx = pd.date_range("2023-01-01", periods=n, freq="1min", tz="UTC", name="timestamp")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.r_[close[0], close[:-1]]
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.0005,
                         "low": np.minimum(open_, close) * 0.9995, "close": close,
                         "volume": rng.random(n)}, index=idx.as_unit("ns"))


def bench_append(rows: int, appends: int) -> dict[str, float | int]:
    """One-candle appends onto a long 1m series, and the one-file design beside it."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    from singularity.data.schema import ensure_valid
    from singularity.data.store import CandleStore, _frame_to_table, _table_to_frame
    from singularity.storage import atomic_write_with

    df = synthetic_minutes(rows + appends + 1)
    base, extra = df.iloc[:rows], df.iloc[rows:]
    with tempfile.TemporaryDirectory() as tmp:
        store = CandleStore(Path(tmp) / "s")
        t0 = time.perf_counter()
        store.write("binance", "BTC/USDT", "1m", base)
        t_first = time.perf_counter() - t0
        times = []
        for i in range(appends):
            t0 = time.perf_counter()
            store.write("binance", "BTC/USDT", "1m", extra.iloc[i : i + 1])
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        store.read("binance", "BTC/USDT", "1m", start=base.index[-1440])  # the last day
        t_day = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.read("binance", "BTC/USDT", "1m")
        t_all = time.perf_counter() - t0
        # a write into the past: the log is folded into the monthly partitions
        past = base.iloc[[rows // 2]].copy()
        past["volume"] += 1.0
        t0 = time.perf_counter()
        store.write("binance", "BTC/USDT", "1m", past)
        t_fold = time.perf_counter() - t0

        # the one-file design (the store before partitions), same data, same run
        one = Path(tmp) / "one.parquet"
        rep = ensure_valid(base, "1m")
        pq.write_table(_frame_to_table(base, "binance", "BTC/USDT", "1m", rep), one)
        peer = []
        for i in range(min(appends, 5)):
            t0 = time.perf_counter()
            old = _table_to_frame(pq.read_table(one))
            merged = pd.concat([old, extra.iloc[i : i + 1]])
            merged = merged[~merged.index.duplicated(keep="last")].sort_index()
            rep = ensure_valid(merged, "1m")
            table = _frame_to_table(merged, "binance", "BTC/USDT", "1m", rep)
            atomic_write_with(one, lambda p, t=table: pq.write_table(t, p, compression="zstd"))
            peer.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return {
        "append_1m_series_rows": rows,
        "append_1m_appends": appends,
        "append_1m_median_ms": round(float(np.median(ms)), 2),
        "append_1m_p95_ms": round(float(np.percentile(ms, 95)), 2),
        "append_1m_max_ms": round(float(ms.max()), 2),
        "one_file_append_median_ms": round(float(np.median(peer)) * 1000, 1),
        "ratio_one_file_over_partitioned": round(float(np.median(peer)) * 1000 / float(np.median(ms)), 1),
        "first_write_of_the_series_s": round(t_first, 2),
        "read_last_day_ms": round(t_day * 1000, 1),
        "read_all_s": round(t_all, 3),
        "fold_log_into_partitions_ms": round(t_fold * 1000, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--appends", type=int, default=200)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--only-append", action="store_true", help="skip the real-file figures")
    args = ap.parse_args()
    out: dict[str, object] = {"cpu_count": os.cpu_count(),
                              "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    if not args.only_append:
        out.update(bench_store(args.repeat))
    out.update(bench_append(args.rows, args.appends))
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
