"""Paper venue: market orders fill at once at the live ask (buy) or bid (sell), or the last
trade when no fresh quote is there, plus the backtest's slippage and fee. Orders below the
market's minimum amount or notional, or that round to nothing at its precision, are refused
as the exchange would. Each fill also records what the backtest would have paid (the decided
candle's close, the next open on a continuous market, with slippage): the shortfall report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from singularity.engine.feeds.ws import QuoteBook
from singularity.engine.ledger import NewEvent
from singularity.engine.projection import Book
from singularity.engine.venues import Order, sized_fill


class PaperVenue:
    name = "paper"
    external = True

    def __init__(self, *, quotes: QuoteBook, markets: dict[str, Any], fee_bps: float, slippage_bps: float,
                 max_age_s: float, precision: Any = None) -> None:
        self.quotes = quotes
        self.markets = markets
        self.fee_rate, self.slippage_rate = fee_bps / 1e4, slippage_bps / 1e4
        self.max_age_s = max_age_s
        self.precision = precision  # ccxt client: amount_to_precision(symbol, amount)

    def fills_at_open(self, symbol: str, ts: Any, row: Any, book: Book) -> list[NewEvent]:
        return []

    def _refuse(self, order: Order, reason: str) -> list[NewEvent]:
        return [NewEvent("order", f"order:{order.client_order_id}:refused", {
            "client_order_id": order.client_order_id, "status": "refused", "reason": reason},
            order.symbol, datetime.now(UTC))]

    async def place(self, order: Order, book: Book, *, now: bool = False) -> list[NewEvent]:
        mark = book.last_price or 0.0
        equity = book.equity()
        want_shares = order.target * equity / mark if mark else 0.0
        buy = want_shares > book.quantity
        quote = self.quotes.price(order.symbol, buy=buy, max_age_s=self.max_age_s)
        if quote is None:
            return self._refuse(order, f"no quote or trade in the last {self.max_age_s:g}s")
        price, source = quote
        slip = 1 + self.slippage_rate if buy else 1 - self.slippage_rate
        fill = sized_fill(book, order.target, price, self.fee_rate, self.slippage_rate,
                          client_order_id=order.client_order_id, quote=source,
                          backtest_price=mark * slip if mark else None)
        if fill is None:
            return self._refuse(order, "nothing to trade")
        amount = abs(fill["quantity"])
        if self.precision is not None:
            try:
                amount = float(self.precision.amount_to_precision(order.symbol, amount))
            except Exception as e:  # ccxt's InvalidOrder: below the market's precision
                return self._refuse(order, f"{type(e).__name__}: {str(e)[:200]}")
        market = self.markets.get(order.symbol) or {}
        limits = market.get("limits") or {}
        min_amount = (limits.get("amount") or {}).get("min") or 0.0
        min_cost = (limits.get("cost") or {}).get("min") or 0.0
        if amount <= 0 or amount < min_amount:
            return self._refuse(order, f"amount {amount:g} below the market's minimum {min_amount:g}")
        if amount * fill["price"] < min_cost:
            return self._refuse(order, f"notional {amount * fill['price']:.4f} below the market's minimum {min_cost:g}")
        if amount != abs(fill["quantity"]):
            sign = 1.0 if fill["quantity"] > 0 else -1.0
            fill.update(quantity=sign * amount, notional=amount * fill["price"],
                        fee=amount * fill["price"] * self.fee_rate)
        return [NewEvent("fill", f"fill:{order.client_order_id}", fill, order.symbol, datetime.now(UTC))]

    async def recover(self, books: dict[str, Book]) -> list[NewEvent]:
        """Paper orders left open by a crash were never filled: cancel them (the next candle
        decides afresh; a late fill at a stale price would be fiction)."""
        out = []
        for sym, book in books.items():
            for coid in book.open_orders:
                out.append(NewEvent("order", f"order:{coid}:cancelled", {
                    "client_order_id": coid, "status": "cancelled",
                    "reason": "the engine stopped before the paper fill"}, sym, datetime.now(UTC)))
        return out

    async def close(self) -> None:
        return None
