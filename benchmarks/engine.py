"""The engine's speed: replay throughput beside ``backtest.run``, event-loop lag during a replay,
decision latency in paper mode against the local websocket exchange, ledger commits per second.

* ``replay``: candles per second through the whole engine (store feed, strategy worker in a
  spawned process with the features extended per batch, risk, replay venue, ledger), every
  symbol of the universe found in ../shared/data, one rule (``ts_mean(macd_hist, w5)``) on
  indicator features (CEEMDAN, particle filter and graph off: they would time the features,
  not the engine). Beside it, ``backtest.run`` on the same candles and the positions the
  engine decided (the peer), and the engine's loop lag from its 10 ms heartbeat.
* ``paper``: decision latency from a candle's close (the exchange starts the next one) to the
  fill in the ledger, p50/p95/max, the real ccxt.pro client against ``tests/fakes/ws_exchange``.
* ``ledger``: one-event transactions per second on SQLite (WAL), as the paper engine commits.

Prints one JSON line per figure with the machine's core count and load.

    .venv/bin/python benchmarks/engine.py [--candles 2000] [--paper-candles 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from singularity.data.importers import read_freqtrade_feather

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "engine"))
DATA = Path(os.environ.get("SINGULARITY_SHARED_DATA", ROOT.parent / "shared" / "data")) / "binance-spot-2024-2026"
BASES = ("BTC", "ETH", "SOL", "XRP", "BNB", "DOGE", "ADA", "LTC")


def load(base: str, tail: int) -> pd.DataFrame:
    return read_freqtrade_feather(DATA / f"{base}_USDT-1h.feather").iloc[-tail:]


def emit(**fields: object) -> None:
    fields.update(cores=os.cpu_count(), load_1min=round(os.getloadavg()[0], 2))
    print(json.dumps(fields), flush=True)


def bench_replay(n: int) -> None:
    from engine_home import EXPRESSION, make_home

    from singularity.backtest import runner
    from singularity.config import load_settings
    from singularity.data.store import CandleStore
    from singularity.engine.assemble import RunOptions, build_replay, run_engine
    from singularity.engine.ledger import Ledger, ledger_url
    from singularity.registry import Registry

    bases = [b for b in BASES if (DATA / f"{b}_USDT-1h.feather").exists()]
    with tempfile.TemporaryDirectory() as tmp:
        frames = {f"{b}/USDT": load(b, n + 400) for b in bases}
        home = make_home(Path(tmp), frames["BTC/USDT"])
        home.config.write_text(home.config.read_text().replace('symbols = ["BTC/USDT"]',
                                                               f"symbols = {json.dumps(list(frames))}"))
        settings = load_settings(home.config, environ={}).settings
        store, reg = CandleStore(settings.data_dir), Registry(settings.database_url)
        run = reg.start_run(symbol="*", timeframe="1h", seed=1, settings={})
        for sym, df in frames.items():
            store.write("binance", sym, "1h", df)
            if sym != "BTC/USDT":
                reg.promote(reg.add_strategy(run_id=run, symbol=sym, timeframe="1h", expression=EXPRESSION,
                                             readable=EXPRESSION, size=4, fitness=0.0, in_sample={}))
        start = frames["BTC/USDT"].index[400]
        engine = build_replay(settings, RunOptions(mode="replay", symbols=tuple(frames), timeframe="1h", start=start))
        t0 = time.perf_counter()
        stats = run_engine(engine)
        wall = time.perf_counter() - t0
        lag = engine.lag.summary()
        led = Ledger(ledger_url(settings, "replay"))
        decisions = led.events(kinds=["decision"])
        # warm the peer first (its numba kernel loads on the first call; the engine process no
        # longer loads numba at all, so the first call would otherwise be timed)
        warm = frames["BTC/USDT"].iloc[:50]
        runner.run(warm, np.zeros(len(warm)), timeframe="1h", fee_bps=10, slippage_bps=5,
                   initial_equity=settings.engine.capital)
        t1 = time.perf_counter()
        for sym, df in frames.items():
            window = df.loc[df.index >= start]
            target = [d.payload["target"] for d in decisions if d.symbol == sym]
            runner.run(window, np.asarray(target), timeframe="1h", fee_bps=10, slippage_bps=5,
                       initial_equity=settings.engine.capital)
        peer = time.perf_counter() - t1
        emit(bench="engine_replay", symbols=len(frames), candles=stats["candles"], fills=stats["fills"],
             seconds=round(wall, 3), candles_per_s=round(stats["candles"] / wall, 1),
             backtest_run_candles_per_s=round(stats["candles"] / peer, 1),
             note="engine wall time includes starting the strategy worker (a spawned process)")
        emit(bench="engine_loop_lag_ms", during="replay", **lag)


def bench_paper(n: int) -> None:
    from engine_home import SYMBOL, make_home

    from fakes.ws_exchange import FakeBinanceWs
    from singularity.engine.assemble import RunOptions, build_exchange_engine, run_engine
    from singularity.engine.ledger import Ledger, ledger_url

    start = 300
    candles = load("BTC", start + n + 1)
    with tempfile.TemporaryDirectory() as tmp, FakeBinanceWs({"BTCUSDT": candles}, start=start, bar_s=1.0) as fake:
        extra = f'rest_url = "{fake.rest_url}"\nws_url = "{fake.ws_url}"\n'
        home = make_home(Path(tmp), candles.iloc[:start], extra="", expression="sub(0.0, logret_1)")
        home.config.write_text(home.config.read_text().replace("[engine]\n", "[engine]\n" + extra))
        from singularity.config import load_settings

        settings = load_settings(home.config, environ={}).settings

        async def stop(engine) -> None:
            last = fake.candle_time(start + n - 1).isoformat()
            while not (engine.books.get(SYMBOL) and (engine.books[SYMBOL].last_candle or "") >= last):
                await asyncio.sleep(0.05)
            engine.request_stop()

        run_engine(build_exchange_engine(settings, RunOptions(mode="paper", symbols=(SYMBOL,), timeframe="1h"),
                                         extra_tasks=[stop]))
        led = Ledger(ledger_url(settings, "paper"))
        decisions = {e.payload["candle"]: e for e in led.events(kinds=["decision"])}
        lat = []
        for f in led.events(kinds=["fill"]):
            order = next(o for o in led.events(kinds=["order"]) if o.payload.get("client_order_id") == f.payload["client_order_id"])
            i = int((pd.Timestamp(order.payload["candle"]) - candles.index[0]) / pd.Timedelta("1h"))
            lat.append(f.time.timestamp() - fake.opened_at[i + 1])
        a = np.array(lat) * 1e3
        emit(bench="engine_paper_decision_latency_ms", fills=len(a), decisions=len(decisions),
             p50=round(float(np.percentile(a, 50)), 1) if len(a) else None,
             p95=round(float(np.percentile(a, 95)), 1) if len(a) else None,
             max=round(float(a.max()), 1) if len(a) else None,
             note="candle close (next candle's first frame) to the fill's ledger time")


def bench_ledger(n: int) -> None:
    from singularity.engine.ledger import Ledger, NewEvent

    with tempfile.TemporaryDirectory() as tmp:
        led = Ledger(f"sqlite:///{tmp}/l.db")
        t0 = time.perf_counter()
        for i in range(n):
            led.append([NewEvent("decision", f"d{i}", {"candle": f"{i}", "close": 1.0, "target": 0.0}, "X/Y")])
        wall = time.perf_counter() - t0
        emit(bench="ledger_commits", backend="sqlite-wal", commits=n, commits_per_s=round(n / wall, 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candles", type=int, default=2000, help="candles per symbol in the replay")
    ap.add_argument("--paper-candles", type=int, default=12)
    ap.add_argument("--commits", type=int, default=500)
    args = ap.parse_args()
    bench_ledger(args.commits)
    bench_replay(args.candles)
    bench_paper(args.paper_candles)


if __name__ == "__main__":
    main()
