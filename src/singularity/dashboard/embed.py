"""The dashboard beside the engine: ``singularity run --dashboard`` serves it on the engine's
own event loop, as one of the engine's extra tasks. Every request handler that reads the
database runs in a thread (FastAPI's sync endpoints) or awaits ``asyncio.to_thread``, so the
loop only waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from singularity.config import Settings
from singularity.dashboard.security import check_bind


def dashboard_task(settings: Settings, *, mode: str, host: str | None = None, port: int | None = None,
                   read_only: bool = False, secrets: tuple[str, ...] = ()) -> Callable[[Any], Awaitable[None]]:
    """An engine extra task serving the dashboard over ``mode``'s ledger (``secrets``: the
    live keys, masked in the log lines it shows). Refuses an off-localhost bind without a
    password now, before the engine starts."""
    host = host or settings.dashboard.host
    port = port or settings.dashboard.port
    check_bind(host, settings.dashboard.password_hash)

    async def serve_beside(_engine: Any) -> None:
        from singularity.dashboard.app import create_app, make_server
        from singularity.dashboard.ledger import EngineLedger
        from singularity.engine.ledger import ledger_url

        ledger = await asyncio.to_thread(EngineLedger, ledger_url(settings, mode), mode)
        app = await asyncio.to_thread(create_app, settings, host=host, read_only=read_only,
                                      ledger=ledger, secrets=secrets)
        server = make_server(app, host=host, port=port, embedded=True)
        serving = asyncio.ensure_future(server.serve())
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            server.should_exit = True  # the engine stops: close the sockets, end the streams
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(serving, 5)
            raise
        finally:
            ledger.close()

    return serve_beside
