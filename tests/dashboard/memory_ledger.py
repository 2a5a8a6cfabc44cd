"""An in-memory ledger with the dashboard's ledger interface (``EngineLedger``'s methods), for
tests of the dashboard alone; the engine's real ledger is tested through ``EngineLedger``."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any


class MemoryLedger:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def append(self, *, kind: str, symbol: str | None, key: str, payload: dict[str, Any]) -> int:
        with self._lock:
            seq = len(self.rows) + 1
            self.rows.append({"seq": seq, "time": datetime.now(UTC).isoformat(), "kind": kind,
                              "symbol": symbol, "key": key, "payload": payload})
            return seq

    def _match(self, r: dict[str, Any], symbol: str | None, kind: str | None) -> bool:
        return (symbol is None or r["symbol"] == symbol) and (kind is None or r["kind"] == kind)

    def events(self, *, after: int = 0, limit: int = 500, symbol: str | None = None,
               kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.rows if r["seq"] > after and self._match(r, symbol, kind)][:limit]

    def tail(self, n: int, *, symbol: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.rows if self._match(r, symbol, kind)][-n:]

    def last_seq(self) -> int:
        return len(self.rows)

    def status(self) -> dict[str, Any] | None:
        return None

    def equity(self, symbol: str | None) -> dict[str, Any]:
        return {"symbol": symbol, "points": 0, "time": [], "equity": [], "buy_hold": [], "backtest": [],
                "drawdown": [], "last_equity": None, "max_drawdown": None, "shortfall": None}
