"""Exchange feed over ccxt.pro websockets, for paper and live.

Per symbol, one task watches klines (``watch_ohlcv``) and one the quotes (``watch_bids_asks``
and ``watch_trades``). A candle counts as closed when a newer one starts; it is then confirmed
by REST through the downloader, which also backfills every candle missed while the socket was
down and appends them to the store atomically. Only the latest closed candle is traded; the
others are stored and reported as skipped. A stream silent for ``feed_timeout_s`` is treated
as dead: its client is closed and a new one connects after a jittered exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from singularity.engine.feeds import CandleBatch, FeedHealth
from singularity.timeframes import timeframe_delta

log = logging.getLogger(__name__)


@dataclass
class QuoteBook:
    """Latest bid/ask and trade per symbol, with the monotonic time they arrived."""

    bids_asks: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    trades: dict[str, tuple[float, float]] = field(default_factory=dict)

    def price(self, symbol: str, *, buy: bool, max_age_s: float) -> tuple[float, str] | None:
        """The ask (buy) or bid (sell) when fresh, else the last fresh trade, else None."""
        now = time.monotonic()
        q = self.bids_asks.get(symbol)
        if q is not None and now - q[2] <= max_age_s and q[0] > 0 and q[1] > 0:
            return (q[1], "ask") if buy else (q[0], "bid")
        t = self.trades.get(symbol)
        if t is not None and now - t[1] <= max_age_s:
            return t[0], "trade"
        return None


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


class WsFeed:
    def __init__(self, *, symbols: list[str], timeframe: str, make_client: Callable[[], Any],
                 backfill: Callable[[str, pd.Timestamp, pd.Timestamp], pd.DataFrame],
                 last_closed: dict[str, pd.Timestamp | None], quotes: QuoteBook,
                 timeout_s: float, base_s: float, max_s: float) -> None:
        self.symbols = symbols
        self.timeframe = timeframe
        self.bar = timeframe_delta(timeframe)
        self.make_client = make_client
        self.backfill = backfill
        """(symbol, first open time, stop open time) -> closed candles in the store, after a
        REST confirmation/backfill; runs in a thread."""
        self.last_closed = dict(last_closed)
        self.quotes = quotes
        self.timeout_s, self.base_s, self.max_s = timeout_s, base_s, max_s
        self.health = {s: FeedHealth() for s in symbols}
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._tasks: list[asyncio.Task[Any]] = []
        self._clients: set[Any] = set()

    async def batches(self) -> AsyncIterator[CandleBatch]:
        for sym in self.symbols:
            self._tasks.append(asyncio.ensure_future(self._supervise(sym, "candles")))
            self._tasks.append(asyncio.ensure_future(self._supervise(sym, "quotes")))
            self._tasks.append(asyncio.ensure_future(self._supervise(sym, "trades")))
        while True:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        for c in list(self._clients):
            with contextlib.suppress(Exception):
                await c.close()
        self._clients.clear()

    async def _supervise(self, sym: str, what: str) -> None:
        """Watch one stream forever; reconnect with jittered backoff when it fails or is silent."""
        attempt = 0
        health = self.health[sym]
        while True:
            client = self.make_client()
            self._clients.add(client)
            try:
                state: dict[str, Any] = {"open": None}
                while True:
                    if what == "candles":
                        ohlcv = await asyncio.wait_for(client.watch_ohlcv(sym, self.timeframe), self.timeout_s)
                        health.state, health.last_message_s, health.detail = "live", time.monotonic(), ""
                        attempt = 0
                        await self._on_ohlcv(sym, ohlcv, state)
                    elif what == "quotes":
                        got = await asyncio.wait_for(client.watch_bids_asks([sym]), self.timeout_s)
                        t = got.get(sym) or {}
                        if t.get("bid") and t.get("ask"):
                            self.quotes.bids_asks[sym] = (float(t["bid"]), float(t["ask"]), time.monotonic())
                        attempt = 0
                    else:
                        trades = await asyncio.wait_for(client.watch_trades(sym), self.timeout_s)
                        if trades:
                            self.quotes.trades[sym] = (float(trades[-1]["price"]), time.monotonic())
                        attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a dead, reset, silent or refusing stream: reconnect
                silent = isinstance(e, TimeoutError)
                reason = f"silent for {self.timeout_s:g}s" if silent else _one_line(e)
                if what == "candles":
                    health.state, health.detail = "reconnecting", reason
                    health.reconnects += 1
                delay = min(self.max_s, self.base_s * 2 ** attempt) * random.uniform(0.5, 1.0)
                attempt += 1
                log.warning("%s %s stream: %s; reconnecting in %.1fs", sym, what, reason, delay)
            finally:
                self._clients.discard(client)
                with contextlib.suppress(Exception):
                    await client.close()
            await asyncio.sleep(delay)

    async def _on_ohlcv(self, sym: str, ohlcv: list[list[Any]], state: dict[str, Any]) -> None:
        if not ohlcv:
            return
        newest = pd.Timestamp(int(ohlcv[-1][0]), unit="ms", tz="UTC")
        if state["open"] is not None and newest <= state["open"]:
            return  # an update of the open candle (or a duplicate frame)
        state["open"] = newest
        last = self.last_closed.get(sym)
        first = last + self.bar if last is not None else newest - self.bar
        if first >= newest:
            return
        # confirmed by REST (and backfilled) in a thread: the loop only waits
        frame = await asyncio.to_thread(self.backfill, sym, first, newest)
        if frame.empty:
            return
        self.last_closed[sym] = frame.index[-1]
        await self._queue.put(CandleBatch(sym, frame, skipped=len(frame) - 1, trade_last=1))
