"""The regime watch: each symbol's current market regime, computed beside the trading.

After every batch of decided candles the watch notes the symbol's newest candle; its own task
on the engine's loop hands the work to a regime worker (one spawned process at a lower CPU
priority, separate from the strategy worker) and only awaits the answer, so trading never
waits for a refit and the loop never computes. Updates coalesce: when candles arrive faster
than the worker answers, the next update covers all of them at once (the labels are causal,
so a candle's label is the same whichever later update computed it).

The worker computes what ``singularity regimes SYMBOL --until <candle>`` computes (the same
store reads, the same walk-forward model; ``regimes.online``), keeping its refits between
updates: HDBSCAN refits once per ``features.regimes.refit_every`` candles.

What it records:
- a ``regime`` ledger event at every candle whose regime differs from the one before (and at
  the first candle it labels), keyed by symbol and candle, timed at the candle's close:
  ``{"regime": "#id name" or "unclassified", "id", "name", "probability", "candle",
  "previous"}`` (the dashboard's regimes page draws them);
- the current regime per symbol in the engine's status (``singularity status --json``:
  ``symbols[].regime``) and a ``regime:SYMBOL`` pipeline row (state, refits, timings);
- with ``engine.regimes.forge_on_change``, a change from one regime to another queues a forge
  cycle with the change as its reason (the event says whether it was queued).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import logging
import multiprocessing as mp
import os
from typing import TYPE_CHECKING, Any

import pandas as pd

from singularity.engine.ledger import NewEvent
from singularity.runtime.process import shutdown_executor

if TYPE_CHECKING:
    from singularity.config import Settings
    from singularity.engine.core import Engine
    from singularity.engine.scheduler import Scheduler

log = logging.getLogger(__name__)


def _regime_worker_init(parent: int, nice: int) -> None:
    from singularity.engine.strategy import _worker_init

    with contextlib.suppress(OSError):
        os.nice(nice)
    _worker_init(parent)


def label(rid: int | None, name: str | None) -> str:
    """How a regime reads in the ledger and the dashboard."""
    return "unclassified" if rid is None else f"#{rid} {name or ''}".rstrip()


def describe(r: dict[str, Any] | None) -> str:
    """A symbol's current regime (its status entry) in one line: "#2 high volatility, ... (p 0.91)"."""
    if not r:
        return ""
    p = r.get("probability")
    return label(r.get("id"), r.get("name")) + ("" if p is None else f" (p {p:.2f})")


