"""``singularity run | status | ledger | stop``: the engine and what it recorded."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from singularity.cli._context import console, settings

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
                "feed"):
        table.add_column(col, overflow="fold", justify="right" if col in (
            "price", "position", "equity", "today PnL") else "left")
    for s in doc["symbols"]:
        feed = s.get("feed") or ""
        if s.get("paused"):
            feed = f"paused: {s.get('pause_reason', '')}"
        table.add_row(s["symbol"], _when(s["last_candle"]), _fmt(s["price"], 2), _fmt(s["position"], 6),
                      _fmt(s["equity"], 2), _fmt(s["day_pnl"], 2), _fmt(s["strategy_id"]), feed)
    return table


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
