"""The JSON API under /api/ (its OpenAPI schema is /api/openapi.json)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from singularity.dashboard import views
from singularity.dashboard.app import Dashboard
from singularity.dashboard.logs import recent_lines
from singularity.dashboard.security import (
    CSRF_HEADER,
    SESSION_COOKIE,
    Session,
    is_loopback,
    same_token,
    verify_password,
)
from singularity.errors import DataError

log = logging.getLogger(__name__)


def dashboard(request: Request) -> Dashboard:
    return request.app.state.dashboard  # type: ignore[no-any-return]


def check_host(request: Request, ctx: Dashboard = Depends(dashboard)) -> None:
    """Bound to loopback, answer only requests addressed to loopback (DNS rebinding)."""
    if ctx.local_only and not is_loopback(request.url.hostname or ""):
        raise HTTPException(status_code=403, detail="unexpected Host header")


def current_session(request: Request, ctx: Dashboard) -> Session | None:
    return ctx.sessions.get(request.cookies.get(SESSION_COOKIE))


def require_user(request: Request, ctx: Dashboard = Depends(dashboard),
                 _host: None = Depends(check_host)) -> None:
    if ctx.auth_required:
        sess = current_session(request, ctx)
        if sess is None or not sess.authenticated:
            raise HTTPException(status_code=401, detail="log in first",
                                headers={"WWW-Authenticate": "Cookie"})


def require_control(request: Request, ctx: Dashboard = Depends(dashboard),
                    _user: None = Depends(require_user)) -> Session:
    if ctx.read_only:
        raise HTTPException(status_code=403, detail="controls are disabled (--read-only)")
    origin = request.headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
        raise HTTPException(status_code=403, detail="cross-origin control request")
    sess = current_session(request, ctx)
    if sess is None or not same_token(request.headers.get(CSRF_HEADER), sess.csrf):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token")
    return sess


router = APIRouter(prefix="/api")
open_router = APIRouter(dependencies=[Depends(check_host)])
user = APIRouter(dependencies=[Depends(require_user)])


# -- shapes (the OpenAPI schema documents them) -------------------------------------------------
class Health(BaseModel):
    status: Literal["ok"]
    version: str
    read_only: bool
    auth_required: bool
    ledger: bool
    """Whether an engine ledger is attached (live pages and controls)."""


class SessionInfo(BaseModel):
    authenticated: bool
    auth_required: bool
    read_only: bool
    csrf: str | None


class Login(BaseModel):
    password: str = Field(min_length=1, max_length=1024)


class Control(BaseModel):
    action: Literal["pause", "resume", "flatten", "forge", "pin", "retire"]
    symbol: str | None = None
    strategy_id: int | None = None


class ControlResult(BaseModel):
    seq: int
    kind: str
    symbol: str | None
    key: str
    payload: dict[str, Any]


# -- open: health and login ---------------------------------------------------------------
@open_router.get("/health", response_model=Health)
def health(ctx: Dashboard = Depends(dashboard)) -> dict[str, Any]:
    from singularity import __version__

    return {"status": "ok", "version": __version__, "read_only": ctx.read_only,
            "auth_required": ctx.auth_required, "ledger": ctx.ledger is not None}


@open_router.get("/session", response_model=SessionInfo)
def session_info(request: Request, response: Response,
                 ctx: Dashboard = Depends(dashboard)) -> dict[str, Any]:
    """This browser's session; without a password one is issued here (it carries the CSRF
    token that every control must send back)."""
    sess = current_session(request, ctx)
    if sess is None and not ctx.auth_required:
        sid, sess = ctx.sessions.new()
        set_session_cookie(response, sid, ctx)
    authed = sess is not None and (sess.authenticated or not ctx.auth_required)
    return {"authenticated": authed, "auth_required": ctx.auth_required,
            "read_only": ctx.read_only, "csrf": sess.csrf if sess is not None and authed else None}


def set_session_cookie(response: Response, sid: str, ctx: Dashboard) -> None:
    response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="strict", path="/",
                        max_age=int(ctx.settings.dashboard.session_hours * 3600),
                        secure=False)  # plain HTTP on loopback or behind the user's TLS proxy


@open_router.post("/login", response_model=SessionInfo)
async def login(body: Login, request: Request, ctx: Dashboard = Depends(dashboard)) -> Response:
    client = request.client.host if request.client else "?"
    wait = ctx.limiter.retry_after(client)
    if wait > 0:
        return JSONResponse({"detail": "too many failed logins; try again later"}, status_code=429,
                            headers={"Retry-After": str(int(wait) + 1)})
    stored = ctx.settings.dashboard.password_hash
    if not stored:
        return JSONResponse({"detail": "no password is configured; nothing to log in to"},
                            status_code=400)
    ok = await asyncio.to_thread(verify_password, body.password, stored)  # scrypt: off the loop
    if not ok:
        ctx.limiter.failed(client)
        log.warning("dashboard: failed login from %s", client)  # never what was typed
        return JSONResponse({"detail": "wrong password"}, status_code=401)
    ctx.limiter.succeeded(client)
    ctx.sessions.drop(request.cookies.get(SESSION_COOKIE))
    sid, sess = ctx.sessions.new(authenticated=True)
    resp = JSONResponse({"authenticated": True, "auth_required": True, "read_only": ctx.read_only,
                         "csrf": sess.csrf})
    set_session_cookie(resp, sid, ctx)
    return resp


@open_router.post("/logout", status_code=204)
def logout(request: Request, ctx: Dashboard = Depends(dashboard)) -> Response:
    ctx.sessions.drop(request.cookies.get(SESSION_COOKIE))
    resp = Response(status_code=204)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


# -- reads --------------------------------------------------------------------------------
def _not_found(e: DataError) -> HTTPException:
    return HTTPException(status_code=404, detail=str(e))


@user.get("/status")
def status(ctx: Dashboard = Depends(dashboard)) -> dict[str, Any]:
    """Per symbol: price, position, equity, PnL, champion, regime, feed; the engine's loop lag."""
    from singularity.dashboard.ledger import overview

    return overview(ctx)


