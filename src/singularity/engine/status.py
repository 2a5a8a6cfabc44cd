"""Loop-lag measurement and the status document (``singularity status --json``).

The engine's heartbeat task sleeps ``interval`` seconds and records how late it woke up: the
time the event loop was busy with something else. A loop that only waits shows lags of a
millisecond or two; a blocking call on the loop shows up here at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from singularity.engine.ledger import Ledger

STALE_AFTER_S = 10.0
"""A heartbeat older than this means the engine is not running (killed, or hung)."""


class LagMonitor:
    """Samples the event loop's wake-up lag every ``interval`` seconds (a ring of samples)."""

    def __init__(self, interval: float = 0.01, keep: int = 20_000) -> None:
        self.interval = interval
        self.samples: deque[float] = deque(maxlen=keep)
        self._worst = (0.0, 0.0)
        self._t_start = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._t_start = loop.time()
        while True:
            t0 = loop.time()
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - t0 - self.interval)
            self.samples.append(lag)
            if lag > self._worst[0]:
                self._worst = (lag, t0 - self._t_start)

    def summary(self) -> dict[str, float]:
        """p50, p99 and max lag in milliseconds (0 before the first sample)."""
        if not self.samples:
            return {"p50": 0.0, "p99": 0.0, "max": 0.0, "samples": 0}
        a = np.fromiter(self.samples, dtype=np.float64) * 1e3
        return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3),
                "max": round(float(a.max()), 3), "samples": int(a.size),
                "max_at_s": round(self._worst[1], 3)}


def _pid_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_running(row: dict[str, Any] | None, *, now: datetime | None = None) -> bool:
    """True when the engine says it runs, its heartbeat is fresh and (same host) its pid lives."""
    import socket

    if row is None or not row["running"] or row["heartbeat_at"] is None:
        return False
    now = now or datetime.now(UTC)
    if now - row["heartbeat_at"] > timedelta(seconds=STALE_AFTER_S):
        return False
    return not (row["host"] == socket.gethostname() and not _pid_alive(int(row["pid"])))


def status_document(ledger: Ledger, mode: str) -> dict[str, Any]:
    """``{"mode", "running", "loop_lag_ms": {"p50", "p99", "max"}, "symbols": [...]}`` from the
    database alone (any process may call it). A symbol's ``regime`` is ``{"id", "name",
    "probability", "candle", "since"}`` (``id`` None: unclassified) when the regime watch runs,
    else None."""
    row = ledger.status_row()
    live = {s["symbol"]: s for s in (row or {}).get("symbols") or []}
    symbols = []
    for p in ledger.positions():
        extra = live.get(p["symbol"], {})
        symbols.append({
            "symbol": p["symbol"], "last_candle": p["last_candle"], "price": p["last_price"],
            "position": p["quantity"], "target": p["target"], "cash": p["cash"],
            "equity": p["equity"], "day_pnl": p["equity"] - p["day_start_equity"] if p["day"] else 0.0,
            "strategy_id": p["strategy_id"], "paused": p["paused"], "pause_reason": p["pause_reason"],
            "fills": p["fills"], "fees": p["fees"], "feed": extra.get("feed", ""),
            "regime": extra.get("regime"),
        })
    lag = (row or {}).get("loop_lag_ms") or {"p50": None, "p99": None, "max": None}
    return {
        "mode": mode,
        "running": is_running(row),
        "pid": row["pid"] if row else None,
        "heartbeat_at": row["heartbeat_at"].isoformat() if row and row["heartbeat_at"] else None,
        "started_at": row["started_at"].isoformat() if row and row["started_at"] else None,
        "loop_lag_ms": lag,
        "feeds": (row or {}).get("feeds") or {},
        "message": (row or {}).get("message", ""),
        "symbols": symbols,
        "pipeline": ledger.pipeline(),
    }


def monotonic_ms() -> float:
    return time.monotonic() * 1e3
