"""Projections of the ledger: what the events imply for each symbol's account.

``apply`` is a pure function of (book, event); the engine applies each event as it appends
it (the projection tables are written in the same transaction) and recovery applies all of
them from the start, so the two can be compared exactly (same floats, same order).

Event kinds and the payload keys the projections read:

- ``balance``   ``{"delta"}``: cash deposited (+) or withdrawn (-).
- ``rotation``  ``{"strategy_id", "expression"}``: the strategy the symbol trades from now on.
- ``decision``  ``{"candle", "close", "target"}``: a closed candle was decided; ``target`` is
  the position (fraction of equity) after risk limits; marks the account at ``close``.
- ``order``     ``{"client_order_id", "status"}``: ``open`` (placed), ``refused``, ``cancelled``.
- ``fill``      ``{"client_order_id", "price", "quantity", "fee"}``: ``quantity`` signed (+ buy),
  ``price`` includes slippage, ``fee`` in quote currency paid from cash.
- ``risk``      ``{"action", "reason"}``: ``pause`` stops trading the symbol, ``resume`` resumes.
- ``control``   engine start/stop and skipped candles; changes nothing here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("balance", "rotation", "decision", "order", "fill", "risk", "control")


@dataclass
class Book:
    """One symbol's account: the projection rows of the ledger."""

    symbol: str
    cash: float = 0.0
    quantity: float = 0.0
    target: float = 0.0
    """Last decided target (after risk): an order goes out only when it changes."""
    last_candle: str | None = None
    last_price: float | None = None
    strategy_id: int | None = None
    paused: bool = False
    pause_reason: str = ""
    peak_equity: float = 0.0
    day: str = ""
    day_start_equity: float = 0.0
    last_equity: float = 0.0
    open_orders: dict[str, float] = field(default_factory=dict)
    """client order id -> target of orders placed and not yet filled or cancelled."""
    fees: float = 0.0
    fills: int = 0
    last_seq: int = 0

    def equity(self, price: float | None = None) -> float:
        p = self.last_price if price is None else price
        return self.cash + (self.quantity * p if p is not None and self.quantity else 0.0)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def apply(book: Book, kind: str, payload: dict[str, Any], seq: int) -> None:
    """Fold one event into ``book`` (in place)."""
    if kind == "balance":
        book.cash += float(payload["delta"])
    elif kind == "rotation":
        book.strategy_id = payload.get("strategy_id")
    elif kind == "decision":
        close = float(payload["close"])
        book.last_candle = str(payload["candle"])
        book.last_price = close
        book.target = float(payload["target"])
        eq = book.equity(close)
        day = book.last_candle[:10]
        if day != book.day:
            # a day starts at the previous close's equity (the first day: at its first close)
            book.day_start_equity = book.last_equity if book.day else eq
            book.day = day
        book.last_equity = eq
        book.peak_equity = max(book.peak_equity, eq)
    elif kind == "order":
        coid = str(payload["client_order_id"])
        if payload.get("status", "open") == "open":
            book.open_orders[coid] = float(payload.get("target", 0.0))
        else:
            book.open_orders.pop(coid, None)
    elif kind == "fill":
        q, p, fee = float(payload["quantity"]), float(payload["price"]), float(payload["fee"])
        book.quantity += q
        book.cash -= q * p + fee
        book.fees += fee
        book.fills += 1
        book.open_orders.pop(str(payload["client_order_id"]), None)
    elif kind == "risk":
        action = payload.get("action")
        if action == "pause":
            book.paused, book.pause_reason = True, str(payload.get("reason", ""))
        elif action == "resume":
            book.paused, book.pause_reason = False, ""
    book.last_seq = seq
