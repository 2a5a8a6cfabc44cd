"""Crash-only recovery: SIGKILL the engine at random points of a replay, restart it each time;
the final ledger and equity equal an uninterrupted run's, no event lost or duplicated, and
no process is left behind. Also: SIGTERM stops it cleanly (exit 0 within 5 s)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import psutil
import pytest
from engine_home import SYMBOL, make_home

from singularity.engine.assemble import RunOptions, build_replay, run_engine
from singularity.engine.ledger import Ledger, ledger_url

# the 20 kills (SINGULARITY_CRASH_KILLS=n for another count): a restart costs the
# engine's start-up (imports, ledger, store) beside the strategy worker's warm-up (they overlap)
KILLS = int(os.environ.get("SINGULARITY_CRASH_KILLS", "20"))


def _start(home, start):
    return subprocess.Popen(
        [sys.executable, "-m", "singularity", "run", SYMBOL, "--mode", "replay", "--from", start.isoformat(),
         "--json"], env=home.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=home.root)


def _running(procs):
    """Processes still alive (an exited child not yet reaped by init is a zombie: gone)."""
    out = []
    for p in procs:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _decisions(led):
    try:
        return len(led.events(kinds=["decision"]))
    except Exception:  # the first run may not have created the tables yet
        return 0


def _last_decision(led, after):
    """Sequence number of the newest decision after ``after`` (or ``after``): one indexed
    query, so that polling every 20 ms leaves the two cores to the engine."""
    try:
        found = led.events(after_seq=after, kinds=["decision"])
    except Exception:  # the first run may not have created the tables yet
        return after
    return found[-1].seq if found else after


def _record(led):
    """Every event in order but the engine's own start/stop notes (each restart adds a pair,
    so sequence numbers shift); times of the set-up events (deposit, anchor) are wall-clock."""
    return [(e.kind, e.symbol, e.key, e.time if e.kind in ("decision", "order", "fill", "risk") else None,
             e.payload) for e in led.events()
            if not (e.kind == "control" and e.payload.get("action") in ("start", "stop"))]


@pytest.fixture
def homes(tmp_path, load_feather):
    candles = load_feather("BTC", "1h", tail=1000)
    chunk = 24 if KILLS <= 6 else 8  # more kills need more transactions to land between
    assert 600 // chunk > 2 * KILLS, "too few batches for the kills to land between"
    return (make_home(tmp_path / "calm", candles, chunk=chunk), make_home(tmp_path / "crash", candles, chunk=chunk),
            candles.index[400])


def test_sigkill_at_random_points_then_restart_gives_the_uninterrupted_ledger(homes):
    calm, crash, start = homes
    # the uninterrupted run, in this process (the same code path as the command)
    run_engine(build_replay(calm.settings, RunOptions(mode="replay", symbols=(SYMBOL,), timeframe="1h",
                                                      start=start)))
    reference = Ledger(ledger_url(calm.settings, "replay"))
    assert _decisions(reference) == 600

    led = Ledger(ledger_url(crash.settings, "replay"))
    rng = random.Random(20241)
    kills = 0
    orphans = []
    seen = 0
    while True:
        proc = _start(crash, start)
        if kills < KILLS:
            # wait until this run records something, then kill it a random moment later
            deadline = time.monotonic() + 60
            while proc.poll() is None and _last_decision(led, seen) == seen and time.monotonic() < deadline:
                time.sleep(0.02)
            seen = _last_decision(led, seen)
            time.sleep(rng.uniform(0.0, 0.3))
            if proc.poll() is None:
                children = psutil.Process(proc.pid).children(recursive=True)
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                kills += 1
                _gone, alive = psutil.wait_procs(children, timeout=10)
                orphans += _running(alive)
                continue
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        break
    assert not orphans, f"worker processes outlived the killed engine: {orphans}"
    assert _record(led) == _record(reference)
    assert kills == KILLS, f"the replay finished before {KILLS} kills ({kills})"
    keys = [e.key for e in led.events()]
    assert len(keys) == len(set(keys))
    a, b = led.verify()[SYMBOL], reference.verify()[SYMBOL]
    assert a.equity() == b.equity() and a.quantity == b.quantity and a.last_candle == b.last_candle


def test_sigterm_finishes_the_candle_and_exits_0_within_5s(tmp_path, load_feather):
    candles = load_feather("BTC", "1h", tail=1000)
    home = make_home(tmp_path, candles, chunk=24)
    # a paced replay (100x real time would take 25 days): it runs until told to stop
    proc = subprocess.Popen(
        [sys.executable, "-m", "singularity", "run", SYMBOL, "--mode", "replay", "--from",
         candles.index[400].isoformat(), "--speed", "3600", "--json"],
        env=home.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=home.root)
    led = Ledger(ledger_url(home.settings, "replay"))
    deadline = time.monotonic() + 60
    while _decisions(led) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "the strategy worker should be a child process"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert time.monotonic() - t0 < 5.0
    _gone, alive = psutil.wait_procs(children, timeout=1)
    assert not _running(alive)
    led.verify()  # projections consistent with the events
    status = led.status_row()
    assert status is not None and status["running"] is False
    kinds = [e.payload.get("action") for e in led.events(kinds=["control"])]
    assert kinds[-1] == "stop"
