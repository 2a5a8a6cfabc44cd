"""Paper mode end to end: the real ccxt.pro client against a local Binance websocket exchange
(klines, trades, bookTicker, REST klines) that closes, resets, goes silent, answers 429 and
sends duplicate frames. The engine reconnects, backfills, loses no candle and places no
duplicate order; fills are at the live bid/ask with fees."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
from engine_home import SYMBOL, make_home

from fakes.ws_exchange import Close, Duplicate, FakeBinanceWs, RateLimit, Reset, Silent
from singularity.data.store import CandleStore
from singularity.engine.assemble import RunOptions, build_exchange_engine
from singularity.engine.ledger import Ledger, ledger_url

START = 300  # candles stored before the exchange's clock starts (the features' history)
CANDLES = 14  # candles the exchange plays during the test


def _run_paper(home, fake, n_closed: int) -> dict:
    """Run the paper engine until ``n_closed`` candles after START are closed and handled."""
    opts = RunOptions(mode="paper", symbols=(SYMBOL,), timeframe="1h")

    async def stop_when_done(engine) -> None:
        target = fake.candle_time(START + n_closed - 1).isoformat()
        deadline = asyncio.get_running_loop().time() + 120  # a broken feed fails, never hangs
        while asyncio.get_running_loop().time() < deadline:
            b = engine.books.get(SYMBOL)
            if b is not None and b.last_candle is not None and b.last_candle >= target:
                break
            await asyncio.sleep(0.05)
        engine.request_stop()

    from singularity.engine.assemble import run_engine

    return run_engine(build_exchange_engine(home.settings, opts, extra_tasks=[stop_when_done]))


def test_paper_survives_faults_without_losing_a_candle_or_doubling_an_order(tmp_path, load_feather, caplog):
    candles = load_feather("BTC", "1h", tail=START + CANDLES + 1)
    faults = {START + 2: Close(), START + 4: Reset(), START + 5: Duplicate(), START + 6: RateLimit(2),
              START + 8: Silent(4)}
    with FakeBinanceWs({"BTCUSDT": candles}, start=START, bar_s=0.5, ticks=3, faults=faults) as fake:
        extra = (f'[engine]\nrest_url = "{fake.rest_url}"\nws_url = "{fake.ws_url}"\nfeed_timeout_s = 0.8\n'
                 'reconnect_base_s = 0.05\nreconnect_max_s = 0.3\n')
        home = make_home(tmp_path, candles.iloc[:START], extra=extra.replace("[engine]\n", ""))
        stats = _run_paper(home, fake, CANDLES - 1)
        connections, unserved_429 = fake.connections, fake.rest_429
    led = Ledger(ledger_url(home.settings, "paper"))
    decided = [pd.Timestamp(e.payload["candle"]) for e in led.events(kinds=["decision"])]
    skipped = sum(e.payload["candles"] for e in led.events(kinds=["control"]) if e.payload.get("action") == "skipped")
    # the engine got at least as far as asked (further on a slow machine: the exchange plays on)
    last = decided[-1]
    handled = int((last - candles.index[START]) / pd.Timedelta("1h")) + 1
    assert handled >= CANDLES - 1
    # every candle the exchange closed up to there is in the store, exactly as the exchange had it
    stored = CandleStore(home.settings.data_dir).read("binance", SYMBOL, "1h")
    expect = candles.iloc[: START + handled]
    pd.testing.assert_frame_equal(stored.loc[expect.index], expect, check_freq=False)
    # each was decided, or stored and reported skipped (missed while silent or busy): none lost
    assert len(decided) + skipped == handled, (decided, skipped)
    assert decided == sorted(set(decided)) and decided[0] == candles.index[START]
    assert skipped >= 3  # the silence swallowed four candles' frames: three or more are skipped
    # the streams reconnected after the close and the reset, and a silent one was given up;
    # both 429s were answered and retried by the downloader
    feeds = led.status_row()["feeds"]
    assert feeds[SYMBOL]["reconnects"] >= 2, feeds
    assert connections >= 3 + 2 * 3
    assert any("silent for 0.8s" in r.getMessage() for r in caplog.records)
    assert unserved_429 == 0
    # no duplicate order: one order per decided candle whose target changed, each filled once
    orders = [e for e in led.events(kinds=["order"]) if e.payload["status"] == "open"]
    fills = led.events(kinds=["fill"])
    coids = [o.payload["client_order_id"] for o in orders]
    assert len(coids) == len(set(coids)) and orders
    assert [f.payload["client_order_id"] for f in fills] == coids
    # fills at the bid/ask of the live book, plus slippage and the fee
    for f in fills:
        p = f.payload
        assert p["quote"] in ("ask", "bid")
        assert np.isclose(p["fee"], abs(p["quantity"]) * p["price"] * 10 / 1e4)
        slip = 1 + 5 / 1e4 if p["quantity"] > 0 else 1 - 5 / 1e4
        assert np.isclose(p["price"], p["reference_price"] * slip)
        assert p["backtest_price"] is not None
    assert stats["fills"] == len(fills)
    led.verify()
