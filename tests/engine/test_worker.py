"""A strategy worker that dies mid-replay is replaced and primed again from the store: the
replay ends exactly as an undisturbed one."""

from __future__ import annotations

import asyncio
import os
import signal

from engine_home import SYMBOL, make_home

from singularity.engine.assemble import RunOptions, build_replay, run_engine
from singularity.engine.ledger import Ledger, ledger_url


def _events(settings):
    return [(e.kind, e.key, e.payload) for e in Ledger(ledger_url(settings, "replay")).events()
            if e.kind in ("decision", "order", "fill")]


def test_a_killed_worker_is_replaced_and_the_replay_is_unchanged(tmp_path, load_feather):
    candles = load_feather("BTC", "1h", tail=900)
    calm = make_home(tmp_path / "calm", candles, chunk=50)
    hit = make_home(tmp_path / "hit", candles, chunk=50)
    opts = RunOptions(mode="replay", symbols=(SYMBOL,), timeframe="1h", start=candles.index[400])
    run_engine(build_replay(calm.settings, opts))
    killed: list[int] = []

    async def kill_worker(engine) -> None:
        while engine.stats["candles"] < 100:
            await asyncio.sleep(0.01)
        for pid in engine.s.worker.pids():
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    stats = run_engine(build_replay(hit.settings, opts, extra_tasks=[kill_worker]))
    assert killed and stats["candles"] == 500
    assert _events(hit.settings) == _events(calm.settings)
