"""Optional notifications: a webhook (JSON POST) and Telegram (bot HTTP API ``sendMessage``).

The engine hands every event it wrote to ``Notifier.events`` (and failed forge cycles to
``cycle``); those of the configured kinds are queued and sent by one background task, each
request in a thread (the loop never waits on the network) with a timeout. Delivery is best
effort: a failure is logged (without the URL's secrets) and dropped, and a full queue drops
the newest message rather than grow without bound.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from typing import Any

from singularity.engine.settings import NotifySettings

log = logging.getLogger(__name__)

QUEUE_MAX = 1000


def message(kind: str, symbol: str | None, payload: dict[str, Any]) -> str:
    """One line a person reads on a phone."""
    sym = f"{symbol} " if symbol else ""
    if kind == "fill":
        return (f"{sym}fill: {float(payload.get('quantity', 0)):+g} at {float(payload.get('price', 0)):g} "
                f"(fee {float(payload.get('fee', 0)):.4g})")
    if kind == "rotation":
        return f"{sym}rotation {payload.get('action', 'rotate')}: strategy {payload.get('strategy_id')} — {payload.get('reason', '')}"
    if kind == "risk":
        return f"{sym}risk {payload.get('action', '')}: {payload.get('reason', '')}"
    if kind == "cycle_failed":
        return f"{sym}forge cycle failed: {payload.get('error', '')}"
    return f"{sym}{kind}"


class Notifier:
    def __init__(self, settings: NotifySettings) -> None:
        self.s = settings
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_MAX)
        self.sent = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        return bool(self.s.webhook_url or (self.s.telegram_token and self.s.telegram_chat_id))

    def notify(self, kind: str, symbol: str | None, payload: dict[str, Any]) -> None:
        if not self.enabled or kind not in self.s.kinds:
            return
        item = {"kind": kind, "symbol": symbol, "text": message(kind, symbol, payload), "payload": payload}
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            log.warning("notification queue full: dropped a %s message", kind)

    def events(self, written: list[Any]) -> None:
        """Ledger events just written (``Event`` objects)."""
        for e in written:
            self.notify(e.kind, e.symbol, e.payload)

    async def run(self) -> None:
        while True:
            item = await self.queue.get()
            ok = await asyncio.to_thread(self._send, item)
            self.sent += ok
            self.failed += not ok

    def _send(self, item: dict[str, Any]) -> bool:
        ok = True
        if self.s.webhook_url:
            ok &= self._post(self.s.webhook_url, {"kind": item["kind"], "symbol": item["symbol"],
                                                  "text": item["text"], "payload": item["payload"]}, "webhook")
        if self.s.telegram_token and self.s.telegram_chat_id:
            url = f"{self.s.telegram_api_url.rstrip('/')}/bot{self.s.telegram_token.get_secret_value()}/sendMessage"
            ok &= self._post(url, {"chat_id": self.s.telegram_chat_id, "text": item["text"]}, "telegram")
        return ok

    def _post(self, url: str, body: dict[str, Any], what: str) -> bool:
        req = urllib.request.Request(url, data=json.dumps(body, default=str).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.s.timeout_s) as r:
                return 200 <= r.status < 300
        except Exception as e:  # delivery is best effort; the message names no URL (it may hold a token)
            log.warning("%s notification failed: %s", what, type(e).__name__)
            return False
