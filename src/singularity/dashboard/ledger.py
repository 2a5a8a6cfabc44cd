"""The dashboard's view of the engine: its ledger (read, and append for the controls) and its
status table. The schema belongs to the engine (singularity.engine); this module only adapts
its public read/append API to what the dashboard needs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from singularity.config import Settings
from singularity.dashboard.views import run_summary
from singularity.registry import Registry

log = logging.getLogger(__name__)


def run_rows(registry: Registry, limit: int = 20) -> list[dict[str, Any]]:
    return [run_summary(r) for r in registry.runs(limit=limit)]


def open_engine_ledger(settings: Settings, mode: str | None = None) -> EngineLedger | None:
    """The engine's ledger of this data directory: the given ``mode``'s, else the one whose
    engine wrote the freshest heartbeat (else the newest file). None where no ledger exists:
    a reader creates no database."""
    from singularity.engine.ledger import MODES, ledger_url

    if mode is not None:
        return EngineLedger(ledger_url(settings, mode), mode)
    found: list[tuple[float, str]] = []
    for m in MODES:
        url = ledger_url(settings, m)
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if not path.is_file():
                continue
            found.append((path.stat().st_mtime, m))
        else:
            found.append((0.0, m))
    if not found:
        return None
    best, best_key = None, None
    for mtime, m in found:
        try:
            led = EngineLedger(ledger_url(settings, m), m)
            row = led.ledger.status_row()
        except SQLAlchemyError as e:  # e.g. a server database for a mode never run
            log.debug("dashboard: no %s ledger: %s", m, e)
            continue
        beat = row["heartbeat_at"].timestamp() if row and row.get("heartbeat_at") else 0.0
        key = (beat, mtime)
        if best_key is None or key > best_key:
            if best is not None:
                best.close()
            best, best_key = led, key
        else:
            led.close()
    return best


class EngineLedger:
    """The dashboard's handle on one engine ledger (its own connections: never the engine's
    ``Ledger`` object, whose in-memory books only the engine may advance)."""

    def __init__(self, url: str, mode: str) -> None:
        from singularity.engine.ledger import Ledger

        self.url = url
        self.mode = mode
        self.ledger = Ledger(url)

    def close(self) -> None:
        self.ledger.close()

    @staticmethod
    def _row(e: Any) -> dict[str, Any]:
        d = e.as_dict()
        if d["symbol"] is None and isinstance(d["payload"], dict) and d["payload"].get("symbol"):
            d["symbol"] = d["payload"]["symbol"]  # a control names its symbol in the payload
        return d

    def events(self, *, after: int = 0, limit: int = 500, symbol: str | None = None,
               kind: str | None = None) -> list[dict[str, Any]]:
        return [self._row(e) for e in self.ledger.events(
            after_seq=after, symbol=symbol, kinds=[kind] if kind else None, limit=limit)]

    def tail(self, n: int, *, symbol: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """The newest ``n`` events (oldest first)."""
        from sqlalchemy import select

        from singularity.engine.ledger import events_table as t

        q = select(t.c.seq).order_by(t.c.seq.desc()).limit(n)
        if symbol is not None:
            q = q.where(t.c.symbol == symbol)
        if kind is not None:
            q = q.where(t.c.kind == kind)
        with self.ledger.engine.connect() as c:
            seqs = list(c.execute(q).scalars())
        if not seqs:
            return []
        return [e for e in self.events(after=min(seqs) - 1, limit=max(seqs) - min(seqs) + 1,
                                       symbol=symbol, kind=kind) if e["seq"] in set(seqs)]

    def last_seq(self) -> int:
        return self.ledger.last_seq()

    def append(self, *, kind: str, symbol: str | None, key: str, payload: dict[str, Any]) -> int:
        """Append one event from outside the engine. Its symbol goes in the payload, not the
        symbol column: the projections of a symbol are the engine's alone to write, and an
        event with no symbol touches none of them."""
        from singularity.engine.ledger import NewEvent

        body = {**payload, "symbol": symbol} if symbol is not None else dict(payload)
        written = self.ledger.append([NewEvent(kind, key, body, symbol=None)])
        if not written:
            raise ValueError(f"ledger key {key!r} already recorded")
        return written[0].seq

    def status(self) -> dict[str, Any]:
        from singularity.engine.status import status_document

        doc = status_document(self.ledger, self.mode)
        for row in doc["symbols"]:
            row.setdefault("pnl", row.get("day_pnl"))
        return doc

    def equity(self, symbol: str | None, *, max_points: int = 2000) -> dict[str, Any]:
        return equity_curve(self.ledger.events(symbol=symbol, kinds=("balance", "decision", "fill")),
                            symbol, max_points=max_points)


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
    regimes = {r["symbol"]: r["regime"] for r in regimes_view(ctx)["current"]}
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
            "regime": _regime(e.get("regime")) or regimes.get(sym),
            "feed": _feed(e.get("feed"), ((engine or {}).get("feeds") or {}).get(sym)),
            "paused": e.get("paused"),
        })
    return {"mode": (engine or {}).get("mode"), "running": bool((engine or {}).get("running")),
            "loop_lag_ms": (engine or {}).get("loop_lag_ms"), "timeframe": tf,
            "exchange": s.exchange.name, "symbols": rows}


def _regime(r: Any) -> str | None:
    """The engine's current regime of a symbol (its status row) as one label."""
    if not isinstance(r, dict):
        return r if isinstance(r, str) else None
    from singularity.engine.regimes import describe

    return describe(r)


