"""Feeds: where closed candles come from (``replay``: the store; ``ws``: ccxt.pro websockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd


@dataclass(frozen=True)
class CandleBatch:
    """Closed candles of one symbol, oldest first (canonical OHLCV frame, index = open time).

    ``skipped``: closed candles the feed stored but the engine must not trade (missed while
    it was down, or caught up after a reconnect beyond the latest)."""

    symbol: str
    candles: pd.DataFrame
    skipped: int = 0
    trade_last: int | None = None
    """Decide only the last this many candles (the rest extend the features only)."""


@dataclass
class FeedHealth:
    state: str = "starting"
    """starting | live | reconnecting | replay | done"""
    reconnects: int = 0
    last_message_s: float | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Feed(Protocol):
    health: dict[str, FeedHealth]

    def batches(self) -> AsyncIterator[CandleBatch]: ...

    async def close(self) -> None: ...