class RegimeWatch:
    def __init__(self, engine: Engine, settings: Settings, timeframe: str, *,
                 scheduler: Scheduler | None = None) -> None:
        self.engine = engine
        self.s = settings.engine.regimes
        self.model = settings.features.regimes
        self.timeframe = timeframe
        self.data_dir = str(settings.data_dir)
        self.exchange = settings.exchange.name
        self.universe = tuple(settings.universe.symbols)
        self.scheduler = scheduler
        self.pending: dict[str, str] = {}
        self.since: dict[str, str] = {}
        self.previous: dict[str, int | None] = {}
        self.restored: set[str] = set()
        self.last_regime: dict[str, int] = {}
        """The last classified regime of each symbol (a change between two regimes triggers)."""
        self.updates: list[dict[str, Any]] = []
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.await_updates = engine.s.mode == "replay"
        """Replay: each batch awaits its update; paper and live: updates run in the background."""
        self._executor: cf.ProcessPoolExecutor | None = None

    def attach(self) -> None:
        self.engine.after_batch.append(self.after)

        async def run(_engine: Engine) -> None:
            await self.run()

        self.engine.s.extra_tasks = [*self.engine.s.extra_tasks, run]

    # -- the loop side -------------------------------------------------------------------------

    async def after(self, sym: str, decisions: list[dict[str, Any]]) -> None:
        """A batch was decided: its newest candle is the symbol's next update. Paper and live
        go on trading meanwhile; a replay (time compressed: in real time the worker has a whole
        candle to answer) awaits the update, so its regime events and cycles land at the
        candles a real-time engine would record them."""
        if not decisions:
            return
        if sym not in self.since:
            self.since[sym] = (pd.Timestamp(decisions[0]["candle"]) - self.engine.bar).isoformat()
        if self.await_updates:
            await self.update(sym, str(decisions[-1]["candle"]))
            return
        self.pending[sym] = str(decisions[-1]["candle"])
        self.idle.clear()
        self.wake.set()

    async def run(self) -> None:
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                for sym in list(self.pending):
                    await self.update(sym, self.pending.pop(sym))
                if not self.pending:
                    self.idle.set()
        finally:
            self.close(kill=True)

    async def settle(self) -> None:
        """Until every candle noted so far is labelled (the background task is idle)."""
        while self.pending or not self.idle.is_set():
            await self.idle.wait()

    async def _started(self) -> cf.ProcessPoolExecutor:
        if self._executor is None:
            # spawn: a fresh interpreter, never a fork of a process holding a loop and threads;
            # started in a thread (a process start costs tens of milliseconds)
            ex = cf.ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"),
                                        initializer=_regime_worker_init, initargs=(os.getpid(), self.s.nice))
            await asyncio.to_thread(lambda: ex.submit(os.getpid).result())
            self._executor = ex
        return self._executor

    def close(self, *, kill: bool = False) -> None:
        ex, self._executor = self._executor, None
        shutdown_executor(ex, kill=kill)

    async def _compute(self, sym: str, until: str) -> dict[str, Any]:
        from singularity.regimes.online import regime_update

        ex = await self._started()
        fut = asyncio.get_running_loop().run_in_executor(
            ex, regime_update, self.data_dir, self.exchange, sym, self.timeframe, self.universe, self.model,
            until, self.since.get(sym))
        return await asyncio.wait_for(fut, self.s.timeout_s)  # type: ignore[no-any-return]

    async def _restore(self, sym: str) -> None:
        """The symbol's last recorded regime (a restarted engine continues its timeline)."""
        if sym in self.restored:
            return
        self.restored.add(sym)
        events = await self.engine.db(lambda: self.engine.ledger.events(symbol=sym, kinds=["regime"]))
        if events:  # else the first candle labelled gets an event, unclassified or not
            self.previous[sym] = events[-1].payload.get("id")
        for e in reversed(events):
            if e.payload.get("id") is not None:
                self.last_regime[sym] = int(e.payload["id"])
                break

    async def update(self, sym: str, until: str) -> dict[str, Any] | None:
        """Label ``sym``'s candles up to ``until`` in the worker; record what changed."""
        await self._restore(sym)
        await self._publish(sym, "updating", {"until": until})
        try:
            out = await self._compute(sym, until)
        except asyncio.CancelledError:
            raise
        except (cf.process.BrokenProcessPool, TimeoutError) as e:
            self.close(kill=True)  # the next update starts a fresh worker
            await self._publish(sym, "failed", {"until": until, "error": f"regime worker {type(e).__name__}"})
            return None
        except Exception as e:  # a bad history must not stop the engine: shown, then retried
            await self._publish(sym, "failed", {"until": until, "error": str(e)[:300]})
            log.warning("%s: regime update failed: %s", sym, e)
            return None
        self.since[sym] = until
        self.updates.append({"symbol": sym, "until": until, **{k: out[k] for k in ("t0", "t1", "pid", "refits")}})
        events = self._changes(sym, out)
        await self.engine.append(events)
        names = out["names"]
        if out["bars"]:
            t, rid, p = out["bars"][-1]
            since = self.engine.regimes.get(sym, {}).get("since")
            if events:
                since = events[-1].payload["candle"]
            self.engine.regimes[sym] = {"id": rid, "name": names.get(rid) if rid is not None else None,
                                        "probability": p, "candle": t, "since": since}
        state = "warming up" if out["warming_up"] else "idle"
        await self._publish(sym, state, {"until": until, "refits": out["refits"], "fits": out["fits"],
                                         "seconds": out["seconds"], "worker_pid": out["pid"],
                                         **({"warming_up": out["warming_up"]} if out["warming_up"] else {})})
        return out

    def _changes(self, sym: str, out: dict[str, Any]) -> list[NewEvent]:
        events: list[NewEvent] = []
        names = out["names"]
        for t, rid, p in out["bars"]:
            prev = self.previous.get(sym, "start")
            if rid == prev:
                continue
            name = names.get(rid) if rid is not None else None
            payload: dict[str, Any] = {"regime": label(rid, name), "id": rid, "name": name, "probability": p,
                                       "candle": t, "previous": None if prev == "start" else prev}
            before = self.last_regime.get(sym)
            if rid is not None:
                if self.s.forge_on_change and before is not None and before != rid:
                    payload["forge"] = self._trigger(sym, before, rid, name, t)
                self.last_regime[sym] = rid
            self.previous[sym] = rid
            when = (pd.Timestamp(t) + self.engine.bar).to_pydatetime()
            events.append(NewEvent("regime", f"regime:{sym}:{t}", payload, sym, when))
        return events

    def _trigger(self, sym: str, before: int, rid: int, name: str | None, candle: str) -> dict[str, Any]:
        reason = f"regime change #{before} -> {label(rid, name)} at {candle}"
        if self.scheduler is None:
            log.warning("%s: %s: no forge cycle (background forging is off)", sym, reason)
            return {"reason": reason, "queued": False, "why": "background forging is off"}
        queued = self.scheduler.request(sym, reason)
        log.warning("%s: %s: forge cycle %s", sym, reason, "queued" if queued else "already queued or running")
        return {"reason": reason, "queued": queued, **({} if queued else {"why": "a cycle is queued or running"})}

    async def _publish(self, sym: str, state: str, detail: dict[str, Any]) -> None:
        cur = self.engine.regimes.get(sym) or {}
        rid = cur.get("id")
        stage = "" if not cur else ("unclassified" if rid is None else f"regime {rid}")
        row = {"name": f"regime:{sym}", "kind": "regime", "symbol": sym, "state": state, "stage": stage,
               "progress": None, "eta_s": None, "pid": os.getpid(), "detail": {**cur, **detail}}
        with contextlib.suppress(Exception):
            await self.engine.db(self.engine.ledger.write_pipeline, [row])
