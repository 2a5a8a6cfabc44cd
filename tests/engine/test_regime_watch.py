"""The regime watch in a replay: the current regime per symbol in ``status --json`` and the
pipeline, ``regime`` ledger events at exactly the candles where the offline ``singularity
regimes --until`` timeline changes, a regime change queuing a forge cycle, and the refits
running in another process while the loop keeps running."""

from __future__ import annotations

import asyncio
import json
import os
import time

import numpy as np
from engine_home import SYMBOL, make_home
from typer.testing import CliRunner

from singularity.cli import app
from singularity.engine.assemble import (
    RunOptions,
    attach_regimes,
    attach_scheduler,
    build_replay,
    run_engine,
)
from singularity.engine.ledger import Ledger, ledger_url
from singularity.engine.regimes import describe
from singularity.regimes.synthetic import planted_regime_market

REGIMES = """
[features.regimes]
window = 300
refit_every = 100
min_cluster_size = 30
min_samples = 5
[engine.regimes]
enabled = true
forge_on_change = true
"""
START = 700  # the first replayed candle (the first regime fit needs ~470 bars)


def _offline(env: dict[str, str], until: str) -> dict[str, int | None]:
    """``singularity regimes BTC/USDT --until T --json``: candle -> regime id."""
    r = CliRunner().invoke(app, ["regimes", SYMBOL, "--until", until, "--json", "--workers", "1"], env=env)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    return {row["time"]: row["regime"] for row in doc["timeline"]}


def test_replay_records_causal_regimes_and_a_change_queues_a_cycle(tmp_path) -> None:
    universe, _truth = planted_regime_market(1, n_bars=1300, seed=3, min_spell=120, max_spell=250)
    home = make_home(tmp_path, universe["S0/USDT"], chunk=50, extra=REGIMES)
    opts = RunOptions(mode="replay", symbols=(SYMBOL,), timeframe="1h", start=home.candles.index[START])
    ticks: list[float] = []

    async def ticker(_engine) -> None:  # the loop's heartbeat as seen from a task on it
        while True:
            ticks.append(time.time())
            await asyncio.sleep(0.005)

    engine = build_replay(home.settings, opts, extra_tasks=[ticker])
    rot = attach_scheduler(engine, home.settings, opts, start=False)  # queue unserved: we read it
    watch = attach_regimes(engine, home.settings, opts, scheduler=rot.scheduler)
    run_engine(engine)

    env = {k: v for k, v in home.env().items()}
    r = CliRunner().invoke(app, ["status", "--mode", "replay", "--json"], env=env)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    (sym,) = doc["symbols"]
    last = home.candles.index[-1].isoformat()
    cur = sym["regime"]
    assert cur["candle"] == last  # a replay awaits each batch's update: the status is current
    offline = _offline(env, last)
    assert cur["id"] == offline[last]
    assert cur["name"] is None or cur["name"].count(",") == 2  # "vol, trend, memory"
    rows = {p["name"]: p for p in doc["pipeline"]}
    row = rows[f"regime:{SYMBOL}"]
    assert row["kind"] == "regime" and row["state"] == "idle" and row["detail"]["id"] == cur["id"]
    assert row["detail"]["worker_pid"] != os.getpid() and row["detail"]["refits"] == row["detail"]["fits"]

    text = CliRunner().invoke(app, ["status", "--mode", "replay"], env=env).output
    assert f"regime:{SYMBOL}" in text and f"refits {row['detail']['refits']}" in text
    assert describe(cur).split(",")[0] in text  # "#k high volatility" (the rest may fold)

    # the events are exactly the changes of the offline timeline over the replayed candles
    # (which the offline run computes with history up to the last candle: labels are causal)
    led = Ledger(ledger_url(home.settings, "replay"))
    events = led.events(kinds=["regime"])
    replayed = [t.isoformat() for t in home.candles.index[START:]]
    expected, prev = [], "start"
    for t in replayed:
        if offline[t] != prev:
            expected.append((t, offline[t]))
        prev = offline[t]
    assert [(e.payload["candle"], e.payload["id"]) for e in events] == expected
    assert len(expected) >= 3
    # ... and each agrees with a run cut at its own candle
    for e in events[1:2]:
        assert _offline(env, e.payload["candle"])[e.payload["candle"]] == e.payload["id"]

    # the dashboard: its regimes page draws these events, its symbol table shows the status
    from types import SimpleNamespace

    from singularity.dashboard.ledger import EngineLedger, _regime, regimes_view
    from singularity.engine.regimes import label

    view = regimes_view(SimpleNamespace(ledger=EngineLedger(ledger_url(home.settings, "replay"), "replay")))
    assert len(view["segments"]) == len(events)
    assert view["current"][0]["regime"] == events[-1].payload["regime"]
    assert events[-1].payload["id"] == cur["id"]
    assert _regime(cur) == f"{label(cur['id'], cur['name'])} (p {cur['probability']:.2f})"

    # a change from one regime to another queued a forge cycle, with its reason recorded
    changes = [e.payload for e in events if "forge" in e.payload]
    assert changes, [e.payload for e in events]
    first = changes[0]
    assert first["forge"]["queued"] is True and first["forge"]["reason"].startswith("regime change #")
    assert all(c["forge"]["queued"] is False for c in changes[1:])  # queued once until served
    queue = list(rot.scheduler.queue._queue)  # type: ignore[attr-defined]
    assert queue == [(SYMBOL, first["forge"]["reason"])]

    # refits ran in the regime worker while the loop kept running: ticks inside every long update
    long = [u for u in watch.updates if u["t1"] - u["t0"] > 0.3]
    assert long  # the first update imports hdbscan and scikit-learn
    for u in long:
        assert u["pid"] != os.getpid()
        assert any(u["t0"] < t < u["t1"] for t in ticks), u


