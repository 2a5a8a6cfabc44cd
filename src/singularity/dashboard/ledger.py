"""The dashboard's view of the engine: its ledger (read, and append for the controls) and its
status table. The schema belongs to the engine (singularity.engine); this module only adapts
its public read/append API to what the dashboard needs."""

from __future__ import annotations

from typing import Any

from singularity.config import Settings
from singularity.dashboard.views import run_summary
from singularity.registry import Registry


def run_rows(registry: Registry, limit: int = 20) -> list[dict[str, Any]]:
    return [run_summary(r) for r in registry.runs(limit=limit)]


def open_engine_ledger(settings: Settings) -> Any | None:
    """The engine's ledger of this data directory, or None where no engine is installed."""
    try:
        import singularity.engine  # noqa: F401
    except ImportError:
        return None
    return None


def overview(ctx: Any) -> dict[str, Any]:
    """``/api/status``: the engine's status (when it runs) joined with the registry's
    champions and the store's last prices, one row per symbol of the universe."""
    from singularity.dashboard.views import last_prices

    s = ctx.settings
    symbols = list(s.universe.symbols)
    tf = s.timeframes.tactical
    engine = ctx.ledger.status() if ctx.ledger is not None else None
    champions: dict[str, dict[str, Any]] = {}
    for st in ctx.registry.strategies(status="champion", limit=1000):
        if st.timeframe == tf:
            champions.setdefault(st.symbol, {"id": st.id, "rule": st.readable or st.expression})
    prices = last_prices(ctx.store, s.exchange.name, symbols, tf)
    live = {row["symbol"]: row for row in (engine or {}).get("symbols", [])}
    rows = []
    for sym in symbols:
        e = live.get(sym, {})
        p = prices.get(sym, {})
        rows.append({
            "symbol": sym,
            "price": e.get("price", p.get("price")),
            "last_candle": e.get("last_candle", p.get("last_candle")),
            "position": e.get("position"),
            "equity": e.get("equity"),
            "pnl": e.get("pnl", e.get("today_pnl")),
            "champion": champions.get(sym),
            "strategy_id": e.get("strategy_id"),
            "regime": e.get("regime"),
            "feed": e.get("feed"),
            "paused": e.get("paused"),
        })
    return {"mode": (engine or {}).get("mode"), "running": bool((engine or {}).get("running")),
            "loop_lag_ms": (engine or {}).get("loop_lag_ms"), "timeframe": tf,
            "exchange": s.exchange.name, "symbols": rows}


def ledger_events(ledger: Any | None, *, after: int = 0, symbol: str | None = None,
                  kind: str | None = None, limit: int = 200, tail: int | None = None) -> list[dict[str, Any]]:
    if ledger is None:
        return []
    if tail is not None:
        return ledger.tail(tail, symbol=symbol, kind=kind)  # type: ignore[no-any-return]
    return ledger.events(after=after, limit=limit, symbol=symbol, kind=kind)  # type: ignore[no-any-return]


def regimes_view(ctx: Any) -> dict[str, Any]:
    """Segments ``{symbol, regime, start, end}`` from the ledger's ``regime`` events (payload
    ``{"regime": label}``); the last segment of a symbol ends now."""
    from datetime import UTC, datetime

    events = ledger_events(ctx.ledger, kind="regime", limit=5000) if ctx.ledger is not None else []
    now = datetime.now(UTC).isoformat()
    segments: list[dict[str, Any]] = []
    open_: dict[str, dict[str, Any]] = {}
    for ev in events:
        sym = ev.get("symbol") or ""
        label = str((ev.get("payload") or {}).get("regime", "unclassified"))
        prev = open_.get(sym)
        if prev is not None:
            if prev["regime"] == label:
                continue
            prev["end"] = ev["time"]
        seg = {"symbol": sym, "regime": label, "start": ev["time"], "end": now}
        segments.append(seg)
        open_[sym] = seg
    current = [{"symbol": s, "regime": seg["regime"], "since": seg["start"]} for s, seg in sorted(open_.items())]
    return {"segments": segments, "current": current}


def _empty_equity(symbol: str | None) -> dict[str, Any]:
    return {"symbol": symbol, "points": 0, "time": [], "equity": [], "buy_hold": [], "backtest": [],
            "drawdown": [], "last_equity": None, "max_drawdown": None, "shortfall": None}


def equity_view(ctx: Any, symbol: str | None) -> dict[str, Any]:
    if ctx.ledger is None:
        return _empty_equity(symbol)
    return ctx.ledger.equity(symbol)  # type: ignore[no-any-return]