def _feed(state: str | None, health: dict[str, Any] | None) -> str | None:
    """One line of feed health: state, why, reconnects."""
    if not health:
        return state or None
    line = str(health.get("state") or state or "")
    if health.get("detail"):
        line += f": {health['detail']}"
    if health.get("reconnects"):
        n = int(health["reconnects"])
        line += f" ({n} reconnect{'s' if n != 1 else ''})"
    return line


def ledger_events(ledger: Any | None, *, after: int = 0, symbol: str | None = None,
                  kind: str | None = None, limit: int = 200, tail: int | None = None) -> list[dict[str, Any]]:
    if ledger is None:
        return []
    if tail is not None:
        return ledger.tail(tail, symbol=symbol, kind=kind)  # type: ignore[no-any-return]
    return ledger.events(after=after, limit=limit, symbol=symbol, kind=kind)  # type: ignore[no-any-return]


def regimes_view(ctx: Any) -> dict[str, Any]:
    """Segments ``{symbol, regime, start, end}`` from the ledger's ``regime`` events (payload
    ``{"regime": label}``); the last segment of a symbol ends at the ledger's newest event (its
    clock: candle times in a replay)."""
    events = ledger_events(ctx.ledger, kind="regime", limit=5000) if ctx.ledger is not None else []
    newest = ledger_events(ctx.ledger, tail=1) if events else []
    now = max(newest[0]["time"], events[-1]["time"]) if newest else ""
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


def equity_curve(events: list[Any], symbol: str | None, *, max_points: int = 2000) -> dict[str, Any]:
    """Equity at every decided candle, folded with the engine's own projection (``apply``),
    beside buy-and-hold from each symbol's first decision and the backtest's prediction: the
    same fills at the price the backtest would have used (``backtest_price``). The shortfall
    is the backtest's final equity minus the ledger's (> 0: trading did worse)."""
    from singularity.engine.projection import Book, apply

    books: dict[str, Any] = {}
    bt: dict[str, Any] = {}
    first: dict[str, tuple[float, float]] = {}  # symbol -> (equity, close) at its first decision
    times: list[str] = []
    eq: list[float] = []
    hold: list[float] = []
    pred: list[float] = []
    has_bt = False
    for e in events:
        sym = e.symbol
        if sym is None:
            continue
        b = books.setdefault(sym, Book(sym))
        bb = bt.setdefault(sym, Book(sym))
        payload = e.payload
        apply(b, e.kind, payload, e.seq)
        if e.kind == "fill" and payload.get("backtest_price") is not None:
            has_bt = True
            payload = {**payload, "price": payload["backtest_price"]}
        apply(bb, e.kind, payload, e.seq)
        if e.kind != "decision":
            continue
        close = float(e.payload["close"])
        first.setdefault(sym, (b.equity(close), close))
        t = str(e.payload.get("candle") or e.time.isoformat())
        hold_now = sum(first[s][0] * books[s].last_price / first[s][1] if s in first else x.equity()
                       for s, x in books.items())  # a symbol not yet decided holds its cash
        point = (sum(x.equity() for x in books.values()), hold_now, sum(x.equity() for x in bt.values()))
        if times and times[-1] == t:
            eq[-1], hold[-1], pred[-1] = point
        else:
            times.append(t)
            eq.append(point[0])
            hold.append(point[1])
            pred.append(point[2])
    if not times:
        return _empty_equity(symbol)
    peak = 0.0
    dd: list[float] = []
    for v in eq:
        peak = max(peak, v)
        dd.append(v / peak - 1.0 if peak > 0 else 0.0)
    n = len(times)
    step = max(1, -(-n // max_points))
    keep = list(range(0, n, step))
    if keep[-1] != n - 1:
        keep.append(n - 1)
    pick = lambda xs: [xs[i] for i in keep]  # noqa: E731
    return {"symbol": symbol, "points": n, "time": pick(times), "equity": pick(eq),
            "buy_hold": pick(hold), "backtest": pick(pred) if has_bt else [], "drawdown": pick(dd),
            "last_equity": eq[-1], "max_drawdown": min(dd),
            "shortfall": (pred[-1] - eq[-1]) if has_bt else None}


def _empty_equity(symbol: str | None) -> dict[str, Any]:
    return {"symbol": symbol, "points": 0, "time": [], "equity": [], "buy_hold": [], "backtest": [],
            "drawdown": [], "last_equity": None, "max_drawdown": None, "shortfall": None}


def equity_view(ctx: Any, symbol: str | None) -> dict[str, Any]:
    if ctx.ledger is None:
        return _empty_equity(symbol)
    return ctx.ledger.equity(symbol)  # type: ignore[no-any-return]
