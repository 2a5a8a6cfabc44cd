"""``singularity dashboard``: the web UI over the data directory (registry, store, ledger)."""

from __future__ import annotations

import typer

from singularity.cli._context import console, settings


def dashboard(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="Address to bind (settings: dashboard.host, "
                                    "default 127.0.0.1; any other needs dashboard.password_hash)."),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Port (settings: dashboard.port)."),
    read_only: bool = typer.Option(False, "--read-only", help="Pages and API only; controls refused."),
    mode: str | None = typer.Option(None, "--mode", help="Which engine ledger: replay, paper or live "
                                    "(default: the one whose engine ran last)."),
    hash_password: bool = typer.Option(False, "--hash-password",
                                       help="Read a password (prompt or stdin) and print the line for "
                                            "singularity.toml; serves nothing."),
) -> None:
    """Serve the dashboard: strategies, forge runs, data, ledger, equity, controls."""
    if hash_password:
        from singularity.dashboard.security import hash_password as make_hash

        pw = typer.prompt("dashboard password", hide_input=True, confirmation_prompt=True,
                          err=True)
        typer.echo(f'[dashboard]\npassword_hash = "{make_hash(pw)}"')
        return
    import asyncio

    from singularity.dashboard.app import create_app, make_server
    from singularity.dashboard.security import check_bind

    s = settings(ctx, dashboard__host=host, dashboard__port=port)
    bind, bind_port = s.dashboard.host, s.dashboard.port
    check_bind(bind, s.dashboard.password_hash)
    app = create_app(s, host=bind, read_only=read_only, mode=mode)
    server = make_server(app, host=bind, port=bind_port, log_level="warning")
    shown = f"[{bind}]" if ":" in bind else bind
    console.print(f"dashboard on http://{shown}:{bind_port}/"
                  + (" (read-only)" if read_only else "") + " — Ctrl-C stops it", highlight=False)
    asyncio.run(server.serve())
