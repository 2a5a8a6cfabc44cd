"""Server-sent events keyed by the ledger's sequence number.

One watcher task per app reads what is new in the ledger (and the registry's forge runs) and
fans it out to every open page; a page that reconnects sends ``Last-Event-ID`` and resumes at
the next sequence number, so nothing is missed or shown twice. The browser never polls. The
database reads run in a thread, never on the event loop. An engine serving the dashboard in
its own process calls ``notify()`` after an append, so the event goes out at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)


class LedgerReader(Protocol):
    def events(self, *, after: int = 0, limit: int = 500, symbol: str | None = None,
               kind: str | None = None) -> list[dict[str, Any]]: ...


def sse(data: Any, *, event: str, id: int | None = None) -> bytes:
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


class Watcher:
    """Follows the ledger (and forge runs) and wakes subscribers on anything new."""

    def __init__(self, ledger: LedgerReader | None, runs: Callable[[], list[dict[str, Any]]] | None,
                 *, interval_s: float = 0.2, runs_every: int = 5, keep: int = 2000,
                 discover: Callable[[], Any] | None = None, discover_every: int = 10) -> None:
        self.ledger = ledger
        self.discover = discover
        """Looks for a ledger while there is none (an engine started after the dashboard)."""
        self.discover_every = discover_every
        self.on_ledger: Callable[[Any], None] | None = None
        self.runs = runs
        self.interval_s = interval_s
        self.runs_every = runs_every
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self.last_seq = 0
        self.run_updates: deque[tuple[int, dict[str, Any]]] = deque(maxlen=200)
        self._run_counter = 0
        self._run_seen: dict[int, tuple[Any, ...]] = {}
        self._wake = asyncio.Event()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def notify(self) -> None:
        """Look at the ledger now (call from the event loop after an append)."""
        self._wake.set()

    async def start(self) -> None:
        if self.ledger is not None:
            tail = await asyncio.to_thread(self._latest_seq)
            self.last_seq = tail
        if self.runs is not None:
            for r in await asyncio.to_thread(self.runs):
                self._run_seen[r["id"]] = _run_key(r)
        self._task = asyncio.create_task(self._loop(), name="dashboard-watcher")

    async def close_streams(self) -> None:
        """End every open event stream (the server is stopping)."""
        self._closing = True
        async with self._changed:
            self._changed.notify_all()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _latest_seq(self) -> int:
        last = getattr(self.ledger, "last_seq", None)
        if callable(last):
            return int(last())
        return 0

    async def _loop(self) -> None:
        tick = 0
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            tick += 1
            try:
                if self.ledger is None and self.discover is not None and tick % self.discover_every == 1:
                    await self._find_ledger()
                changed = await self._poll_ledger()
                if self.runs is not None and (tick % self.runs_every == 0):
                    changed |= await self._poll_runs()
            except Exception as e:  # a locked or vanished database must not kill the stream
                log.warning("dashboard watcher: %s", e)
                continue
            if changed:
                async with self._changed:
                    self._changed.notify_all()

    async def _find_ledger(self) -> None:
        assert self.discover is not None
        found = await asyncio.to_thread(self.discover)
        if found is not None:
            self.last_seq = await asyncio.to_thread(found.last_seq)  # new events from here on
            self.ledger = found
            if self.on_ledger is not None:
                self.on_ledger(found)
            log.info("dashboard: following the engine's ledger %s", getattr(found, "url", ""))

    async def _poll_ledger(self) -> bool:
        if self.ledger is None:
            return False
        new = await asyncio.to_thread(self.ledger.events, after=self.last_seq, limit=1000)
        for ev in new:
            self.recent.append(ev)
            self.last_seq = max(self.last_seq, int(ev["seq"]))
        return bool(new)

    async def _poll_runs(self) -> bool:
        assert self.runs is not None
        changed = False
        for r in await asyncio.to_thread(self.runs):
            key = _run_key(r)
            if self._run_seen.get(r["id"]) != key:
                self._run_seen[r["id"]] = key
                self._run_counter += 1
                self.run_updates.append((self._run_counter, r))
                changed = True
        return changed

    async def stream(self, after: int | None, *, heartbeat_s: float = 15.0) -> AsyncIterator[bytes]:
        """Ledger events with seq > ``after`` (None: only new ones), then whatever comes."""
        cursor = self.last_seq if after is None else after
        run_cursor = self._run_counter
        yield b"retry: 1000\n\n"
        while not self._closing:
            if self.ledger is not None and cursor < self.last_seq and (
                    not self.recent or self.recent[0]["seq"] > cursor + 1):
                # Older than what the watcher keeps: read the gap from the ledger itself.
                for ev in await asyncio.to_thread(self.ledger.events, after=cursor, limit=5000):
                    if self.recent and ev["seq"] >= self.recent[0]["seq"]:
                        break
                    yield sse(ev, event="ledger", id=ev["seq"])
                    cursor = ev["seq"]
            for ev in list(self.recent):
                if ev["seq"] > cursor:
                    yield sse(ev, event="ledger", id=ev["seq"])
                    cursor = ev["seq"]
            for n, r in list(self.run_updates):
                if n > run_cursor:
                    yield sse(r, event="run")
                    run_cursor = n
            timed_out = False
            async with self._changed:
                if self.last_seq <= cursor and self._run_counter <= run_cursor and not self._closing:
                    try:
                        await asyncio.wait_for(self._changed.wait(), heartbeat_s)
                    except TimeoutError:
                        timed_out = True
            if timed_out:
                yield b": keep-alive\n\n"


def _run_key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r.get("status"), r.get("stage"), r.get("stage_detail"), r.get("updated_at"))
