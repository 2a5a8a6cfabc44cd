"""Replay venue: an order decided at a candle's close fills at the next candle's open with the
backtest kernel's fee and slippage model, so a replay reproduces ``backtest.run``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from singularity.engine.ledger import NewEvent
from singularity.engine.projection import Book
from singularity.engine.venues import Order, sized_fill


class ReplayVenue:
    name = "replay"
    external = False
    """Nothing leaves the process: the engine may commit a batch of candles at once."""

    def __init__(self, *, fee_bps: float, slippage_bps: float) -> None:
        self.fee_rate = fee_bps / 1e4
        self.slippage_rate = slippage_bps / 1e4

    def _fill_or_cancel(self, coid: str, target: float, symbol: str, book: Book, price: float,
                        when: pd.Timestamp) -> NewEvent:
        fill = sized_fill(book, target, price, self.fee_rate, self.slippage_rate,
                          client_order_id=coid, backtest_price=price)
        if fill is None:
            return NewEvent("order", f"order:{coid}:cancelled", {
                "client_order_id": coid, "status": "cancelled", "reason": "nothing to trade"},
                symbol, when.to_pydatetime())
        return NewEvent("fill", f"fill:{coid}", fill, symbol, when.to_pydatetime())

    def fills_at_open(self, symbol: str, ts: pd.Timestamp, row: Any, book: Book) -> list[NewEvent]:
        return [self._fill_or_cancel(coid, target, symbol, book, float(row.open), ts)
                for coid, target in book.open_orders.items()]

    async def place(self, order: Order, book: Book, *, now: bool = False) -> list[NewEvent]:
        if not now or book.last_price is None:
            return []  # rests until the next candle's open
        when = pd.Timestamp(order.candle)
        return [self._fill_or_cancel(order.client_order_id, order.target, order.symbol, book,
                                     float(book.last_price), when)]

    async def recover(self, books: dict[str, Book]) -> list[NewEvent]:
        return []  # resting orders stay: they fill at the next replayed open

    async def close(self) -> None:
        return None