@user.get("/strategies")
def strategies(ctx: Dashboard = Depends(dashboard), symbol: str | None = None,
               status: Literal["candidate", "champion", "retired"] | None = None,
               limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
    return [views.strategy_summary(s) for s in
            ctx.registry.strategies(symbol=symbol, status=status, limit=limit)]


@user.get("/strategies/{strategy_id}")
def strategy(strategy_id: int, ctx: Dashboard = Depends(dashboard)) -> dict[str, Any]:
    try:
        return views.strategy_detail(ctx.registry, strategy_id, ctx.reports_dir)
    except DataError as e:
        raise _not_found(e) from None


@user.get("/strategies/{strategy_id}/report", response_class=FileResponse)
def strategy_report(strategy_id: int, ctx: Dashboard = Depends(dashboard)) -> FileResponse:
    path = views.report_file(ctx.reports_dir, strategy_id)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no report for strategy {strategy_id} "
                            f"(singularity report {strategy_id})")
    from singularity.dashboard.app import REPORT_CSP

    return FileResponse(path, media_type="text/html", headers={"Content-Security-Policy": REPORT_CSP})


@user.get("/runs")
def runs(ctx: Dashboard = Depends(dashboard), symbol: str | None = None,
         limit: int = Query(50, ge=1, le=1000)) -> list[dict[str, Any]]:
    return [views.run_summary(r) for r in ctx.registry.runs(symbol=symbol, limit=limit)]


@user.get("/runs/{run_id}")
def run(run_id: int, ctx: Dashboard = Depends(dashboard)) -> dict[str, Any]:
    try:
        return views.run_detail(ctx.registry, run_id)
    except DataError as e:
        raise _not_found(e) from None


@user.get("/data")
def data(ctx: Dashboard = Depends(dashboard)) -> list[dict[str, Any]]:
    """What the candle store holds, with the number of gaps and missing candles."""
    return views.store_entries(ctx.store)


