"""The dashboard's ASGI app: ``create_app(settings)`` for ``singularity dashboard`` or for the
engine to serve on its own event loop (``serve``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from singularity.config import Settings
from singularity.dashboard.events import Watcher
from singularity.dashboard.logs import LogBuffer
from singularity.dashboard.security import LoginLimiter, Sessions, check_bind, is_loopback
from singularity.data.store import CandleStore
from singularity.registry import Registry

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


@dataclass
class Dashboard:
    """Everything a request handler reads; one per app."""

    settings: Settings
    host: str
    read_only: bool
    registry: Registry
    store: CandleStore
    ledger: Any | None
    """The engine's ledger (``singularity.dashboard.ledger.EngineLedger``) or None."""
    sessions: Sessions
    limiter: LoginLimiter
    log_buffer: LogBuffer | None
    watcher: Watcher
    secrets: list[str] = field(default_factory=list)

    @property
    def auth_required(self) -> bool:
        return bool(self.settings.dashboard.password_hash)

    @property
    def local_only(self) -> bool:
        return is_loopback(self.host)

    @property
    def reports_dir(self) -> Path:
        return Path(self.settings.data.dir) / "reports"


def configured_secrets(settings: Settings) -> list[str]:
    """Values that must never reach a page, the API or the logs."""
    out: list[str] = []
    for v in (settings.exchange.api_key, settings.exchange.secret):
        raw = v.get_secret_value() if hasattr(v, "get_secret_value") else v
        if raw:
            out.append(str(raw))
    return out


def create_app(settings: Settings, *, host: str | None = None, read_only: bool = False,
               ledger: Any | None = None, mode: str | None = None, capture_logs: bool = True,
               watch_interval_s: float = 0.2, secrets: tuple[str, ...] = ()) -> FastAPI:
    """The app over ``settings``' registry and store, and the engine's ``ledger`` when given
    (else the ledger of ``mode`` in the data directory, or the most recently active one).
    ``secrets``: values masked in the log lines shown, beside the configured exchange keys
    (the engine passes the live keys it loaded from a key file)."""
    from singularity.dashboard import api, pages
    from singularity.dashboard.ledger import open_engine_ledger, run_rows

    host = host or settings.dashboard.host
    check_bind(host, settings.dashboard.password_hash)
    registry = Registry(settings.database_url, recover=False)
    owned = ledger is None
    if ledger is None:
        ledger = open_engine_ledger(settings, mode)
    buffer = LogBuffer() if capture_logs else None
    ctx = Dashboard(
        settings=settings, host=host, read_only=read_only, registry=registry,
        store=CandleStore(settings.data.dir), ledger=ledger,
        sessions=Sessions(lifetime_s=settings.dashboard.session_hours * 3600),
        limiter=LoginLimiter(settings.dashboard.login_attempts, settings.dashboard.login_window_s),
        log_buffer=buffer, secrets=[*configured_secrets(settings), *(x for x in secrets if x)],
        watcher=Watcher(ledger, lambda: run_rows(registry), interval_s=watch_interval_s,
                        discover=(lambda: open_engine_ledger(settings, mode)) if owned else None))
    ctx.watcher.on_ledger = lambda found: setattr(ctx, "ledger", found)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        root = logging.getLogger()
        if buffer is not None:
            root.addHandler(buffer)
        await ctx.watcher.start()
        try:
            yield
        finally:
            await ctx.watcher.stop()
            if buffer is not None:
                root.removeHandler(buffer)
            registry.close()
            if owned and ctx.ledger is not None:
                ctx.ledger.close()

    app = FastAPI(title="Singularity dashboard", version=_version(), lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.dashboard = ctx
    app.include_router(api.router)
    app.include_router(pages.router)
    app.add_middleware(SecurityHeaders)
    return app


def _version() -> str:
    from singularity import __version__

    return __version__


# The analyst's HTML reports are self-contained: plotly and each figure's script inline. They
# are our own files, served with this policy instead of the pages' (still nothing external).
REPORT_CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
              "img-src data: blob:; font-src data:; frame-ancestors 'none'")


class SecurityHeaders:
    """Pure ASGI middleware (streams pass through untouched): no framing, no sniffing, no
    referrer, scripts only from this origin (a response that sets its own policy keeps it)."""

    HEADERS = (
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-security-policy",
         b"default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
         b"img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    )

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                message["headers"] = headers + [(k, v) for k, v in self.HEADERS if k not in have]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def make_server(app: FastAPI, *, host: str, port: int, log_level: str = "warning",
                embedded: bool = False) -> Any:
    """A ``uvicorn.Server`` for ``app`` that ends the open event streams when it stops (else
    each open page would hold the shutdown for the whole grace period). ``embedded`` leaves
    signal handling to the host process (the engine owns SIGINT/SIGTERM and stops the server
    with ``should_exit``)."""
    import uvicorn

    ctx: Dashboard = app.state.dashboard
    check_bind(host, ctx.settings.dashboard.password_hash)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            lifespan="on", server_header=False, timeout_graceful_shutdown=3)

    class DashboardServer(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            await ctx.watcher.close_streams()
            await super().shutdown(sockets)

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def, override]
            if embedded:
                yield
            else:
                with super().capture_signals():
                    yield

    return DashboardServer(config)


async def serve(app: FastAPI, *, host: str, port: int, embedded: bool = True) -> None:
    """Serve ``app`` on the running event loop (the engine awaits this beside its own tasks);
    returns when the server stops. Refuses off-localhost binds without a password."""
    await make_server(app, host=host, port=port, embedded=embedded).serve()
