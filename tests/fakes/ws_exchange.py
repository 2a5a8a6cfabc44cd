"""A local Binance spot exchange on 127.0.0.1 for the real ccxt.pro client: websocket market
streams (SUBSCRIBE/ack, ``kline``, ``trade``, ``bookTicker``) and the REST endpoints the engine
uses (``exchangeInfo``, ``time``, ``klines``), replaying candles from a frame on an accelerated
clock (one candle every ``bar_s`` wall seconds, ``ticks`` updates per candle).

Fault scripts, keyed by the candle index at whose start they fire:

- ``Close()``: the server closes every socket (a clean close frame);
- ``Reset()``: the server drops every TCP connection without a close frame;
- ``Silent(bars)``: no frame at all for ``bars`` candles while the clock runs on;
- ``Duplicate()``: every frame of that candle is sent twice;
- ``RateLimit(n)``: the next ``n`` REST kline requests answer 429 with Retry-After.

Signed endpoints (a spot account in USDT): market orders (``newClientOrderId``, duplicates
refused), the order query and cancel by client id, ``myTrades`` and ``account``. Orders fill at
once at the running candle's price with a 0.1 % commission in USDT, unless ``hold`` makes one
rest; ``crash`` SIGKILLs the engine while its order is in flight.

The clock stands still until the first client subscribes to a kline stream.

    with FakeBinanceWs({"BTCUSDT": frame}, start=300, bar_s=0.3) as ex:
        client = ccxt.pro.binance(ex.ccxt_config())
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
from aiohttp import WSMsgType, web

from .exchange_server import ERRORS, EXCHANGE_INFO, _fmt, interval_ms


@dataclass(frozen=True)
class Close:
    pass


@dataclass(frozen=True)
class Reset:
    pass


@dataclass(frozen=True)
class Silent:
    bars: int = 1


@dataclass(frozen=True)
class Duplicate:
    pass


@dataclass(frozen=True)
class RateLimit:
    requests: int = 1


class FakeBinanceWs:
    def __init__(self, frames: dict[str, pd.DataFrame], *, start: int, timeframe: str = "1h",
                 bar_s: float = 0.3, ticks: int = 3, faults: dict[int, Any] | None = None,
                 spread: float = 0.0005) -> None:
        self.frames = frames
        self.timeframe = timeframe
        self.step = interval_ms(timeframe)
        self.start = start
        self.bar_s = bar_s
        self.ticks = ticks
        self.faults = dict(faults or {})
        self.spread = spread
        first = next(iter(frames.values()))
        self.t0_ms = int(first.index[0].value // 1_000_000)
        self.n = min(len(f) for f in frames.values())
        self.index = start  # the candle now open
        self.now_ms = self.t0_ms + start * self.step
        self.sockets: list[tuple[web.WebSocketResponse, set[str], Any]] = []
        self.frames_sent = 0
        self.rest_429 = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.connections = 0
        self.finished = threading.Event()
        self.balances: dict[str, float] = {"USDT": 10_000.0}
        self.orders: dict[str, dict[str, Any]] = {}
        self.trades: list[dict[str, Any]] = []
        self.order_requests: list[str] = []
        """Client order id of every order request, refused duplicates included."""
        self.api_keys_seen: set[str] = set()
        self.crash: tuple[str, int, str | None] | None = None
        """One shot ``(when, pid, side)``: SIGKILL ``pid`` at the next order (of ``side``, or
        any) ``"before"`` it reaches the book or ``"after"`` it did, before the answer goes out:
        an engine that dies with its order in flight."""
        self.hold: tuple[float, str | None] | None = None
        """One shot ``(fraction, side)``: the next order (of ``side``, or any) executes only
        this fraction at once and then rests (``NEW`` or ``PARTIALLY_FILLED``) until cancelled."""
        self.opened_at: dict[int, float] = {}
        """Wall time (``time.time()``) each candle started: the previous one's close."""
        self._silent_until = -1
        self._duplicate = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> FakeBinanceWs:
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake exchange did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_post("/api/v3/order", self._new_order)
        app.router.add_get("/api/v3/order", self._get_order)
        app.router.add_delete("/api/v3/order", self._cancel_order)
        app.router.add_get("/api/v3/myTrades", self._my_trades)
        app.router.add_get("/api/v3/account", self._account)
        app.router.add_get("/{tail:.*}", self._ws)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._market = self._loop.create_task(self._play())
        self._ready.set()
        self._loop.run_forever()

    async def _shutdown(self) -> None:
        self._market.cancel()
        for ws, _subs, _t in list(self.sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream/ws"  # ccxt tells spot streams by '/stream'

    def candle_time(self, i: int) -> pd.Timestamp:
        return pd.Timestamp(self.t0_ms + i * self.step, unit="ms", tz="UTC")

    # -- REST ---------------------------------------------------------------------------------

    async def _exchange_info(self, request: web.Request) -> web.Response:
        return web.json_response(dict(EXCHANGE_INFO, serverTime=self.now_ms))

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.now_ms})

    async def _klines(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        self.requests.append(("/api/v3/klines", params))
        if self.rest_429 > 0:
            self.rest_429 -= 1
            return web.json_response(ERRORS["rate_limited"], status=429, headers={"Retry-After": "1"})
        frame = self.frames.get(params.get("symbol", ""))
        if frame is None:
            return web.json_response(ERRORS["invalid_symbol"], status=400)
        limit = min(int(params.get("limit", 500)), 1000)
        start = int(params.get("startTime", self.t0_ms))
        end = min(int(params.get("endTime", self.now_ms)), self.now_ms)
        rows = []
        i = max(0, -(-(start - self.t0_ms) // self.step))
        while len(rows) < limit and i <= self.index and self.t0_ms + i * self.step <= end:
            rows.append(self._kline_row(params["symbol"], i, partial=1.0 if i < self.index else 0.5))
            i += 1
        return web.json_response(rows)

    # -- signed endpoints (a spot account: market orders fill at once at the last price) ------

    def _api_key(self, request: web.Request) -> None:
        self.api_keys_seen.add(request.headers.get("X-MBX-APIKEY", ""))

    async def _account(self, request: web.Request) -> web.Response:
        self._api_key(request)
        return web.json_response({"balances": [{"asset": a, "free": _fmt(v), "locked": "0.00000000"}
                                               for a, v in self.balances.items()], "updateTime": self.now_ms,
                                  "accountType": "SPOT", "canTrade": True})

    def _crash(self, when: str, side: str) -> bool:
        """Kill the engine here if the crash script says so (the answer never reaches it)."""
        if self.crash is None or self.crash[0] != when or self.crash[2] not in (None, side):
            return False
        _when, pid, _side = self.crash
        self.crash = None
        os.kill(pid, signal.SIGKILL)
        return True

    async def _new_order(self, request: web.Request) -> web.Response:
        self._api_key(request)
        params = dict(request.query)
        params.update(dict(await request.post()))
        coid = params.get("newClientOrderId", "")
        self.order_requests.append(coid)
        if coid in self.orders:  # Binance refuses a second order with the same client id
            return web.json_response({"code": -2010, "msg": "Duplicate order sent."}, status=400)
        sym, side, qty = params["symbol"], params["side"], float(params["quantity"])
        if self._crash("before", side.lower()):
            return web.json_response({"code": -1001, "msg": "Internal error; unable to process your request."},
                                     status=500)
        price = self._values(sym, self.index, 0.5)[3]
        base = sym.removesuffix("USDT")
        sign = 1.0 if side == "BUY" else -1.0
        if sign < 0 and self.balances.get(base, 0.0) + 1e-12 < qty:
            return web.json_response({"code": -2010, "msg": "Account has insufficient balance for requested action."},
                                     status=400)
        if sign > 0 and self.balances.get("USDT", 0.0) + 1e-9 < qty * price * 1.001:
            return web.json_response({"code": -2010, "msg": "Account has insufficient balance for requested action."},
                                     status=400)
        oid = len(self.orders) + 1
        order = {"symbol": sym, "orderId": oid, "orderListId": -1, "clientOrderId": coid,
                 "transactTime": self.now_ms, "time": self.now_ms, "updateTime": self.now_ms, "price": "0.00000000",
                 "origQty": _fmt(qty), "executedQty": _fmt(0.0), "cummulativeQuoteQty": _fmt(0.0), "status": "NEW",
                 "timeInForce": "GTC", "type": "MARKET", "side": side, "workingTime": self.now_ms}
        self.orders[coid] = order
        done = qty
        if self.hold is not None and self.hold[1] in (None, side.lower()):
            done, self.hold = float(_fmt(qty * self.hold[0])), None
        fills = [self._execute(order, done, price)] if done > 0 else []
        order["status"] = "FILLED" if done >= qty else "PARTIALLY_FILLED" if done > 0 else "NEW"
        self._crash("after", side.lower())
        return web.json_response(dict(order, fills=fills))

    def _execute(self, order: dict[str, Any], qty: float, price: float) -> dict[str, Any]:
        """Trade ``qty`` of ``order`` at ``price``; the commission (0.1 %) is paid in USDT."""
        sym = order["symbol"]
        base = sym.removesuffix("USDT")
        sign = 1.0 if order["side"] == "BUY" else -1.0
        commission = float(_fmt(qty * price * 0.001))
        self.balances[base] = self.balances.get(base, 0.0) + sign * qty
        self.balances["USDT"] = self.balances.get("USDT", 0.0) - sign * qty * price - commission
        order["executedQty"] = _fmt(float(order["executedQty"]) + qty)
        order["cummulativeQuoteQty"] = _fmt(float(order["cummulativeQuoteQty"]) + qty * price)
        tid = len(self.trades) + 1
        self.trades.append({"symbol": sym, "id": tid, "orderId": order["orderId"], "orderListId": -1,
                            "price": _fmt(price), "qty": _fmt(qty), "quoteQty": _fmt(qty * price),
                            "commission": _fmt(commission), "commissionAsset": "USDT", "time": self.now_ms,
                            "isBuyer": sign > 0, "isMaker": False, "isBestMatch": True})
        return {"price": _fmt(price), "qty": _fmt(qty), "commission": _fmt(commission),
                "commissionAsset": "USDT", "tradeId": tid}

    def _find(self, request: web.Request) -> dict[str, Any] | None:
        coid = request.query.get("origClientOrderId")
        if coid is not None:
            return self.orders.get(coid)
        oid = int(request.query.get("orderId", "0"))
        return next((o for o in self.orders.values() if o["orderId"] == oid), None)

    async def _get_order(self, request: web.Request) -> web.Response:
        """As Binance: the order's state, without its fills (those are in myTrades)."""
        self._api_key(request)
        order = self._find(request)
        if order is None:
            return web.json_response({"code": -2013, "msg": "Order does not exist."}, status=400)
        return web.json_response(order)

    async def _cancel_order(self, request: web.Request) -> web.Response:
        self._api_key(request)
        order = self._find(request)
        if order is None:
            return web.json_response({"code": -2011, "msg": "Unknown order sent."}, status=400)
        if order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            return web.json_response({"code": -2011, "msg": "Unknown order sent."}, status=400)
        order["status"] = "CANCELED"
        return web.json_response(dict(order, origClientOrderId=order["clientOrderId"]))

    async def _my_trades(self, request: web.Request) -> web.Response:
        self._api_key(request)
        sym, oid = request.query.get("symbol"), request.query.get("orderId")
        return web.json_response([t for t in self.trades if t["symbol"] == sym
                                  and (oid is None or t["orderId"] == int(oid))])

    def _values(self, sym: str, i: int, partial: float) -> tuple[float, float, float, float, float]:
        o, h, lo, c, v = (float(x) for x in self.frames[sym].iloc[i][["open", "high", "low", "close", "volume"]])
        if partial >= 1.0:
            return o, h, lo, c, v
        c2 = round(o + (c - o) * partial, 2)
        return o, max(o, c2), min(o, c2), c2, round(v * partial, 8)

    def _kline_row(self, sym: str, i: int, partial: float) -> list[Any]:
        o, h, lo, c, v = self._values(sym, i, partial)
        t = self.t0_ms + i * self.step
        return [t, _fmt(o), _fmt(h), _fmt(lo), _fmt(c), _fmt(v), t + self.step - 1, _fmt(v * c), 100,
                _fmt(v / 2), _fmt(v * c / 2), "0"]

    # -- websocket -----------------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        if not ws.can_prepare(request).ok:
            return web.Response(status=404, text="not found")
        await ws.prepare(request)
        subs: set[str] = set()
        entry = (ws, subs, request.transport)
        self.sockets.append(entry)
        self.connections += 1
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if data.get("method") == "SUBSCRIBE":
                    subs.update(data.get("params", []))
                    await ws.send_str(json.dumps({"result": None, "id": data.get("id")}))
                elif data.get("method") == "UNSUBSCRIBE":
                    subs.difference_update(data.get("params", []))
                    await ws.send_str(json.dumps({"result": None, "id": data.get("id")}))
        finally:
            if entry in self.sockets:
                self.sockets.remove(entry)
        return ws

    async def _send(self, stream: str, payload: dict[str, Any]) -> None:
        if self.index < self._silent_until:
            return
        text = json.dumps(payload)
        for ws, subs, _t in list(self.sockets):
            if stream in subs and not ws.closed:
                for _ in range(2 if self._duplicate else 1):
                    try:
                        await ws.send_str(text)
                        self.frames_sent += 1
                    except (ConnectionError, RuntimeError):
                        pass

    async def _fault(self, fault: Any) -> None:
        if isinstance(fault, Close):
            for ws, _s, _t in list(self.sockets):
                await ws.close()
        elif isinstance(fault, Reset):
            for _ws, _s, transport in list(self.sockets):
                if transport is not None:
                    transport.abort()
        elif isinstance(fault, Silent):
            self._silent_until = self.index + fault.bars
        elif isinstance(fault, Duplicate):
            self._duplicate = True
        elif isinstance(fault, RateLimit):
            self.rest_429 += fault.requests

    async def _play(self) -> None:
        """The market: each candle from ``start`` on, ``ticks`` updates, then the next. The
        clock starts when the first client subscribes to klines (a slow start-up misses
        nothing the test meant it to see)."""
        interval = self.timeframe
        while not any(f"@kline_{interval}" in sub for _ws, subs, _t in self.sockets for sub in subs):
            await asyncio.sleep(0.02)
        while self.index < self.n:
            i = self.index
            self._duplicate = False
            if i in self.faults:
                await self._fault(self.faults[i])
            self.opened_at[i] = time.time()
            for k in range(1, self.ticks + 1):
                partial = k / self.ticks
                self.now_ms = self.t0_ms + i * self.step + int(self.step * (k - 0.5) / self.ticks)
                for sym in self.frames:
                    o, h, lo, c, v = self._values(sym, i, partial)
                    low = sym.lower()
                    t = self.t0_ms + i * self.step
                    await self._send(f"{low}@kline_{interval}", {
                        "e": "kline", "E": self.now_ms, "s": sym, "k": {
                            "t": t, "T": t + self.step - 1, "s": sym, "i": interval, "f": 1, "L": 2,
                            "o": _fmt(o), "c": _fmt(c), "h": _fmt(h), "l": _fmt(lo), "v": _fmt(v),
                            "n": 10, "x": k == self.ticks, "q": _fmt(v * c), "V": "0", "Q": "0", "B": "0"}})
                    half = c * self.spread / 2
                    await self._send(f"{low}@bookTicker", {
                        "u": self.frames_sent, "s": sym, "b": _fmt(round(c - half, 2)), "B": "1.0",
                        "a": _fmt(round(c + half, 2)), "A": "1.0"})
                    await self._send(f"{low}@trade", {
                        "e": "trade", "E": self.now_ms, "s": sym, "t": self.frames_sent, "p": _fmt(c),
                        "q": "0.01", "T": self.now_ms, "m": False, "M": True})
                await asyncio.sleep(self.bar_s / self.ticks)
            self.index += 1
            self.now_ms = self.t0_ms + self.index * self.step
        self.finished.set()
