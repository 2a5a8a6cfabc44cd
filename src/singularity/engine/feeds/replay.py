"""Replay feed: candles from the store, as fast as possible or at ``speed`` times real time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pandas as pd

from singularity.engine.feeds import CandleBatch, FeedHealth
from singularity.timeframes import timeframe_seconds


class ReplayFeed:
    """Yields each symbol's candles after its cursor, ``chunk`` candles per batch, symbols in
    turn. ``frames`` are read from the store by the caller (off the loop, before starting)."""

    def __init__(self, frames: dict[str, pd.DataFrame], *, timeframe: str, chunk: int = 256,
                 speed: float | None = None) -> None:
        self.frames = frames
        self.chunk = chunk
        self.speed = speed
        self.bar_s = timeframe_seconds(timeframe)
        self.health = {s: FeedHealth(state="replay") for s in frames}
        self._closed = False

    async def batches(self) -> AsyncIterator[CandleBatch]:
        pos = dict.fromkeys(self.frames, 0)
        # paced replays hand over one candle at a time, as a live feed would
        chunk = 1 if self.speed else self.chunk
        while not self._closed and any(pos[s] < len(f) for s, f in self.frames.items()):
            for sym, frame in self.frames.items():
                i = pos[sym]
                if i >= len(frame):
                    self.health[sym].state = "done"
                    continue
                part = frame.iloc[i:i + chunk]
                pos[sym] = i + len(part)
                if self.speed:
                    await asyncio.sleep(self.bar_s / self.speed / max(1, len(self.frames)))
                else:
                    await asyncio.sleep(0)  # let the heartbeat and signals in between batches
                yield CandleBatch(sym, part)
        for h in self.health.values():
            h.state = "done"

    async def close(self) -> None:
        self._closed = True