@user.get("/data/gaps")
def data_gaps(exchange: str, symbol: str, timeframe: str,
              ctx: Dashboard = Depends(dashboard)) -> dict[str, Any]:
    try:
        return views.store_gaps(ctx.store, exchange, symbol, timeframe)
    except DataError as e:
        raise _not_found(e) from None


@user.get("/logs")
def logs(ctx: Dashboard = Depends(dashboard), lines: int = Query(200, ge=1, le=2000)) -> dict[str, list[str]]:
    return recent_lines(ctx.log_buffer, ctx.settings.data.dir, ctx.secrets, lines=lines)


@user.get("/ledger")
def ledger(ctx: Dashboard = Depends(dashboard), after: int = Query(0, ge=0),
           symbol: str | None = None, kind: str | None = None,
           limit: int = Query(200, ge=1, le=5000),
           tail: int | None = Query(None, ge=1, le=5000)) -> list[dict[str, Any]]:
    """Ledger events ``{seq, time, kind, symbol, key, payload}`` with seq > ``after``, oldest
    first; ``tail=N`` gives the newest N instead."""
    from singularity.dashboard.ledger import ledger_events

    return ledger_events(ctx.ledger, after=after, symbol=symbol, kind=kind, limit=limit, tail=tail)


@user.get("/equity")
def equity(ctx: Dashboard = Depends(dashboard), symbol: str | None = None) -> dict[str, Any]:
    """The equity curve from the ledger's fills, beside buy-and-hold and the backtest's
    prediction (the shortfall), with drawdown."""
    from singularity.dashboard.ledger import equity_view

    return equity_view(ctx, symbol)


@user.get("/regimes")
def regimes(ctx: Dashboard = Depends(dashboard)) -> dict[str, Any]:
    """Per symbol the current regime and the timeline of ``regime`` ledger events."""
    from singularity.dashboard.ledger import regimes_view

    return regimes_view(ctx)


@user.get("/events", response_class=StreamingResponse)
async def events(request: Request, ctx: Dashboard = Depends(dashboard),
                 after: int | None = Query(None, ge=0)) -> StreamingResponse:
    """Server-sent events: ``ledger`` (id = the ledger's seq; a reconnect with Last-Event-ID
    resumes after it) and ``run`` (a forge run changed stage)."""
    last = request.headers.get("last-event-id")
    if last is not None and last.isdigit():
        after = int(last)
    return StreamingResponse(ctx.watcher.stream(after), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# -- controls (ledger events) -------------------------------------------------------------------
@router.post("/controls", response_model=ControlResult)
async def control(body: Control, request: Request, ctx: Dashboard = Depends(dashboard),
                  _sess: Session = Depends(require_control)) -> dict[str, Any]:
    """Pause/resume/flatten a symbol, start a forge cycle now, pin/retire a strategy: each is
    appended to the engine's ledger as a ``control`` event, which the engine acts on."""
    if ctx.ledger is None:
        raise HTTPException(status_code=503, detail="no engine ledger in this data directory")
    payload: dict[str, Any] = {"action": body.action, "source": "dashboard"}
    if body.action in ("pin", "retire"):
        if body.strategy_id is None:
            raise HTTPException(status_code=422, detail=f"{body.action} needs strategy_id")
        try:
            st = ctx.registry.strategy(body.strategy_id)
        except DataError as e:
            raise _not_found(e) from None
        symbol = st.symbol
        payload["strategy_id"] = st.id
    else:
        if not body.symbol:
            raise HTTPException(status_code=422, detail=f"{body.action} needs symbol")
        if body.symbol not in ctx.settings.universe.symbols:
            raise HTTPException(status_code=422, detail=f"{body.symbol} is not in the universe")
        symbol = body.symbol
    key = f"control:{body.action}:{uuid.uuid4().hex}"
    seq = await asyncio.to_thread(ctx.ledger.append, kind="control", symbol=symbol, key=key,
                                  payload=payload)
    ctx.watcher.notify()
    return {"seq": seq, "kind": "control", "symbol": symbol, "key": key, "payload": payload}


router.include_router(open_router)
router.include_router(user)
