"""Putting an engine together for a mode: feed, venue, strategies, ledger (the CLI's ``run``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from singularity.config import Settings
from singularity.data.store import CandleStore
from singularity.engine.core import Engine, EngineSetup
from singularity.engine.ledger import Ledger, NewEvent, ledger_url
from singularity.engine.strategy import StrategySpec, StrategyWorker
from singularity.errors import ConfigError, DataError
from singularity.forge.market import long_only, short_rate_per_bar


@dataclass(frozen=True)
class RunOptions:
    mode: str
    symbols: tuple[str, ...]
    timeframe: str
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    speed: float | None = None


def strategy_specs(settings: Settings, opts: RunOptions) -> dict[str, StrategySpec]:
    """Each symbol's pinned strategy or champion; symbols without one are left out (an error
    if none is left)."""
    from singularity.engine.pins import resolve
    from singularity.registry import Registry

    reg = Registry(settings.database_url, recover=False)
    specs: dict[str, StrategySpec] = {}
    missing = []
    for sym in opts.symbols:
        st = resolve(reg, sym, opts.timeframe, opts.mode)
        if st is None:
            missing.append(sym)
            continue
        specs[sym] = StrategySpec(strategy_id=st.id, symbol=sym, expression=st.expression,
                                  long_only=long_only(settings), features=settings.features,
                                  cache_dir=str(settings.data_dir / "features" / "engine"))
    reg.close()
    if not specs:
        raise ConfigError(f"no strategy to trade for {', '.join(opts.symbols)} on {opts.timeframe}: run "
                          "'singularity forge SYMBOL' or 'singularity strategy add SYMBOL EXPR' and pin it")
    return specs


def lookback_bars(settings: Settings) -> int:
    from singularity.features.factory import FeatureFactory

    return 2 * FeatureFactory(settings.features).known_warmup(1) + 100


def anchors(ledger: Ledger, store: CandleStore, settings: Settings, opts: RunOptions,
            starts: dict[str, pd.Timestamp]) -> dict[str, pd.Timestamp]:
    """First candle of each symbol's feature history, fixed at the first run (a ``control``
    event), so that every restart computes the same features."""
    have = {e.symbol: pd.Timestamp(e.payload["anchor"]) for e in ledger.events(kinds=["control"])
            if e.payload.get("action") == "anchor"}
    out, new = {}, []
    back = 0
    for sym, start in starts.items():
        if sym in have:
            out[sym] = have[sym]
            continue
        back = back or lookback_bars(settings)  # the features' warm-up: only for a new anchor
        before = store.read(settings.exchange.name, sym, opts.timeframe, end=start)
        anchor = before.index[-back] if len(before) >= back else (before.index[0] if len(before) else start)
        out[sym] = anchor
        new.append(NewEvent("control", f"anchor:{sym}", {"action": "anchor", "anchor": anchor.isoformat(),
                                                         "lookback_bars": back}, sym))
    ledger.append(new)
    return out


def build_replay(settings: Settings, opts: RunOptions, *,
                 extra_tasks: Sequence[Callable[[Engine], Awaitable[Any]]] = (),
                 ledger: Ledger | None = None, worker: StrategyWorker | None = None) -> Engine:
    from singularity.engine.feeds.replay import ReplayFeed
    from singularity.engine.venues.replay import ReplayVenue

    store = CandleStore(settings.data_dir)
    ex = settings.exchange.name
    specs = strategy_specs(settings, opts)
    ledger = ledger or Ledger(ledger_url(settings, "replay"))
    frames: dict[str, pd.DataFrame] = {}
    for sym in specs:
        frame = store.read(ex, sym, opts.timeframe, opts.start, opts.end)
        if frame.empty:
            raise DataError(f"no stored {opts.timeframe} candles of {sym} between {opts.start} and {opts.end}: "
                            f"see 'singularity data list'")
        frames[sym] = frame
    starts = {s: f.index[0] for s, f in frames.items()}
    anchor = anchors(ledger, store, settings, opts, starts)
    # resume after the ledger's cursor: a restarted replay ends where an uninterrupted one does
    books = ledger.open_books()
    for sym, frame in frames.items():
        b = books.get(sym)
        if b is not None and b.last_candle is not None:
            frames[sym] = frame.loc[frame.index > pd.Timestamp(b.last_candle)]

    def history(sym: str, first: pd.Timestamp | None) -> pd.DataFrame:
        return store.read(ex, sym, opts.timeframe, anchor[sym], first if first is not None else starts[sym])

    feed = ReplayFeed(frames, timeframe=opts.timeframe, chunk=settings.engine.replay_chunk, speed=opts.speed)
    venue = ReplayVenue(fee_bps=settings.costs.fee_bps, slippage_bps=settings.costs.slippage_bps)
    return Engine(EngineSetup(
        mode="replay", timeframe=opts.timeframe, ledger=ledger, feed=feed, venue=venue,
        worker=worker or StrategyWorker(timeout_s=settings.engine.worker_timeout_s), specs=specs, history=history,
        settings=settings.engine, extra_tasks=extra_tasks, capital=settings.engine.capital,
        short_rate=short_rate_per_bar(settings, opts.timeframe)))


def run_engine(engine: Engine) -> dict[str, Any]:
    """Run on a fresh event loop; Ctrl-C and SIGTERM finish the current candle and stop."""

    from singularity.engine.core import warm_kernel

    warm_kernel()

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, engine.request_stop)
        return await engine.run()

    return asyncio.run(main())


def build_exchange_engine(settings: Settings, opts: RunOptions, *,
                          extra_tasks: Sequence[Callable[[Engine], Awaitable[Any]]] = (),
                          secrets: tuple[str, ...] = (), ledger: Ledger | None = None,
                          worker: StrategyWorker | None = None) -> Engine:
    """Paper or live: the websocket feed and the paper or live venue. Markets, the exchange
    clock and missing history are fetched here, before the loop starts."""
    import threading

    from singularity.data.downloader import download_ohlcv
    from singularity.engine.exchange import pro_client, rest_client
    from singularity.engine.feeds.ws import QuoteBook, WsFeed
    from singularity.timeframes import timeframe_delta

    mode = opts.mode
    keys = (secrets[0], secrets[1]) if mode == "live" and len(secrets) == 2 else None
    store = CandleStore(settings.data_dir)
    ex_id = settings.exchange.name
    specs = strategy_specs(settings, opts)
    ledger = ledger or Ledger(ledger_url(settings, mode))
    rest = rest_client(settings, keys)
    markets = rest.load_markets()
    unknown = [s for s in specs if s not in markets]
    if unknown:
        raise DataError(f"{ex_id} has no spot market {', '.join(unknown)}")
    bar = timeframe_delta(opts.timeframe)
    now = pd.Timestamp(int(rest.fetch_time()), unit="ms", tz="UTC")
    open_now = now.floor(bar)
    back = lookback_bars(settings)
    for sym in specs:  # the features' history: what the store lacks is downloaded once
        download_ohlcv(store, rest, sym, opts.timeframe, open_now - back * bar, until=open_now,
                       now=open_now, backoff_s=settings.engine.reconnect_base_s)
    last_stored = {s: store.last_timestamp(ex_id, s, opts.timeframe) for s in specs}
    starts = {s: (t + bar if t is not None else open_now) for s, t in last_stored.items()}
    anchor = anchors(ledger, store, settings, opts, starts)
    books = ledger.open_books()
    # the feed continues right after what the worker will hold: the ledger's cursor (then
    # everything stored since is backfilled, extends the features and is reported skipped)
    last_closed = {s: (pd.Timestamp(books[s].last_candle) if s in books and books[s].last_candle
                       else starts[s] - bar) for s in specs}

    def history(sym: str, first: pd.Timestamp | None) -> pd.DataFrame:
        return store.read(ex_id, sym, opts.timeframe, anchor[sym], first if first is not None else starts[sym])

    lock = threading.Lock()

    def backfill(sym: str, first: pd.Timestamp, stop: pd.Timestamp) -> pd.DataFrame:
        with lock:  # one REST client, one request at a time
            download_ohlcv(store, rest, sym, opts.timeframe, first, until=stop, now=stop,
                           backoff_s=settings.engine.reconnect_base_s)
            return store.read(ex_id, sym, opts.timeframe, first, stop)

    quotes = QuoteBook()
    feed = WsFeed(symbols=list(specs), timeframe=opts.timeframe, make_client=lambda: pro_client(settings, keys),
                  backfill=backfill, last_closed=last_closed, quotes=quotes,
                  timeout_s=settings.engine.feed_timeout_s, base_s=settings.engine.reconnect_base_s,
                  max_s=settings.engine.reconnect_max_s)
    venue: Any
    capital: float | None = settings.engine.capital
    if mode == "live":
        from singularity.engine.venues.live import LiveVenue

        capital = reconcile_balances(rest, markets, specs, books)

        venue = LiveVenue(client=rest, fee_bps=settings.costs.fee_bps, slippage_bps=settings.costs.slippage_bps,
                          markets=markets)
    else:
        from singularity.engine.venues.paper import PaperVenue

        venue = PaperVenue(quotes=quotes, markets=markets, fee_bps=settings.costs.fee_bps,
                           slippage_bps=settings.costs.slippage_bps, max_age_s=settings.engine.quote_max_age_s,
                           precision=rest)
    return Engine(EngineSetup(
        mode=mode, timeframe=opts.timeframe, ledger=ledger, feed=feed, venue=venue,
        worker=worker or StrategyWorker(timeout_s=settings.engine.worker_timeout_s), specs=specs, history=history,
        settings=settings.engine, extra_tasks=extra_tasks, capital=capital,
        # paper simulates the account, so it pays for its shorts; a live account is charged by
        # the exchange (and the live venue trades spot only)
        short_rate=short_rate_per_bar(settings, opts.timeframe) if mode == "paper" else 0.0))


def reconcile_balances(rest: Any, markets: dict[str, Any], specs: dict[str, StrategySpec],
                       books: dict[str, Any]) -> float:
    """Live start-up: each new symbol's share of the free quote currency (its starting cash
    in the ledger). The positions are checked against the balances by the venue's
    ``recover``, once the orders a crash left open are settled (a sell that filled while the
    engine was down leaves the ledger holding more than the account until then)."""
    balances = rest.fetch_balance()
    quotes = {markets[s]["quote"] for s in specs}
    if len(quotes) != 1:
        raise DataError(f"live trading needs one quote currency, got {sorted(quotes)}")
    free = float((balances.get("free") or {}).get(quotes.pop()) or 0.0)
    return free / len(specs)


def attach_scheduler(engine: Engine, settings: Settings, opts: RunOptions, *,
                     config_path: str | None = None, exchange: str | None = None, start: bool = True) -> Any:
    """Background forging on ``engine`` (``[engine.scheduler]``): a scheduler whose cycles
    run as supervised child processes, and the rotation logic that trades their champions.
    Symbols of ``opts`` that have no strategy are queued for a cycle at once. ``start=False``
    leaves the scheduler's queue unserved (tests of the rotation logic)."""
    from singularity.engine.rotation import Rotation
    from singularity.engine.scheduler import Scheduler
    from singularity.timeframes import periods_per_year

    sched = Scheduler(settings.engine.scheduler, registry_url=settings.database_url, timeframe=opts.timeframe,
                      log_dir=settings.data_dir / "logs", config_path=config_path, exchange=exchange)
    rot = Rotation(engine, sched, settings.engine.scheduler, registry_url=settings.database_url,
                   ppy=periods_per_year(opts.timeframe),
                   cost_rate=(settings.costs.fee_bps + settings.costs.slippage_bps) / 1e4)
    rot.attach()
    recover_orphaned_cycles(engine.s.ledger, settings.database_url)
    if settings.engine.scheduler.cluster:
        from singularity.engine.cluster import ClusterRunner, cluster_settings_doc

        sched.cluster = ClusterRunner(settings.engine.scheduler.cluster, cluster_settings_doc(settings))
    if opts.mode == "replay":
        # a cycle forges on the candles the replay has decided, never on those still to come
        def replay_end(sym: str) -> str | None:
            book = engine.books.get(sym)
            if book is not None and book.last_candle:
                return (pd.Timestamp(book.last_candle) + engine.bar).isoformat()
            frame = getattr(engine.s.feed, "frames", {}).get(sym)
            return frame.index[0].isoformat() if frame is not None and len(frame) else None

        sched.end_for = replay_end
    for sym in opts.symbols:
        if sym not in engine.s.specs:
            sched.request(sym, "no champion")

    async def run_scheduler(_engine: Engine) -> None:
        try:
            await sched.run()
        finally:
            if sched.cluster is not None:
                await sched.cluster.close()

    if start:
        engine.s.extra_tasks = [*engine.s.extra_tasks, run_scheduler]
    return rot


