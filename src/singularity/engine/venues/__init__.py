"""Venues: where orders fill (``replay``: next candle's open, ``paper``: the live quote,
``live``: the exchange). All size orders with the backtest kernel's own ``_order``, so a
target means the same number of units everywhere."""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from singularity.engine.ledger import NewEvent
from singularity.engine.projection import Book


@dataclass(frozen=True)
class Order:
    client_order_id: str
    symbol: str
    target: float
    candle: str
    """ISO open time of the candle whose close decided it."""
    reason: str = "signal"


def client_order_id(strategy_id: int | None, symbol: str, candle: pd.Timestamp, prefix: str = "sg") -> str:
    """Derived from (strategy, symbol, candle): deciding the candle again gives the same id,
    and the exchange refuses a second order with it. Binance allows 36 of [A-Za-z0-9._:/-]."""
    sym = re.sub(r"[^A-Za-z0-9]", "", symbol)
    return f"{prefix}{strategy_id or 0}-{sym}-{int(candle.timestamp())}"[:36]


@functools.cache
def kernel_order() -> Callable[..., tuple[float, float, float, float, float]]:
    """The backtest kernel's ``_order`` run by CPython: the same source and the same IEEE
    double arithmetic (a test holds the two equal bit for bit), without Numba's start-up in
    the engine process (its type registries: about a second of CPU on every restart, for a
    function called once per order)."""
    from singularity.backtest import kernel

    f = kernel._order.py_func
    scope = dict(f.__globals__, _close_enough=kernel._close_enough.py_func)
    return types.FunctionType(f.__code__, scope, f.__name__, f.__defaults__, f.__closure__)


def sized_fill(book: Book, target: float, price: float, fee_rate: float, slippage_rate: float,
               **extra: Any) -> dict[str, Any] | None:
    """The fill that moves ``book`` to ``target`` at ``price`` (kernel accounting), or None
    when there is nothing to trade."""
    _cash, _shares, d, fill, fee = kernel_order()(float(book.cash), float(book.quantity), float(target),
                                                  float(price), float(fee_rate), float(slippage_rate))
    if d == 0.0:
        return None
    return {"price": float(fill), "quantity": float(d), "fee": float(fee),
            "notional": abs(float(d)) * float(fill), "reference_price": float(price), **extra}


class Venue(Protocol):
    name: str

    def fills_at_open(self, symbol: str, ts: pd.Timestamp, row: Any, book: Book) -> list[NewEvent]:
        """Fills of resting orders at this candle's open (replay); [] elsewhere."""
        ...

    async def place(self, order: Order, book: Book, *, now: bool = False) -> list[NewEvent]:
        """Place ``order``; the fills (or refusal) known at once. ``now``: fill immediately
        even in replay (kill switch)."""
        ...

    async def recover(self, books: dict[str, Book]) -> list[NewEvent]:
        """Start-up: settle orders a previous run left open."""
        ...

    async def close(self) -> None: ...