def test_in_the_background_trading_goes_on_while_the_worker_labels(tmp_path) -> None:
    """Paper and live: the watch never holds up trading (decisions on later candles are
    recorded before the first regime event); its updates still record exactly the changes of
    the offline timeline (here a replay feed with the watch in that mode)."""
    from singularity.regimes.analysis import analyse_symbol

    universe, _truth = planted_regime_market(1, n_bars=1300, seed=3, min_spell=120, max_spell=250)
    home = make_home(tmp_path, universe["S0/USDT"], chunk=50, extra=REGIMES)
    opts = RunOptions(mode="replay", symbols=(SYMBOL,), timeframe="1h", start=home.candles.index[1000])
    engine = build_replay(home.settings, opts)
    watch = attach_regimes(engine, home.settings, opts)
    watch.await_updates = False  # as in paper and live
    end = home.candles.index[-1].isoformat()

    async def at_the_end(sym, decisions) -> None:  # let the worker catch up before the feed ends
        if decisions and decisions[-1]["candle"] == end:
            await watch.settle()

    engine.after_batch.append(at_the_end)
    run_engine(engine)
    led = Ledger(ledger_url(home.settings, "replay"))
    events = led.events(kinds=["regime"])
    assert watch.updates[-1]["until"] == end
    offline = analyse_symbol({SYMBOL: home.candles}, SYMBOL, home.settings.features.regimes).labels()
    labels = {t.isoformat(): (None if np.isnan(v) else int(v)) for t, v in offline.items()}
    replayed = [t.isoformat() for t in home.candles.index[1000:]]
    expected, prev = [], "start"
    for t in replayed:
        if labels[t] != prev:
            expected.append((t, labels[t]))
        prev = labels[t]
    assert [(e.payload["candle"], e.payload["id"]) for e in events] == expected
    # decisions on later candles were recorded before the first regime event: no waiting
    first = events[0]
    later = [d for d in led.events(kinds=["decision"]) if d.payload["candle"] > first.payload["candle"]]
    assert later and later[0].seq < first.seq
