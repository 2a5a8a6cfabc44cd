"""Backtest bars per second: our numba kernel against vectorbt on the same candles and positions.

Real BTC/USDT 1h candles from ../shared/data when present (else a synthetic random walk of the
same length), random target positions (longs, shorts, partial sizes, flats) held for random
stretches, fee 10 bps + slippage 5 bps, fills at the next open. Timed, each after a warm-up call
that loads the compiled code, as the fastest of ``--repeat`` runs (the machine is shared, so the
minimum is the least noisy estimate):

* ``kernel``: ``kernel.simulate`` (equity, positions, trade list) on arrays;
* ``bar_returns``: the lean fitness kernel (returns only);
* ``run``: the pandas wrapper ``singularity.backtest.run`` (checks, frames, metrics);
* ``vectorbt``: ``Portfolio.from_orders`` configured to the same accounting, plus ``.value()``,
  given plain numpy arrays: its fastest path (a tz-aware index costs it ~0.2 s more per call in
  converting timestamps).

``run_vs_vectorbt`` compares like with like (pandas in, pandas out, both); ``kernel_vs_vectorbt``
shows what a caller working on arrays (the GP fitness) saves.

The final equities of both are compared too. Prints one JSON object.

    .venv/bin/python benchmarks/backtest.py [--repeat 20] [--bars 0] [--synthetic]

With ``--synthetic --bars 1000000`` vectorbt's fixed per-call overhead is amortised and the ratio
compares the two engines per bar.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from singularity.data.importers import read_freqtrade_feather

DATA = (
    Path(
        os.environ.get(
            "SINGULARITY_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
        )
    )
    / "binance-spot-2024-2026"
)
FEE, SLIP = 0.001, 0.0005


def load_candles(bars: int, synthetic: bool = False) -> tuple[pd.DataFrame, str]:
    """Real BTC 1h candles (the last ``bars``, all when 0), else (or when asked) a synthetic walk."""
    path = DATA / "BTC_USDT-1h.feather"
    if path.exists() and not synthetic:
        df = read_freqtrade_feather(path)
        return (df.iloc[-bars:] if bars else df), "binance BTC/USDT 1h"
    n = bars or 17_000
    rng = np.random.default_rng(0)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    frame = {"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close)}
    return pd.DataFrame(frame | {"close": close, "volume": 1.0}, index=idx), "synthetic walk"


def random_targets(n: int, max_hold: int = 50, seed: int = 0) -> np.ndarray:
    """Random levels held 1..max_hold bars (long series hold longer: costs must not grind the
    account to 1e-20, where float tolerances, not accounting, would decide the comparison)."""
    rng = np.random.default_rng(seed)
    levels = rng.choice([-1.0, -0.6, -0.25, 0.0, 0.3, 0.75, 1.0], n)
    return np.repeat(levels, rng.integers(1, max_hold, n))[:n]


def best_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: loads compiled code and caches
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench(repeat: int = 20, bars: int = 0, synthetic: bool = False) -> dict[str, object]:
    import vectorbt as vbt

    from singularity.backtest import bar_returns, run, simulate

    candles, source = load_candles(bars, synthetic)
    n = len(candles)
    o, c = candles["open"].to_numpy(), candles["close"].to_numpy()
    target = random_targets(n, max_hold=max(50, n // 250))
    no_funding = np.empty(0)

    wanted = np.concatenate([[0.0], target[:-1]])
    size = np.where(wanted != np.concatenate([[0.0], wanted[:-1]]), wanted, np.nan)

    def vectorbt_equity() -> np.ndarray:
        pf = vbt.Portfolio.from_orders(
            close=c,
            size=size,
            size_type="targetpercent",
            price=o,
            val_price=o,
            fees=FEE,
            slippage=SLIP,
            direction="both",
            init_cash=1.0,
            freq="1h",
        )
        return pf.value().to_numpy()

    def kernel_equity() -> np.ndarray:
        return simulate(o, c, target, FEE, SLIP, True, no_funding, 1.0)[1]

    secs = {
        "kernel": best_seconds(kernel_equity, repeat),
        "bar_returns": best_seconds(lambda: bar_returns(o, c, target, FEE + SLIP, True), repeat),
        "run": best_seconds(
            lambda: run(candles, target, timeframe="1h", fee_bps=10, slippage_bps=5), repeat
        ),
        "vectorbt": best_seconds(vectorbt_equity, repeat),
    }
    ours, theirs = kernel_equity(), vectorbt_equity()
    out: dict[str, object] = {"data": source, "bars": n, "repeat": repeat}
    out |= {f"{k}_bars_per_s": round(n / s) for k, s in secs.items()}
    out |= {
        "kernel_vs_vectorbt": round(secs["vectorbt"] / secs["kernel"], 1),
        "bar_returns_vs_vectorbt": round(secs["vectorbt"] / secs["bar_returns"], 1),
        "run_vs_vectorbt": round(secs["vectorbt"] / secs["run"], 2),
        "max_rel_equity_diff": float(np.max(np.abs(ours / theirs - 1))),
        "trades": int(simulate(o, c, target, FEE, SLIP, True, no_funding, 1.0)[7]),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, default=20, help="timed runs per engine (fastest kept)"
    )
    parser.add_argument("--bars", type=int, default=0, help="last N candles (0 = all)")
    parser.add_argument(
        "--synthetic", action="store_true", help="a synthetic walk of --bars candles (long series)"
    )
    args = parser.parse_args()
    print(json.dumps(bench(args.repeat, args.bars, args.synthetic)))


if __name__ == "__main__":
    main()
