"""The pages: one small HTML shell per page; the page's script (static/app.js) fills it from
the JSON API and follows the server-sent events. Plotly comes from the installed package."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from singularity.dashboard.api import check_host, current_session, dashboard, set_session_cookie
from singularity.dashboard.app import STATIC, Dashboard

# (path, name, title, uses plotly)
PAGES = (
    ("/", "overview", "Overview", True),
    ("/equity", "equity", "Equity", True),
    ("/strategies", "strategies", "Strategies", False),
    ("/forge", "forge", "Forge", True),
    ("/regimes", "regimes", "Regimes", True),
    ("/data", "data", "Data", True),
    ("/ledger", "ledger", "Ledger", False),
    ("/logs", "logs", "Logs", False),
    ("/controls", "controls", "Controls", False),
)
_ASSETS = {"app.js": "text/javascript", "app.css": "text/css"}

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_host)])


def plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _shell(name: str, title: str, *, plots: bool, csrf: str, read_only: bool) -> str:
    nav = "".join(
        f'<a href="{p}"{" class=active" if n == name else ""}>{t}</a>' for p, n, t, _ in PAGES)
    plotly = '<script src="/static/plotly.min.js"></script>' if plots else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{html.escape(csrf)}">
<title>Singularity · {html.escape(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css">
{plotly}<script src="/static/app.js" defer></script>
</head><body data-page="{name}" data-read-only="{str(read_only).lower()}">
<header><span class="brand">Singularity</span><nav>{nav}</nav>
<span id="live" class="live off" title="live updates">live</span></header>
<main id="main"><h1>{html.escape(title)}</h1><div id="content">loading…</div></main>
</body></html>"""


def _page(request: Request, ctx: Dashboard, name: str, title: str, plots: bool) -> Response:
    sess = current_session(request, ctx)
    if ctx.auth_required and (sess is None or not sess.authenticated):
        return RedirectResponse("/login", status_code=303)
    sid = None
    if sess is None:
        sid, sess = ctx.sessions.new()
    resp = HTMLResponse(_shell(name, title, plots=plots, csrf=sess.csrf, read_only=ctx.read_only),
                        headers={"Cache-Control": "no-store"})
    if sid is not None:
        set_session_cookie(resp, sid, ctx)
    return resp


def _register(path: str, name: str, title: str, plots: bool) -> None:
    def page(request: Request, ctx: Dashboard = Depends(dashboard)) -> Response:
        return _page(request, ctx, name, title, plots)

    page.__name__ = f"page_{name}"
    router.add_api_route(path, page, methods=["GET"], response_class=HTMLResponse)


for _path, _name, _title, _plots in PAGES:
    _register(_path, _name, _title, _plots)


@router.get("/strategies/{strategy_id}", response_class=HTMLResponse)
def strategy_page(strategy_id: int, request: Request, ctx: Dashboard = Depends(dashboard)) -> Response:
    return _page(request, ctx, "strategy", f"Strategy {strategy_id}", True)


@router.get("/login", response_class=HTMLResponse)
def login_page() -> HTMLResponse:
    return HTMLResponse("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Singularity · log in</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script></head>
<body data-page="login"><main id="main" class="login"><h1>Singularity</h1>
<form id="login"><label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button><p id="login-error" class="error"></p></form></main></body></html>""")


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    if name == "plotly.min.js":
        return FileResponse(plotly_js(), media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})
    if name not in _ASSETS:
        raise HTTPException(status_code=404)
    return FileResponse(STATIC / name, media_type=_ASSETS[name], headers={"Cache-Control": "no-cache"})
