"""Live venue: real market orders through ccxt ``create_order``, each with the client order id
derived from (strategy, symbol, candle), so the exchange itself refuses a second order for a
decided candle. Only reachable past the three locks (``guard.check_live``). Exchange calls are
blocking: they run in a thread, the loop only waits."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from singularity.engine.ledger import NewEvent
from singularity.engine.projection import Book, apply
from singularity.engine.venues import Order, sized_fill
from singularity.errors import DataError


def _fill_event(order_id: str, symbol: str, res: dict[str, Any], sign: float,
                trades: list[dict[str, Any]] | None = None) -> NewEvent | None:
    """The fill of an order as the exchange reports it; ``trades`` (the order's own trades)
    give the price and the fees where the order lacks them (Binance's order query has no
    fills: only the answer to the order itself does)."""
    filled = float(res.get("filled") or 0.0)
    if filled <= 0:
        return None
    fee = res.get("fee") or {}
    cost = fee.get("cost")
    price = float(res.get("average") or res.get("price") or 0.0)
    if trades:
        cost = sum(float((t.get("fee") or {}).get("cost") or 0.0) for t in trades)
        fee = next((t.get("fee") for t in trades if t.get("fee")), fee) or {}
        amount = sum(float(t.get("amount") or 0.0) for t in trades)
        if amount > 0:
            price = sum(float(t.get("cost") or 0.0) for t in trades) / amount
    if cost is None:
        cost = sum(float(f.get("cost") or 0.0) for f in res.get("fees") or [])
    return NewEvent("fill", f"fill:{order_id}", {
        "client_order_id": order_id, "price": price,
        "quantity": sign * filled, "fee": float(cost or 0.0), "fee_currency": fee.get("currency"),
        "exchange_order_id": res.get("id")}, symbol, datetime.now(UTC))


def check_holdings(balances: dict[str, Any], markets: dict[str, Any], books: dict[str, Book]) -> None:
    """The ledger's positions against the exchange's spot balances: a ledger that holds more
    than the account cannot trade on (it would sell what is not there)."""
    totals = balances.get("total") or {}
    for sym, book in books.items():
        if sym not in markets:
            continue
        base = markets[sym]["base"]
        held = float(book.quantity)
        have = float(totals.get(base) or 0.0)
        if held > have * (1 + 1e-9) + 1e-12:
            raise DataError(f"the ledger holds {held:g} {base} but the exchange account {have:g}: "
                            "reconcile the account (or start a new ledger) before trading live")


class LiveVenue:
    name = "live"
    external = True

    def __init__(self, *, client: Any, fee_bps: float, slippage_bps: float,
                 markets: dict[str, Any] | None = None) -> None:
        self.client = client
        self.markets = markets
        """With the markets, ``recover`` checks the settled positions against the balances."""
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
        try:
            # below the market's precision ccxt raises InvalidOrder: refused, as the exchange would
            amount = float(self.client.amount_to_precision(order.symbol, amount))
            res = await asyncio.to_thread(self.client.create_order, order.symbol, "market", side, amount, None,
                                          {"newClientOrderId": order.client_order_id})
        except Exception as e:  # ccxt's InvalidOrder, InsufficientFunds, ...: the exchange said no
            return [NewEvent("order", f"order:{order.client_order_id}:refused", {
                "client_order_id": order.client_order_id, "status": "refused",
                "reason": f"{type(e).__name__}: {str(e)[:200]}"}, order.symbol, datetime.now(UTC))]
        ev = _fill_event(order.client_order_id, order.symbol, res, 1.0 if side == "buy" else -1.0)
        return [ev] if ev is not None else []

    async def recover(self, books: dict[str, Book]) -> list[NewEvent]:
        """Start-up, before any new order: each order the ledger holds open is looked up at the
        exchange by its client order id. Filled: the fill is recorded (price and fees from its
        trades). Still open: it is cancelled, then what it filled meanwhile is recorded. Unknown
        to the exchange (the engine died before the request arrived): cancelled in the ledger.
        Then the positions so settled are checked against the account's balances."""
        out: list[NewEvent] = []
        for sym, book in books.items():
            for coid, target in list(book.open_orders.items()):
                events = await self._settle(sym, coid, target)
                for e in events:
                    apply(book, e.kind, e.payload, 0)
                out += events
        if self.markets is not None:
            check_holdings(await asyncio.to_thread(self.client.fetch_balance), self.markets, books)
        return out

    async def _settle(self, sym: str, coid: str, target: float) -> list[NewEvent]:
        import ccxt

        by_coid = {"origClientOrderId": coid}
        try:
            res = await asyncio.to_thread(self.client.fetch_order, None, sym, by_coid)
        except ccxt.OrderNotFound:
            return [NewEvent("order", f"order:{coid}:cancelled", {
                "client_order_id": coid, "status": "cancelled", "target": target,
                "reason": "not found at the exchange on restart: the request never arrived"},
                sym, datetime.now(UTC))]
        found = res.get("status")
        if found == "open":
            # cancel first, so nothing fills after the read below
            with contextlib.suppress(ccxt.OrderNotFound):  # it closed in between: the read tells
                await asyncio.to_thread(self.client.cancel_order, None, sym, by_coid)
            res = await asyncio.to_thread(self.client.fetch_order, None, sym, by_coid)
        out: list[NewEvent] = []
        if float(res.get("filled") or 0.0) > 0:
            trades = await asyncio.to_thread(self.client.fetch_order_trades, res.get("id"), sym)
            ev = _fill_event(coid, sym, res, 1.0 if res.get("side") == "buy" else -1.0, trades)
            if ev is not None:
                out.append(ev)
        if res.get("status") != "closed":
            out.append(NewEvent("order", f"order:{coid}:cancelled", {
                "client_order_id": coid, "status": "cancelled", "target": target,
                "filled": float(res.get("filled") or 0.0), "amount": res.get("amount"),
                "reason": f"found {found} at the exchange on restart ({res.get('status')} now)"},
                sym, datetime.now(UTC)))
        return out

    async def close(self) -> None:
        return None
