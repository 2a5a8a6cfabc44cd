"""``singularity run | status | ledger | stop``: the engine and what it recorded."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from singularity.cli._context import console, err_console, settings

_MODE_HELP = "Which ledger: replay, paper or live (each mode has its own database)."


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _when(iso: str | None) -> str:
    return "" if not iso else iso.replace("T", " ")[:16]


def symbol_table(doc: dict[str, Any]) -> Table:
    """The per-symbol table of ``run`` and ``status``."""
    lag = doc.get("loop_lag_ms") or {}
    title = (f"engine ({doc['mode']}) — {'running' if doc['running'] else 'not running'}"
             + (f", loop lag p99 {lag['p99']:.1f} ms" if lag.get("p99") is not None else ""))
    table = Table(title=title)
    for col in ("symbol", "last candle", "price", "position", "equity", "today PnL", "strategy",
                "regime", "feed"):
        table.add_column(col, overflow="fold", justify="right" if col in (
            "price", "position", "equity", "today PnL") else "left")
    for s in doc["symbols"]:
        feed = s.get("feed") or ""
        if s.get("paused"):
            feed = f"paused: {s.get('pause_reason', '')}"
        strategy = _fmt(s["strategy_id"]) + (f": {s['expression']}" if s.get("expression") else "")
        table.add_row(s["symbol"], _when(s["last_candle"]), _fmt(s["price"], 2), _fmt(s["position"], 6),
                      _fmt(s["equity"], 2), _fmt(s["day_pnl"], 2), strategy,
                      regime_text(s.get("regime")), feed)
    return table


def regime_text(r: dict[str, Any] | None) -> str:
    from singularity.engine.regimes import describe

    return describe(r)


def status(
    ctx: typer.Context,
    mode: str = typer.Option("paper", "--mode", help=_MODE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """What the engine is doing, read from its database (works from any process)."""
    from singularity.engine.ledger import Ledger, ledger_url
    from singularity.engine.status import status_document

    doc = status_document(Ledger(ledger_url(settings(ctx), mode)), mode)
    if as_json:
        typer.echo(json.dumps(doc, default=str))
        return
    console.print(symbol_table(doc))
    if doc.get("pipeline"):
        console.print(pipeline_table(doc["pipeline"]))


def pipeline_table(rows: list[dict[str, Any]]) -> Table:
    """What every process is doing (the ``pipeline_status`` table)."""
    table = Table(title="pipeline")
    for col in ("what", "state", "stage", "progress", "ETA", "pid", "detail", "updated"):
        table.add_column(col, overflow="fold", justify="right" if col in ("progress", "ETA", "pid") else "left")
    for r in rows:
        d = r.get("detail") or {}
        if r["kind"] == "engine":
            lag = d.get("loop_lag_ms") or {}
            info = f"candles {d.get('candles', 0)}, orders {d.get('orders', 0)}, lag p99 {lag.get('p99', '')} ms"
        elif r["kind"] == "symbol":
            info = f"position {_fmt(d.get('position'), 6)}, equity {_fmt(d.get('equity'), 2)}, strategy {d.get('strategy_id')}"
        elif r["kind"] == "regime":
            info = regime_text(d) + (f", refits {d['refits']}" if "refits" in d else "") + (
                f": {d.get('error') or d.get('warming_up')}" if d.get("error") or d.get("warming_up") else "")
        elif r["kind"] == "forge":
            info = f"run {d.get('run_id')}, {d.get('reason', '')}" + (f": {d['detail']}" if d.get("detail") else "")
        else:
            info = f"workers {d.get('workers', 0)}, CPU {d.get('cpu_percent', 0)} %"
        prog = r.get("progress")
        eta = r.get("eta_s")
        table.add_row(r["name"], r["state"], r["stage"], "" if prog is None else f"{100 * prog:.0f} %",
                      "" if eta is None else f"{eta:.0f} s", _fmt(r.get("pid")), info, _when(r.get("updated_at")))
    return table


def ledger(
    ctx: typer.Context,
    mode: str = typer.Option("paper", "--mode", help=_MODE_HELP),
    symbol: str | None = typer.Option(None, "--symbol", help="Only this symbol, e.g. BTC/USDT."),
    kind: list[str] = typer.Option([], "--kind", help="Only these kinds (repeatable)."),
    after: int = typer.Option(0, "--after", min=0, help="Only events after this sequence number."),
    limit: int | None = typer.Option(None, "--limit", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the ledger's events in order."""
    from singularity.engine.ledger import Ledger, ledger_url

    events = Ledger(ledger_url(settings(ctx), mode)).events(
        after_seq=after, symbol=symbol, kinds=kind or None, limit=limit)
    if as_json:
        typer.echo(json.dumps([e.as_dict() for e in events], default=str))
        return
    table = Table(title=f"ledger ({mode}, {len(events)} events)")
    for col in ("seq", "time", "kind", "symbol", "key", "payload"):
        table.add_column(col, overflow="fold")
    for e in events:
        table.add_row(str(e.seq), _when(e.time.isoformat()), e.kind, e.symbol or "", e.key,
                      json.dumps(e.payload, default=str))
    console.print(table)


