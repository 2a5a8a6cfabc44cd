"""Live mode past its three locks, against the local exchange's signed endpoints: balances are
reconciled, market orders carry the client order ids, and the keys reach the exchange but
never the output or the databases (the worker's environment: test_guard)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from engine_home import SYMBOL, make_home

from fakes.ws_exchange import FakeBinanceWs
from singularity.engine.ledger import Ledger, ledger_url

KEY, SECRET = "k3y-LiveTest0123456789", "s3cr3t-LiveTest9876543210"
START = 300


def test_live_trades_through_the_exchange_and_keeps_the_keys_secret(tmp_path, load_feather):
    candles = load_feather("BTC", "1h", tail=START + 40)
    with FakeBinanceWs({"BTCUSDT": candles}, start=START, bar_s=0.5) as fake:
        extra = (f'live = true\nrest_url = "{fake.rest_url}"\nws_url = "{fake.ws_url}"\n')
        # a champion that passed the gauntlet (live trades nothing else)
        passed = [{"test": "holdout", "passed": True, "figures": {}, "detail": "test"}]
        home = make_home(tmp_path, candles.iloc[:START], expression="logret_1", gauntlet=passed)
        home.config.write_text(home.config.read_text().replace("[engine]\n", "[engine]\n" + extra))
        env = home.env()
        env.update(SINGULARITY_EXCHANGE__API_KEY=KEY, SINGULARITY_EXCHANGE__SECRET=SECRET,
                   SINGULARITY_LIVE_CONFIRM="binance")
        proc = subprocess.Popen([sys.executable, "-m", "singularity", "run", SYMBOL, "--mode", "live", "--json"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
        led = Ledger(ledger_url(home.settings, "live"))
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
                try:
                    if len(led.events(kinds=["fill"])) >= 2:
                        break
                except Exception:  # tables not there yet
                    pass
            stop = subprocess.run([sys.executable, "-m", "singularity", "stop", "--mode", "live"],
                                  env=home.env(), capture_output=True, text=True, timeout=60)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err.decode()[-2000:]
        assert stop.returncode == 0, stop.stderr
        exchange_orders = dict(fake.orders)
        assert fake.api_keys_seen == {KEY}
    fills = led.events(kinds=["fill"])
    assert len(fills) >= 2
    # every fill is an order the exchange filled, by the client order id the engine derived
    for f in fills:
        o = exchange_orders[f.payload["client_order_id"]]
        assert float(o["executedQty"]) == abs(f.payload["quantity"])
        assert f.payload["client_order_id"].startswith(f"sg{home.strategy_id}-BTCUSDT-")
    # the account's cash came from the exchange's balance (10,000 USDT), not the paper setting
    deposit = next(e for e in led.events(kinds=["balance"]))
    assert deposit.payload["delta"] == 10_000.0
    # the keys went to the exchange only
    text = out.decode() + err.decode()
    assert KEY not in text and SECRET not in text
    for db in (tmp_path / "data").glob("*.db*"):
        blob = db.read_bytes()
        assert KEY.encode() not in blob and SECRET.encode() not in blob, db


def _live_home(tmp_path, candles, fake):
    passed = [{"test": "holdout", "passed": True, "figures": {}, "detail": "test"}]
    home = make_home(tmp_path, candles.iloc[:START], expression="logret_1", gauntlet=passed)
    extra = f'live = true\nrest_url = "{fake.rest_url}"\nws_url = "{fake.ws_url}"\n'
    home.config.write_text(home.config.read_text().replace("[engine]\n", "[engine]\n" + extra))
    env = home.env()
    env.update(SINGULARITY_EXCHANGE__API_KEY=KEY, SINGULARITY_EXCHANGE__SECRET=SECRET,
               SINGULARITY_LIVE_CONFIRM="binance")
    return home, env


def _wait(cond, proc, what, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except Exception:  # the ledger's tables are not there yet
            pass
        if proc.poll() is not None:
            _out, err = proc.communicate()
            raise AssertionError(f"the engine exited {proc.returncode} before {what}: {err.decode()[-600:]}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_restart_settles_orders_left_in_flight_by_client_order_id(tmp_path, load_feather):
    """The engine is SIGKILLed three times with an order in flight, by the exchange itself
    while it handles the order: (1) after the order filled, (2) after a sell filled half and
    rests, (3) before the order reached the book. Each restart looks the open order up by its
    client order id before it trades: (1) records the fill with the exchange's price and fee,
    (2) cancels the rest and records the half, (3) cancels it in the ledger. No client id is
    sent twice; at the end the ledger's position and cash are the account's."""
    candles = load_feather("BTC", "1h", tail=START + 300)
    procs = []
    with FakeBinanceWs({"BTCUSDT": candles}, start=START, bar_s=0.25) as fake:
        home, env = _live_home(tmp_path, candles, fake)
        led = Ledger(ledger_url(home.settings, "live"))

        def start():
            p = subprocess.Popen([sys.executable, "-m", "singularity", "run", SYMBOL, "--mode", "live", "--json"],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
            procs.append(p)
            return p

        def crashed(proc, when, side=None, hold=None):
            """Run until the exchange kills the engine at its next order (of ``side``)."""
            sent = len(fake.order_requests)
            fake.hold = hold
            fake.crash = (when, proc.pid, side)
            deadline = time.monotonic() + 90
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.returncode == -signal.SIGKILL, proc.communicate()[1].decode()[-1500:]
            assert fake.crash is None and len(fake.order_requests) > sent
            return fake.order_requests[-1]

        def settled(coid):
            """After a restart: the order is no longer open in the ledger and the engine trades."""
            proc = start()
            _wait(lambda: coid not in led.open_books()[SYMBOL].open_orders, proc, f"settling {coid}")
            return proc

        def events(coid):
            return [(e.kind, e.payload.get("status")) for e in led.events(symbol=SYMBOL)
                    if e.payload.get("client_order_id") == coid]

        try:
            # (1) filled at the exchange, the answer lost
            first = crashed(start(), "after")
            assert fake.orders[first]["status"] == "FILLED"
            assert first in led.open_books()[SYMBOL].open_orders and events(first) == [("order", "open")]
            proc = settled(first)
            assert events(first) == [("order", "open"), ("fill", None)]
            fill = next(e for e in led.events(kinds=["fill"]) if e.payload["client_order_id"] == first).payload
            trade = next(t for t in fake.trades if t["orderId"] == fake.orders[first]["orderId"])
            assert fill["quantity"] == float(fake.orders[first]["executedQty"]) > 0
            assert fill["price"] == pytest.approx(float(trade["price"]), rel=1e-12)
            assert fill["fee"] == float(trade["commission"]) > 0
            # (2) the next sell executes half and rests; the engine dies with it open
            second = crashed(proc, "after", side="sell", hold=(0.5, "sell"))
            assert fake.orders[second]["status"] == "PARTIALLY_FILLED"
            proc = settled(second)
            assert fake.orders[second]["status"] == "CANCELED"
            assert events(second) == [("order", "open"), ("fill", None), ("order", "cancelled")]
            half = next(e for e in led.events(kinds=["fill"]) if e.payload["client_order_id"] == second).payload
            assert half["quantity"] == -float(fake.orders[second]["executedQty"])
            assert float(fake.orders[second]["executedQty"]) == float(fake.orders[second]["origQty"]) / 2
            # (3) the engine dies before its order reaches the exchange
            third = crashed(proc, "before")
            assert third not in fake.orders
            proc = settled(third)
            assert events(third) == [("order", "open"), ("order", "cancelled")]
            # the restarted engine trades on: two more fills of its own
            fills = len(led.events(kinds=["fill"]))
            _wait(lambda: len(led.events(kinds=["fill"])) >= fills + 2, proc, "two more fills")
            stop = subprocess.run([sys.executable, "-m", "singularity", "stop", "--mode", "live"],
                                  env=home.env(), capture_output=True, text=True, timeout=60)
            _out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode()[-2000:]
            assert stop.returncode == 0, stop.stderr
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        requests, balances = list(fake.order_requests), dict(fake.balances)
    # no client order id went out twice, and each restart settled its order before it traded
    assert len(requests) == len(set(requests))
    starts = [e.seq for e in led.events(kinds=["control"]) if e.payload.get("action") == "start"]
    assert len(starts) == 4
    for coid, (begin, end) in zip((first, second, third), zip(starts[1:], [*starts[2:], 10**9], strict=True), strict=True):
        placed = [e.seq for e in led.events(kinds=["order"])
                  if begin < e.seq < end and e.payload.get("status") == "open"]
        settle = [e.seq for e in led.events() if e.seq > begin and e.payload.get("client_order_id") == coid]
        assert placed and max(settle) < min(placed), coid
    # the ledger's account is the exchange's
    book = led.verify()[SYMBOL]
    assert book.open_orders == {}
    assert abs(book.quantity - balances.get("BTC", 0.0)) < 1e-9
    assert abs(book.cash - balances["USDT"]) < 1e-6
