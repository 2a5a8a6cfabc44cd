"""The engine loop: the same code between feed, strategy, risk, venue and ledger in every mode.

The loop only waits: on the feed, on the strategy worker (a future), on the database (one
writer thread) and on timers. Per closed candle, in order:

1. resting orders fill at the candle's open (replay venue);
2. the account is marked at the close and the strategy's target passes the risk limits;
3. a ``decision`` event (and, when the target changed, an ``order`` with a client order id
   derived from strategy, symbol and candle) is appended with the fills, in one transaction;
4. the order goes to the venue (paper and live fill it now; the fill is a second transaction).

A crash between any two transactions leaves the ledger consistent; a restart resumes after
the cursor (``last_candle``) and settles open orders through the venue's ``recover``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import copy
import gc
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pandas as pd

from singularity.engine.feeds import CandleBatch, Feed
from singularity.engine.ledger import Ledger, NewEvent
from singularity.engine.projection import Book, apply
from singularity.engine.risk import check
from singularity.engine.settings import EngineSettings
from singularity.engine.status import LagMonitor, is_running
from singularity.engine.strategy import StrategySpec, StrategyWorker
from singularity.engine.venues import Order, Venue, client_order_id
from singularity.errors import SingularityError
from singularity.timeframes import timeframe_delta

log = logging.getLogger(__name__)


_END = object()


def warm_kernel() -> None:
    """Prepare the kernel's order sizing before the loop starts (no compiled code any more:
    ``venues.kernel_order`` runs the kernel's source in CPython)."""
    from singularity.engine.venues import sized_fill

    sized_fill(Book("warm", cash=1.0), 1.0, 1.0, 0.0, 0.0)


async def _next(it: Any) -> Any:
    try:
        return await it.__anext__()
    except StopAsyncIteration:
        return _END


class EngineError(SingularityError):
    """The engine cannot start or continue (another engine runs, a ledger mismatch, ...)."""


@dataclass
class EngineSetup:
    """Everything the loop needs, passed in (ports and adapters)."""

    mode: str
    timeframe: str
    ledger: Ledger
    feed: Feed
    venue: Venue
    worker: StrategyWorker
    specs: dict[str, StrategySpec]
    history: Callable[[str, pd.Timestamp | None], pd.DataFrame]
    """(symbol, first candle to trade or None) -> the candles from the anchor before it; runs
    in the database thread (it reads the store)."""
    settings: EngineSettings
    extra_tasks: Sequence[Callable[[Engine], Awaitable[Any]]] = ()
    """Coroutines to run on the engine's loop beside it (e.g. a dashboard server, a display)."""
    lag_interval_s: float = 0.01
    capital: float | None = None
    short_rate: float = 0.0
    """Borrow/funding charged per bar on short notional at each close (margin and perpetual
    markets; 0 on spot), as the backtest kernel charges it: a ``balance`` event."""
    sources: dict[str, Any] = field(default_factory=dict)