def _ts(value: str | None, what: str) -> Any:
    import pandas as pd

    from singularity.errors import ConfigError

    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except ValueError:
        raise ConfigError(f"{what}: cannot read {value!r} as a date (e.g. 2024-01-31 or 2024-01-31T12:00)") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def run(
    ctx: typer.Context,
    symbols: list[str] = typer.Argument(None, help="Symbols to trade (default: the configured universe)."),
    mode: str = typer.Option("paper", "--mode", help="replay (stored candles), paper or live."),
    start: str | None = typer.Option(None, "--from", help="Replay: first candle (UTC date or time)."),
    end: str | None = typer.Option(None, "--to", help="Replay: stop before this time."),
    speed: float | None = typer.Option(None, "--speed", min=0.0, help="Replay pace: this many times real time "
                                       "(default: as fast as possible)."),
    timeframe: str = typer.Option("tactical", "--timeframe", help="Named timeframe or e.g. '1h'."),
    as_json: bool = typer.Option(False, "--json", help="At the end, print the final status as JSON."),
    dashboard: bool = typer.Option(False, "--dashboard", help="Serve the dashboard on the engine's loop "
                                   "(settings: dashboard.host, 127.0.0.1 by default)."),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Dashboard port (settings: dashboard.port)."),
    forge: bool = typer.Option(False, "--forge", help="Forge in the background and rotate champions "
                               "(settings: engine.scheduler; on by engine.scheduler.enabled)."),
    regimes: bool = typer.Option(False, "--regimes", help="Watch each symbol's market regime (settings: "
                                 "engine.regimes, features.regimes; on by engine.regimes.enabled)."),
    cluster: str | None = typer.Option(None, "--cluster", help="With --forge: run whole cycles on this Dask "
                                       "scheduler, tcp://HOST:PORT, one per task (settings: engine.scheduler.cluster)."),
) -> None:
    """Trade the symbols' champions (or pinned strategies): replay, paper or live."""
    import os
    import sys

    from singularity.config import check_symbol
    from singularity.engine.guard import check_live, load_keys, scrub_environ
    from singularity.engine.strategy import StrategyWorker
    from singularity.errors import ConfigError

    if mode not in ("replay", "paper", "live"):  # engine.ledger.MODES (not imported yet: SQLAlchemy)
        raise ConfigError(f"unknown mode {mode!r}: expected replay, paper or live")
    if cluster is not None and not cluster.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        raise ConfigError(f"--cluster: expected a Dask scheduler address such as tcp://HOST:8786, got {cluster!r}")
    s = settings(ctx, engine__scheduler__cluster=cluster)
    # the three locks are checked before anything touches the network or the disk
    check_live(mode=mode, live_setting=s.engine.live, exchange_id=s.exchange.name, environ=os.environ)
    secrets: tuple[str, ...] = ()
    if mode == "live":
        secrets = load_keys(s, os.environ)
    scrub_environ(secrets=secrets)  # before any child process exists
    for sym in symbols or ():
        try:
            check_symbol(sym)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    # the strategy worker starts warming up now, beside the rest of the start-up (imports,
    # the ledger, the store): a restart costs the longer of the two, not their sum
    worker = StrategyWorker(timeout_s=s.engine.worker_timeout_s)
    worker.start_early()
    try:
        from singularity.engine.assemble import RunOptions, build_replay, run_engine
        from singularity.engine.ledger import Ledger, ledger_url
        from singularity.engine.status import status_document

        opts = RunOptions(mode=mode, symbols=tuple(symbols or s.universe.symbols), timeframe=s.timeframe(timeframe),
                          start=_ts(start, "--from"), end=_ts(end, "--to"), speed=speed or None)
        extra = []
        if sys.stdout.isatty() and not as_json:
            extra.append(_live_table)
        if dashboard:
            from singularity.dashboard.embed import dashboard_task

            extra.append(dashboard_task(s, mode=mode, port=port, secrets=secrets))  # refuses an unsafe bind now
            (err_console if as_json else console).print(
                f"dashboard on http://{s.dashboard.host}:{port or s.dashboard.port}/", highlight=False)
        if mode == "replay":
            engine = build_replay(s, opts, extra_tasks=extra, worker=worker)
        else:
            from singularity.engine.assemble import build_exchange_engine

            engine = build_exchange_engine(s, opts, extra_tasks=extra, secrets=secrets, worker=worker)
        from singularity.engine.assemble import attach_notifier

        attach_notifier(engine, s)
        rot = None
        if forge or s.engine.scheduler.enabled:
            from singularity.cli._context import state
            from singularity.engine.assemble import attach_scheduler

            cfg = state(ctx).config_path
            rot = attach_scheduler(engine, s, opts, config_path=str(cfg) if cfg else None)
        if regimes or s.engine.regimes.enabled:
            from singularity.engine.assemble import attach_regimes

            attach_regimes(engine, s, opts, scheduler=rot.scheduler if rot is not None else None)
        run_engine(engine)
        doc = status_document(Ledger(ledger_url(s, mode)), mode)
        if as_json:
            typer.echo(json.dumps(doc, default=str))
        else:
            console.print(symbol_table(doc))
    except BaseException:
        worker.close(kill=True)  # a start-up that failed leaves no child behind
        raise


