"""Live venue: real market orders through ccxt ``create_order``, each with the client order id
derived from (strategy, symbol, candle), so the exchange itself refuses a second order for a
decided candle. Only reachable past the three locks (``guard.check_live``). Exchange calls are
blocking: they run in a thread, the loop only waits."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from singularity.engine.ledger import NewEvent
from singularity.engine.projection import Book
from singularity.engine.venues import Order, sized_fill


def _fill_event(order_id: str, symbol: str, res: dict[str, Any], sign: float) -> NewEvent | None:
    filled = float(res.get("filled") or 0.0)
    if filled <= 0:
        return None
    fee = res.get("fee") or {}
    cost = fee.get("cost")
    if cost is None:
        cost = sum(float(f.get("cost") or 0.0) for f in res.get("fees") or [])
    return NewEvent("fill", f"fill:{order_id}", {
        "client_order_id": order_id, "price": float(res.get("average") or res.get("price") or 0.0),
        "quantity": sign * filled, "fee": float(cost or 0.0), "fee_currency": fee.get("currency"),
        "exchange_order_id": res.get("id")}, symbol, datetime.now(UTC))


class LiveVenue:
    name = "live"
    external = True

    def __init__(self, *, client: Any, fee_bps: float, slippage_bps: float) -> None:
        self.client = client
        self.fee_rate, self.slippage_rate = fee_bps / 1e4, slippage_bps / 1e4

    def fills_at_open(self, symbol: str, ts: Any, row: Any, book: Book) -> list[NewEvent]:
        return []

    async def place(self, order: Order, book: Book, *, now: bool = False) -> list[NewEvent]:
        # a spot account cannot sell what it does not hold: a short target means flat
        target = max(order.target, 0.0)
        sized = sized_fill(book, target, float(book.last_price or 0.0), self.fee_rate, 0.0)
        if sized is None:
            return [NewEvent("order", f"order:{order.client_order_id}:cancelled", {
                "client_order_id": order.client_order_id, "status": "cancelled",
                "reason": "nothing to trade on a spot account" if order.target < 0 else "nothing to trade"},
                order.symbol, datetime.now(UTC))]
        side = "buy" if sized["quantity"] > 0 else "sell"
        amount = abs(sized["quantity"])
        if side == "sell":
            amount = min(amount, book.quantity)
        amount = float(self.client.amount_to_precision(order.symbol, amount))
        try:
            res = await asyncio.to_thread(self.client.create_order, order.symbol, "market", side, amount, None,
                                          {"newClientOrderId": order.client_order_id})
        except Exception as e:  # ccxt's InvalidOrder, InsufficientFunds, ...: the exchange said no
            return [NewEvent("order", f"order:{order.client_order_id}:refused", {
                "client_order_id": order.client_order_id, "status": "refused",
                "reason": f"{type(e).__name__}: {str(e)[:200]}"}, order.symbol, datetime.now(UTC))]
        ev = _fill_event(order.client_order_id, order.symbol, res, 1.0 if side == "buy" else -1.0)
        return [ev] if ev is not None else []

    async def recover(self, books: dict[str, Book]) -> list[NewEvent]:
        """Orders the ledger holds open are looked up by client order id: filled ones are
        recorded, the rest cancelled, before any new order goes out."""
        out: list[NewEvent] = []
        for sym, book in books.items():
            for coid, target in book.open_orders.items():
                res = await asyncio.to_thread(self.client.fetch_order, None, sym, {"origClientOrderId": coid})
                side = 1.0 if res.get("side") == "buy" else -1.0
                ev = _fill_event(coid, sym, res, side)
                if ev is not None:
                    out.append(ev)
                    continue
                if res.get("status") == "open":
                    await asyncio.to_thread(self.client.cancel_order, res.get("id"), sym)
                out.append(NewEvent("order", f"order:{coid}:cancelled", {
                    "client_order_id": coid, "status": "cancelled", "target": target,
                    "reason": f"found {res.get('status')} at the exchange on restart"}, sym, datetime.now(UTC)))
        return out

    async def close(self) -> None:
        return None