class Engine:
    def __init__(self, setup: EngineSetup) -> None:
        self.s = setup
        self.ledger = setup.ledger
        self.bar = timeframe_delta(setup.timeframe)
        self.lag = LagMonitor(setup.lag_interval_s)
        self.books: dict[str, Book] = {}
        self.started_at: datetime | None = None
        self.stats = {"candles": 0, "orders": 0, "fills": 0, "skipped": 0}
        self.message = ""
        self._stop = asyncio.Event()
        self._flatten = False
        self._db = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
        # background forging (engine.rotation) plugs in here: called at each batch's candle
        # boundary before it is decided, and after it with the batch's decision payloads
        self.before_batch: list[Callable[[str], Awaitable[None]]] = []
        self.after_batch: list[Callable[[str, list[dict[str, Any]]], Awaitable[None]]] = []
        self.flat: set[str] = set()
        """Symbols held flat (their champion was retired; no new one yet)."""
        self.regimes: dict[str, dict[str, Any]] = {}
        """Current regime per symbol (``engine.regimes.RegimeWatch`` sets it, when attached)."""
        # controls the core leaves to others (forge, pin, retire: the rotation's, when attached)
        self.control_hooks: list[Callable[[str, str, dict[str, Any]], Awaitable[None]]] = []
        self.on_written: list[Callable[[list[Any]], None]] = []
        """Called with every batch of events written (notifications); must not block."""
        if setup.worker._history is None:
            setup.worker._history = self._history_through

    async def _history_through(self, sym: str, last: pd.Timestamp | None) -> pd.DataFrame:
        """Candles from the anchor through ``last`` (for re-priming a replaced worker)."""
        return await self.db(self.s.history, sym, None if last is None else last + self.bar)

    # -- plumbing ------------------------------------------------------------------------------

    async def db(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a database call in the one writer thread; the loop only waits for it."""
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def append(self, events: list[NewEvent]) -> None:
        if not events:
            return
        written = await self.db(self.ledger.append, events)
        for cb in self.on_written:
            cb(written)
        for e in written:
            if e.symbol is not None:
                apply(self.books.setdefault(e.symbol, Book(e.symbol)), e.kind, e.payload, e.seq)
            if e.kind == "fill":
                self.stats["fills"] += 1

    def request_stop(self, *, flatten: bool = False) -> None:
        self._flatten = self._flatten or flatten
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- start-up --------------------------------------------------------------------------------

    async def _start(self) -> None:
        row = await self.db(self.ledger.status_row)
        if is_running(row):
            raise EngineError(f"an engine already runs on this ledger (pid {row['pid']} on "
                              f"{row['host']}); stop it first with 'singularity stop'")
        await self.db(self.ledger.clear_commands)
        self.books = await self.db(self.ledger.open_books)
        self.started_at = datetime.now(UTC)
        now = self.started_at
        events: list[NewEvent] = []
        for sym, spec in self.s.specs.items():
            book = self.books.get(sym)
            if self.s.capital is not None:  # once per ledger: the key makes it idempotent
                events.append(NewEvent("balance", f"deposit:{sym}", {"delta": float(self.s.capital),
                                       "reason": "starting capital"}, sym, now))
            if book is None or book.strategy_id != spec.strategy_id:
                seq = book.last_seq if book else 0
                events.append(NewEvent("rotation", f"rotation:{sym}:{seq}:{spec.strategy_id}", {
                    "strategy_id": spec.strategy_id, "expression": spec.expression,
                    "previous": book.strategy_id if book else None}, sym, now))
        events.append(NewEvent("control", f"start:{now.isoformat()}", {
            "action": "start", "mode": self.s.mode, "symbols": list(self.s.specs)}, None, now))
        await self.append(events)
        await self.append(await self.s.venue.recover(copy.deepcopy(self.books)))
        for sym, spec in self.s.specs.items():
            book = self.books[sym]
            first = pd.Timestamp(book.last_candle) + self.bar if book.last_candle else None
            history = await self.db(self.s.history, sym, first)
            await self.s.worker.prime(spec, history)
        # everything loaded so far (numpy, pandas, torch, LightGBM, SQLAlchemy...) lives as long
        # as the engine: frozen out of the garbage collector's sight, no later full collection
        # scans it on the loop (under load one such collection held the loop 1.1-1.25 s in the
        # soak). gc.freeze is a list splice, not a collection.
        gc.freeze()

    # -- one candle ------------------------------------------------------------------------------

    def _step(self, book: Book, ts: pd.Timestamp, row: Any, raw_target: float) -> tuple[list[NewEvent], Order | None]:
        """Events of one closed candle (no I/O) and the order to place, if any; ``book`` (a
        working copy of the symbol's account) is advanced by them."""
        sym = book.symbol
        events = self.s.venue.fills_at_open(sym, ts, row, book)
        for e in events:
            apply(book, e.kind, e.payload, 0)
        close = float(row.close)
        candle = ts.isoformat()
        when = (ts + self.bar).to_pydatetime()
        if self.s.short_rate and book.quantity < 0.0:
            # the kernel's funding step: pay = (-rate) * shares * close, cash -= pay (same floats)
            pay = -self.s.short_rate * book.quantity * close
            carry = {"delta": -pay, "reason": "short financing", "rate": self.s.short_rate,
                     "quantity": book.quantity, "close": close}
            events.append(NewEvent("balance", f"financing:{sym}:{candle}", carry, sym, when))
            apply(book, "balance", carry, 0)
        target, triggers = check(book, raw_target, candle_day=candle[:10], close=close,
                                 limits=self.s.settings.risk)
        for t in triggers:
            events.append(NewEvent("risk", f"risk:{sym}:{candle}:{t['action']}", t, sym, when))
            apply(book, "risk", t, 0)
        spec = self.s.specs[sym]
        previous = book.target
        decision = {"candle": candle, "close": close, "target": target, "raw_target": raw_target,
                    "strategy_id": spec.strategy_id, "open": float(row.open)}
        apply(book, "decision", decision, 0)  # marks the account at the close
        decision["equity"] = book.equity(close)
        events.append(NewEvent("decision", f"decision:{spec.strategy_id}:{sym}:{candle}", decision,
                               sym, when))
        order = None
        if target != previous:
            coid = client_order_id(spec.strategy_id, sym, ts)
            order = Order(coid, sym, target, candle)
            payload = {"client_order_id": coid, "status": "open", "target": target, "candle": candle,
                       "strategy_id": spec.strategy_id}
            events.append(NewEvent("order", f"order:{coid}", payload, sym, when))
            apply(book, "order", payload, 0)
        return events, order

    async def _process(self, batch: CandleBatch) -> None:
        sym = batch.symbol
        frame = batch.candles
        last = self.books[sym].last_candle
        if last is not None:
            frame = frame.loc[frame.index > pd.Timestamp(last)]
        if batch.skipped:
            self.stats["skipped"] += batch.skipped
            now = datetime.now(UTC)
            first = frame.index[0].isoformat() if len(frame) else now.isoformat()
            await self.append([NewEvent("control", f"skipped:{sym}:{first}", {
                "action": "skipped", "candles": batch.skipped,
                "reason": "closed while the engine was down or the feed reconnected; stored, not traded"},
                sym, now)])
            log.warning("%s: %d closed candle(s) stored but not traded", sym, batch.skipped)
        if frame.empty:
            return
        for hook in self.before_batch:
            await hook(sym)
        targets = await self._race(self.s.worker.targets(sym, frame))
        if targets is None:
            return  # stopping: nothing of this batch was recorded
        if sym in self.flat:
            targets = [0.0] * len(targets)
        # a venue without outside effects (replay) lets a whole batch share one transaction;
        # otherwise each candle is committed before its order leaves
        batched = not getattr(self.s.venue, "external", True)
        book = copy.deepcopy(self.books[sym])
        pending: list[NewEvent] = []
        decided: list[dict[str, Any]] = []
        rows = list(zip(frame.index, frame.itertuples(index=False), strict=True))
        decide = list(zip(rows, targets, strict=True))
        if batch.trade_last is not None:
            decide = decide[-batch.trade_last:]  # the rest only extended the features
        for k, ((ts, row), target) in enumerate(decide):
            if k and k % 8 == 0:
                await asyncio.sleep(0)  # a long batch lets timers and signals in between candles
            events, order = self._step(book, ts, row, target)
            pending += events
            decided += [e.payload for e in events if e.kind == "decision"]
            self.stats["candles"] += 1
            if order is not None:
                self.stats["orders"] += 1
            if not batched or self.stopping:
                await self.append(pending)
                pending = []
                if order is not None:
                    await self.append(await self.s.venue.place(order, self.books[sym]))
                book = copy.deepcopy(self.books[sym])
            if self.stopping:
                break
        await self.append(pending)
        for after in self.after_batch:
            await after(sym, decided)

    async def _race(self, aw: Awaitable[Any]) -> Any:
        """``aw``'s result, or None when a stop is requested first (``aw`` is cancelled)."""
        task = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            stop.cancel()
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        return None

    # -- kill switch --------------------------------------------------------------------------------

    async def flatten_all(self, reason: str) -> None:
        now = datetime.now(UTC)
        stamp = pd.Timestamp(now).floor("s")
        for sym in self.s.specs:
            book = self.books[sym]
            await self.append([NewEvent("risk", f"risk:{sym}:kill:{stamp.isoformat()}", {
                "action": "pause", "limit": "kill_switch", "reason": reason}, sym, now)])
            if book.quantity == 0.0:
                continue
            coid = client_order_id(self.s.specs[sym].strategy_id, sym, stamp, prefix="kill")
            order = Order(coid, sym, 0.0, book.last_candle or stamp.isoformat(), reason="kill")
            await self.append([NewEvent("order", f"order:{coid}", {
                "client_order_id": coid, "status": "open", "target": 0.0, "reason": reason}, sym, now)])
            await self.append(await self.s.venue.place(order, self.books[sym], now=True))

    # -- background tasks -----------------------------------------------------------------------------

    def summary(self) -> list[dict[str, Any]]:
        out = []
        for sym in self.s.specs:
            b = self.books.get(sym) or Book(sym)
            h = self.s.feed.health.get(sym)
            out.append({"symbol": sym, "last_candle": b.last_candle, "price": b.last_price,
                        "position": b.quantity, "equity": b.equity(), "strategy_id": b.strategy_id,
                        "feed": h.state if h else "", "reconnects": h.reconnects if h else 0,
                        "paused": b.paused, "regime": self.regimes.get(sym)})
        return out

    async def write_status(self, running: bool) -> None:
        feeds = {s: {"state": h.state, "reconnects": h.reconnects, "detail": h.detail}
                 for s, h in self.s.feed.health.items()}
        symbols, lag = self.summary(), self.lag.summary()
        rows: list[dict[str, Any]] = [{
            "name": "engine", "kind": "engine", "state": "running" if running else "stopped",
            "stage": self.s.mode, "pid": os.getpid(),
            "detail": {"loop_lag_ms": lag, **self.stats, "message": self.message}}]
        for row in symbols:
            sym = row["symbol"]
            state = ("flat: champion retired" if sym in self.flat else
                     "paused" if row["paused"] else (row["feed"] or "trading"))
            rows.append({"name": f"symbol:{sym}", "kind": "symbol", "symbol": sym, "state": state,
                         "stage": "", "pid": os.getpid(), "detail": row})

        def write() -> None:
            self.ledger.write_status(
                mode=self.s.mode, running=running, started_at=self.started_at,
                loop_lag_ms=lag, feeds=feeds, symbols=symbols, message=self.message)
            self.ledger.write_pipeline(rows)

        await self.db(write)

    async def _heartbeat(self) -> None:
        while True:
            await self.write_status(True)
            await asyncio.sleep(self.s.settings.heartbeat_s)

    async def _commands(self) -> None:
        """Requests from other processes: ``stop`` rows, and ``control`` events other writers
        (the dashboard) append to the ledger with the symbol in the payload."""
        seen = await self.db(self.ledger.last_seq)
        while True:
            for cmd in await self.db(self.ledger.take_commands):
                if cmd["command"] == "stop":
                    log.warning("stop requested%s", " with flatten" if cmd["args"].get("flatten") else "")
                    self.request_stop(flatten=bool(cmd["args"].get("flatten")))
            for e in await self.db(partial(self.ledger.events, after_seq=seen, kinds=["control"])):
                seen = max(seen, e.seq)
                if e.symbol is None and e.payload.get("symbol") in self.s.specs:
                    await self._control(e.seq, e.payload)
            await asyncio.sleep(0.25)

    async def _control(self, seq: int, p: dict[str, Any]) -> None:
        """pause: the symbol goes flat at its next candle and stops trading; resume: trades
        again; flatten: closes the position now and pauses. Other actions (forge, pin, retire)
        go to ``control_hooks``; with none attached they are logged and left."""
        sym, action, now = p["symbol"], p.get("action"), datetime.now(UTC)
        who = p.get("source", "another process")
        if action in ("pause", "flatten"):
            await self.append([NewEvent("risk", f"risk:{sym}:control:{seq}", {
                "action": "pause", "limit": "manual", "reason": f"{action} from the {who}"}, sym, now)])
        elif action == "resume":
            await self.append([NewEvent("risk", f"risk:{sym}:control:{seq}", {
                "action": "resume", "limit": "manual", "reason": f"resumed from the {who}"}, sym, now)])
        if action == "flatten" and self.books[sym].quantity != 0.0:
            stamp = pd.Timestamp(now).floor("s")
            coid = client_order_id(self.s.specs[sym].strategy_id, sym, stamp, prefix="flat")
            await self.append([NewEvent("order", f"order:{coid}", {
                "client_order_id": coid, "status": "open", "target": 0.0, "reason": f"flatten from the {who}"},
                sym, now)])
            order = Order(coid, sym, 0.0, self.books[sym].last_candle or stamp.isoformat(), reason="flatten")
            await self.append(await self.s.venue.place(order, self.books[sym], now=True))
        if action not in ("pause", "resume", "flatten"):
            if not self.control_hooks:
                log.warning("%s: control %r from the %s needs background forging (run --forge)", sym, action, who)
            for hook in self.control_hooks:
                await hook(sym, str(action), p)

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Run until the feed ends or a stop is requested; returns counts."""
        tasks = [asyncio.ensure_future(self.lag.run())]
        try:
            await self._start()
            tasks += [asyncio.ensure_future(self._heartbeat()), asyncio.ensure_future(self._commands())]
            tasks += [asyncio.ensure_future(fn(self)) for fn in self.s.extra_tasks]
            it = self.s.feed.batches().__aiter__()
            while not self.stopping:
                batch = await self._race(_next(it))
                if batch is None or batch is _END:
                    break
                await self._process(batch)
            if self._flatten:
                await self.flatten_all("kill switch: singularity stop --flatten")
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            self.s.worker.close(kill=self.stopping)
            await self.s.feed.close()
            await self.s.venue.close()
            if self.started_at is not None:
                with contextlib.suppress(Exception):
                    await self.append([NewEvent("control", f"stop:{datetime.now(UTC).isoformat()}", {
                        "action": "stop", **self.stats}, None, datetime.now(UTC))])
                    await self.write_status(False)
            self._db.shutdown(wait=True)
        return dict(self.stats)
