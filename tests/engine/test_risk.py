"""Risk limits: caps clip, the daily loss limit and the drawdown limit flatten and pause, the
kill switch (``singularity stop --flatten``) closes everything; each trigger is an event."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from engine_home import SYMBOL, make_home

from singularity.engine.assemble import RunOptions, build_replay, run_engine
from singularity.engine.ledger import Ledger, ledger_url
from singularity.engine.projection import Book
from singularity.engine.risk import check
from singularity.engine.settings import RiskSettings


def _book(**kw) -> Book:
    b = Book("BTC/USDT", cash=1000.0, day="2024-01-01", day_start_equity=1000.0, last_equity=1000.0,
             peak_equity=1000.0)
    for k, v in kw.items():
        setattr(b, k, v)
    return b


def test_caps_clip_and_losses_pause():
    # position caps: fraction and notional
    t, ev = check(_book(), 1.0, candle_day="2024-01-01", close=100.0,
                  limits=RiskSettings(max_position_fraction=0.5))
    assert t == 0.5 and ev[0]["action"] == "clip"
    t, _ = check(_book(), -1.0, candle_day="2024-01-01", close=100.0,
                 limits=RiskSettings(max_position_notional=250.0))
    assert t == -0.25
    # per-order cap: from flat, one order moves at most 0.3 of equity
    t, _ = check(_book(), 1.0, candle_day="2024-01-01", close=100.0, limits=RiskSettings(max_order_fraction=0.3))
    assert abs(t - 0.3) < 1e-12
    # daily loss: 1000 -> 940 is 6 % down on the day: flatten and pause
    lossy = _book(cash=-60.0, quantity=10.0, last_price=100.0)
    t, ev = check(lossy, 1.0, candle_day="2024-01-01", close=100.0, limits=RiskSettings(daily_loss_limit=0.05))
    assert t == 0.0 and ev[0]["action"] == "pause" and ev[0]["limit"] == "daily_loss_limit"
    assert "6.00%" in ev[0]["reason"]
    # a new day starts at the previous close's equity (940): the same account is not down on it
    lossy.last_equity = 940.0
    t, ev = check(lossy, 1.0, candle_day="2024-01-02", close=100.0, limits=RiskSettings(daily_loss_limit=0.05))
    assert t == 1.0 and ev == []
    # drawdown from the peak
    t, ev = check(_book(peak_equity=1200.0), 1.0, candle_day="2024-01-01", close=100.0,
                  limits=RiskSettings(max_drawdown=0.1))
    assert t == 0.0 and ev[0]["limit"] == "max_drawdown"
    # a paused symbol stays flat
    assert check(_book(paused=True), 1.0, candle_day="2024-01-01", close=100.0, limits=RiskSettings()) == (0.0, [])


def test_a_drawdown_flattens_and_pauses_the_symbol_in_the_engine(tmp_path, load_feather):
    home = make_home(tmp_path, load_feather("BTC", "1h", tail=1000), extra="[engine.risk]\nmax_drawdown = 0.03\n")
    run_engine(build_replay(home.settings, RunOptions(mode="replay", symbols=(SYMBOL,), timeframe="1h",
                                                      start=home.candles.index[400])))
    led = Ledger(ledger_url(home.settings, "replay"))
    (risk,) = [e for e in led.events(kinds=["risk"]) if e.payload["action"] == "pause"]
    assert risk.payload["limit"] == "max_drawdown" and "drawdown" in risk.payload["reason"]
    after = [e for e in led.events(after_seq=risk.seq) if e.kind in ("order", "fill")]
    # one order flattens (filled at the next open); nothing trades after that
    assert [e.kind for e in after] == ["order", "fill"] and after[0].payload["target"] == 0.0
    book = led.verify()[SYMBOL]
    assert book.paused and book.quantity == 0.0
    decisions = led.events(kinds=["decision"], after_seq=risk.seq)
    assert decisions and all(d.payload["target"] == 0.0 for d in decisions)


def test_status_while_running_then_stop_flatten(tmp_path, load_feather):
    # a rule that is always long on this spot market, so a position is there whenever it is read
    home = make_home(tmp_path, load_feather("BTC", "1h", tail=1000), chunk=24,
                     expression="abs(macd_hist)")
    cmd = [sys.executable, "-m", "singularity"]
    proc = subprocess.Popen([*cmd, "run", SYMBOL, "--mode", "replay", "--from", home.candles.index[400].isoformat(),
                             "--speed", "7200"], env=home.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    led = Ledger(ledger_url(home.settings, "replay"))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the engine holds a position
            time.sleep(0.1)
            try:
                if any(p["quantity"] for p in led.positions()):
                    break
            except Exception:  # tables not created yet
                pass
        st = subprocess.run([*cmd, "status", "--mode", "replay", "--json"], env=home.env(),
                            capture_output=True, text=True, timeout=60)
        doc = json.loads(st.stdout)
        assert doc["mode"] == "replay" and doc["running"] is True
        assert set(doc["loop_lag_ms"]) >= {"p50", "p99", "max"} and doc["loop_lag_ms"]["samples"] > 0
        (sym,) = doc["symbols"]
        assert sym["symbol"] == SYMBOL and sym["strategy_id"] == home.strategy_id and sym["position"] != 0
        assert {"last_candle", "equity"} <= set(sym)
        # a control another process (the dashboard) appends: the engine pauses the symbol
        from singularity.engine.ledger import NewEvent

        led.append([NewEvent("control", "control:pause:test", {"action": "pause", "symbol": SYMBOL,
                                                               "source": "dashboard"})])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # paused, and flat at the next candle
            p = led.positions()[0]
            if p["paused"] and p["quantity"] == 0.0:
                break
            time.sleep(0.1)
        assert led.positions()[0]["pause_reason"] == "pause from the dashboard"
        assert led.positions()[0]["quantity"] == 0.0  # paused: flat
        led.append([NewEvent("control", "control:resume:test", {"action": "resume", "symbol": SYMBOL,
                                                                "source": "dashboard"})])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # trading again: back in a position
            p = led.positions()[0]
            if not p["paused"] and p["quantity"]:
                break
            time.sleep(0.1)
        stop = subprocess.run([*cmd, "stop", "--mode", "replay", "--flatten"], env=home.env(),
                              capture_output=True, text=True, timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    book = led.verify()[SYMBOL]
    assert book.quantity == 0.0 and book.paused and "kill switch" in book.pause_reason
    kill = [e for e in led.events(kinds=["risk"]) if e.payload.get("limit") == "kill_switch"]
    assert len(kill) == 1
    fills = led.events(kinds=["fill"], after_seq=kill[0].seq)
    assert len(fills) == 1 and fills[0].payload["client_order_id"].startswith("kill")
    manual = [e.payload["action"] for e in led.events(kinds=["risk"]) if e.payload.get("limit") == "manual"]
    assert manual == ["pause", "resume"]
    assert json.loads(subprocess.run([*cmd, "status", "--mode", "replay", "--json"], env=home.env(),
                                     capture_output=True, text=True, timeout=60).stdout)["running"] is False