def live_document(engine: Any) -> dict[str, Any]:
    """What the live table shows, from the running engine's own books (no database read)."""
    rows = []
    for r in engine.summary():
        b = engine.books.get(r["symbol"])
        day_pnl = (b.equity() - b.day_start_equity) if b is not None and b.day else 0.0
        spec = engine.s.specs.get(r["symbol"])
        rows.append({**r, "day_pnl": day_pnl, "pause_reason": b.pause_reason if b else "",
                     "expression": spec.expression if spec is not None and spec.strategy_id == r["strategy_id"]
                     else None})
    return {"mode": engine.s.mode, "running": not engine.stopping, "loop_lag_ms": engine.lag.summary(),
            "symbols": rows}


async def _live_table(engine: Any, *, out: Any = None, every_s: float = 1.0) -> None:
    """Redraw the per-symbol table every ``every_s`` while the engine runs (a tty only)."""
    import asyncio

    from rich.live import Live

    with Live(symbol_table(live_document(engine)), console=out or console, auto_refresh=False,
              transient=True) as live:
        while True:
            await asyncio.sleep(every_s)
            live.update(symbol_table(live_document(engine)), refresh=True)


def stop(
    ctx: typer.Context,
    mode: str = typer.Option("paper", "--mode", help=_MODE_HELP),
    flatten: bool = typer.Option(False, "--flatten", help="Kill switch: close every position first."),
    wait: float = typer.Option(10.0, "--wait", min=0.0, help="Seconds to wait for the engine to stop."),
) -> None:
    """Ask the running engine to stop (with --flatten: close all positions, then stop)."""
    import time

    from singularity.engine.ledger import Ledger, ledger_url
    from singularity.engine.status import is_running
    from singularity.errors import SingularityError

    led = Ledger(ledger_url(settings(ctx), mode))
    if not is_running(led.status_row()):
        raise SingularityError(f"no {mode} engine is running (nothing to stop)")
    led.add_command("stop", {"flatten": flatten})
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not is_running(led.status_row()):
            console.print(f"{mode} engine stopped" + (" after flattening every position" if flatten else ""))
            return
        time.sleep(0.2)
    raise SingularityError(f"the {mode} engine did not stop within {wait:g}s (it may be busy); check 'singularity status'")
