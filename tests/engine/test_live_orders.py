"""Live mode past its three locks, against the local exchange's signed endpoints: balances are
reconciled, market orders carry the client order ids, and the keys reach the exchange but
never the output or the databases (the worker's environment: test_guard)."""

from __future__ import annotations

import subprocess
import sys
import time

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