def attach_regimes(engine: Engine, settings: Settings, opts: RunOptions, *, scheduler: Any = None) -> Any:
    """The regime watch (``[engine.regimes]``): each symbol's current regime from a worker
    process; with ``forge_on_change`` a regime change queues a cycle on ``scheduler``."""
    from singularity.engine.regimes import RegimeWatch

    watch = RegimeWatch(engine, settings, opts.timeframe, scheduler=scheduler)
    watch.attach()
    return watch


def recover_orphaned_cycles(ledger: Ledger, registry_url: str) -> list[dict[str, Any]]:
    """At start-up (before the loop): cycles an earlier engine left running (it was killed)
    are failed in the registry (its crash recovery: their processes are gone) and in the
    pipeline status. Returns the pipeline rows rewritten."""
    from singularity.registry import Registry

    with Registry(registry_url) as reg:  # opening recovers
        rows = []
        for r in ledger.pipeline():
            if r["kind"] == "forge" and r["state"] == "running":
                detail = dict(r.get("detail") or {})
                run = None
                if detail.get("run_id") is not None:
                    with contextlib.suppress(DataError):
                        run = reg.run(int(detail["run_id"]))
                detail["detail"] = (f"orphaned: the engine that ran it stopped; run {run.id} {run.status}: {run.error}"
                                    if run is not None else "orphaned: the engine that ran it stopped")
                rows.append({**{k: r[k] for k in ("name", "kind", "symbol", "progress", "eta_s", "pid")},
                             "state": "failed", "stage": "failed", "detail": detail})
            elif r["kind"] == "pool" and r["state"] == "busy":
                rows.append({**{k: r[k] for k in ("name", "kind", "symbol", "progress", "eta_s")},
                             "state": "idle", "stage": "", "pid": None, "detail": {"workers": 0, "owner": None}})
    if rows:
        ledger.write_pipeline(rows)
    return rows


def attach_notifier(engine: Engine, settings: Settings) -> Any:
    """Webhook / Telegram notifications of ``[engine.notify]`` (nothing when unconfigured)."""
    from singularity.engine.notify import Notifier

    n = Notifier(settings.engine.notify)
    if not n.enabled:
        return None
    engine.notifier = n  # type: ignore[attr-defined]
    engine.on_written.append(n.events)

    async def run_notifier(_engine: Engine) -> None:
        await n.run()

    engine.s.extra_tasks = [*engine.s.extra_tasks, run_notifier]
    return n
