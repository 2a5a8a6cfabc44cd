"""A small, known data directory for the dashboard tests: a registry with a finished and a
running forge run, a champion with a parent (lineage), a report, candles with one gap, a log
file, and exchange keys that must never reach a page, the API or a log line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from singularity.config import Settings, load_settings
from singularity.data.store import CandleStore
from singularity.registry import Registry

API_KEY = "AKDASHBOARDTESTKEY0123456789"
API_SECRET = "SECRETDASHBOARDTEST9876543210zz"
PASSWORD = "correct horse battery staple"
GAUNTLET = [
    {"test": "holdout", "passed": True, "figures": {"sharpe": 1.4}, "detail": "holdout Sharpe 1.40 >= 0.50"},
    {"test": "deflated_sharpe", "passed": True, "figures": {"dsr": 0.97}, "detail": "DSR 0.97 >= 0.95"},
    {"test": "pbo", "passed": True, "figures": {"pbo": 0.12}, "detail": "PBO 0.12 <= 0.50"},
]


T0, T1 = "2025-01-11T03:00:00+00:00", "2025-01-11T04:00:00+00:00"


@dataclass(frozen=True)
class Seeded:
    settings: Settings
    data_dir: Path
    run_id: int
    running_run_id: int
    parent_id: int
    champion_id: int
    candidate_id: int
    ledger_url: str


def candles(n: int = 240, gap_at: int = 100, gap_len: int = 5) -> pd.DataFrame:
    """``n`` 1h candles of a gentle random walk, with ``gap_len`` candles missing after
    ``gap_at``."""
    rng = np.random.default_rng(7)
    idx = pd.date_range("2025-01-01", periods=n + gap_len, freq="1h", tz="UTC", name="timestamp")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, len(idx))))
    df = pd.DataFrame({"open": close * 0.999, "high": close * 1.003, "low": close * 0.996,
                       "close": close, "volume": 10.0 + np.arange(len(idx))}, index=idx)
    return df.drop(df.index[gap_at:gap_at + gap_len])


def report_html() -> str:
    """A page built like the analyst's HTML report: plotly inline, a script per figure."""
    import plotly.graph_objects as go
    import plotly.io as pio

    fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[1.0, 1.1, 1.05], name="equity"))
    body = pio.to_html(fig, full_html=False, include_plotlyjs=True, div_id="fig-equity")
    return f"<!doctype html><html><head><meta charset='utf-8'></head><body><h1>report of the champion</h1>{body}</body></html>"


def settings_for(data_dir: Path, **extra: object) -> Settings:
    overrides = {"data.dir": str(data_dir), "universe.symbols": ["BTC/USDT", "ETH/USDT"],
                 "exchange.api_key": API_KEY, "exchange.secret": API_SECRET, **extra}
    return load_settings(overrides=overrides, environ={}, cwd=data_dir).settings


def seed(data_dir: Path) -> Seeded:
    s = settings_for(data_dir)
    store = CandleStore(data_dir)
    store.write("binance", "BTC/USDT", "1h", candles())
    store.write("binance", "ETH/USDT", "1h", candles(gap_len=0) * 0.05)
    reg = Registry(s.database_url)
    run_id = reg.start_run(symbol="BTC/USDT", timeframe="1h", seed=1, settings={"population": 8})
    parent = reg.add_strategy(run_id=run_id, symbol="BTC/USDT", timeframe="1h", expression="gt(rsi_14, 50.0)",
                              readable="rsi_14 > 50", size=3, fitness=0.8, in_sample={"sharpe": 1.1},
                              holdout={"sharpe": 0.4}, gauntlet=GAUNTLET[:1], status="retired")
    champ = reg.add_strategy(run_id=run_id, symbol="BTC/USDT", timeframe="1h",
                             expression="and_(gt(rsi_14, 55.0), gt(ret_1, 0.0))",
                             readable="rsi_14 > 55 and ret_1 > 0", size=7, fitness=1.3,
                             in_sample={"sharpe": 1.6, "trades": 41}, holdout={"sharpe": 1.4, "trades": 9},
                             gauntlet=GAUNTLET, explanation="Buys when momentum is strong and the last bar rose.",
                             parents=[parent])
    reg.promote(champ)
    cand = reg.add_strategy(run_id=run_id, symbol="BTC/USDT", timeframe="1h", expression="lt(ret_1, 0.0)",
                            readable="ret_1 < 0", size=3, fitness=0.2, in_sample={"sharpe": 0.3},
                            gauntlet=[{**GAUNTLET[0], "passed": False}])
    reg.add_generation_stats(run_id, [{"generation": g, "best": 0.5 + 0.1 * g, "median": 0.2 + 0.05 * g}
                                      for g in range(5)])
    reg.finish_run(run_id, status="succeeded", seconds=12.5, champion_id=champ,
                   stage_seconds={"data": 0.5, "features": 3.0, "evolution": 7.0, "gauntlet": 2.0})
    running = reg.start_run(symbol="ETH/USDT", timeframe="1h", seed=2, settings={})
    reg.set_stage(running, "evolution", "generation 3 of 10")
    reg.close()
    reports = data_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"strategy-{champ}.html").write_text(report_html())
    (data_dir / "logs").mkdir(exist_ok=True)
    (data_dir / "logs" / "engine.log").write_text(
        "2025-01-01 00:00:00 MainProcess[1] INFO engine: started\n"
        f"2025-01-01 00:00:01 MainProcess[1] INFO engine: connecting with key {API_KEY}\n")
    url = seed_ledger(s)
    return Seeded(settings=s, data_dir=data_dir, run_id=run_id, running_run_id=running,
                  parent_id=parent, champion_id=champ, candidate_id=cand, ledger_url=url)


def seed_ledger(s: Settings, mode: str = "replay") -> str:
    """The engine's ledger as the engine writes it: capital, two decided candles of BTC with
    one fill between them (its backtest price beside it), ETH decided once, two regimes."""
    from datetime import datetime

    from singularity.engine.ledger import Ledger, NewEvent, ledger_url

    url = ledger_url(s, mode)
    led = Ledger(url)
    t0, t1 = datetime.fromisoformat(T0), datetime.fromisoformat(T1)
    led.append([
        NewEvent("balance", "cap-btc", {"delta": 10_000.0}, "BTC/USDT", t0),
        NewEvent("balance", "cap-eth", {"delta": 10_000.0}, "ETH/USDT", t0),
        NewEvent("decision", "d-btc-0", {"candle": T0, "close": 100.0, "target": 0.5}, "BTC/USDT", t0),
        NewEvent("fill", "f-btc-0", {"client_order_id": "o1", "price": 100.1, "quantity": 49.95, "fee": 5.0,
                                     "backtest_price": 100.05}, "BTC/USDT", t0),
        NewEvent("decision", "d-btc-1", {"candle": T1, "close": 102.0, "target": 0.5}, "BTC/USDT", t1),
        NewEvent("regime", "r-btc-0", {"regime": "calm"}, "BTC/USDT", t0),
        NewEvent("regime", "r-btc-1", {"regime": "trend"}, "BTC/USDT", t1),
        NewEvent("decision", "d-eth-1", {"candle": T1, "close": 5.0, "target": 0.0}, "ETH/USDT", t1),
    ])
    led.write_status(mode=mode, running=True, started_at=t0, loop_lag_ms={"p50": 0.4, "p99": 2.1, "max": 5.0},
                     feeds={"BTC/USDT": {"state": "reconnecting", "reconnects": 2, "detail": "socket closed"}},
                     symbols=[{"symbol": "BTC/USDT", "feed": "reconnecting"}])
    led.close()
    return url
