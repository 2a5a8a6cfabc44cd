"""``singularity registry list|show`` and ``singularity report ID``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from singularity.cli._context import console, settings
from singularity.cli._tables import gauntlet_table

app = typer.Typer(help="Browse strategies, forge runs and lineage.", no_args_is_help=True)


def _strategy_dict(st: Any) -> dict[str, Any]:
    return {"id": st.id, "run_id": st.run_id, "symbol": st.symbol, "timeframe": st.timeframe,
            "status": st.status, "fitness": st.fitness, "size": st.size, "expression": st.expression,
            "readable": st.readable, "in_sample": st.in_sample, "holdout": st.holdout,
            "gauntlet": st.gauntlet, "explanation": st.explanation, "parents": st.parents,
            "created_at": st.created_at.isoformat() if st.created_at else None}


@app.command("list")
def list_(
    ctx: typer.Context,
    symbol: str | None = typer.Option(None, "--symbol", help="Only this symbol, e.g. BTC/USDT."),
    status: str | None = typer.Option(None, "--status", help="candidate, champion or retired."),
    limit: int = typer.Option(50, "--limit", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List strategies, newest first."""
    from singularity.errors import ConfigError
    from singularity.registry import Registry

    if status not in (None, "candidate", "champion", "retired"):
        raise ConfigError(f"unknown status {status!r}: expected candidate, champion or retired")
    rows = Registry(settings(ctx).database_url).strategies(symbol=symbol, status=status, limit=limit)
    if as_json:
        typer.echo(json.dumps([_strategy_dict(s) for s in rows], default=str))
        return
    table = Table(title=f"strategies ({len(rows)})")
    for col in ("id", "symbol", "tf", "status", "fitness", "holdout sharpe", "rule"):
        table.add_column(col, overflow="fold")
    for s in rows:
        hs = s.holdout.get("sharpe") if s.holdout else None
        table.add_row(str(s.id), s.symbol, s.timeframe, s.status, f"{s.fitness:.3f}",
                      "" if hs is None else f"{hs:.2f}", s.readable or s.expression)
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    strategy_id: int = typer.Argument(..., help="Strategy id (see 'registry list')."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one strategy: rule, metrics, gauntlet verdicts, explanation and lineage."""
    from singularity.registry import Registry

    reg = Registry(settings(ctx).database_url)
    st = reg.strategy(strategy_id)
    lineage = reg.lineage(strategy_id)
    if as_json:
        d = _strategy_dict(st)
        d["lineage"] = [x.id for x in lineage]
        typer.echo(json.dumps(d, default=str))
        return
    console.print(f"[bold]strategy {st.id}[/] {st.symbol} {st.timeframe} — {st.status} (run {st.run_id})")
    console.print(f"rule: {st.readable or st.expression}")
    metrics = Table(title="metrics")
    metrics.add_column("metric")
    metrics.add_column("in-sample", justify="right")
    metrics.add_column("holdout", justify="right")
    for k in dict.fromkeys([*st.in_sample, *st.holdout]):
        fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
        metrics.add_row(k, fmt(st.in_sample.get(k)), fmt(st.holdout.get(k)))
    console.print(metrics)
    if st.gauntlet:
        console.print(gauntlet_table(st.gauntlet))
    if st.explanation:
        console.print(st.explanation)
    console.print("lineage: " + " ← ".join(f"{x.id} ({x.status})" for x in lineage))


@app.command("runs")
def runs(
    ctx: typer.Context,
    symbol: str | None = typer.Option(None, "--symbol", help="Only this symbol."),
    limit: int = typer.Option(20, "--limit", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List forge runs with their status and current stage (live while a forge runs)."""
    from singularity.registry import Registry

    rows = Registry(settings(ctx).database_url).runs(symbol=symbol, limit=limit)
    keys = ("id", "symbol", "timeframe", "status", "stage", "stage_detail", "generation", "seed", "agent_id",
            "parent_champion_id", "champion_id", "seconds", "error", "report_path")
    if as_json:
        typer.echo(json.dumps([{k: getattr(r, k) for k in (*keys, "started_at", "stage_seconds")} for r in rows],
                              default=str))
        return
    table = Table(title=f"forge runs ({len(rows)})")
    for col in ("id", "symbol", "tf", "status", "stage", "gen", "champion", "seconds", "started", "error"):
        table.add_column(col, overflow="fold")
    for r in rows:
        colour = {"succeeded": "green", "failed": "red"}.get(r.status, "yellow")
        table.add_row(str(r.id), r.symbol, r.timeframe, f"[{colour}]{r.status}[/]", r.stage, str(r.generation),
                      str(r.champion_id or ""), "" if r.seconds is None else f"{r.seconds:.1f}",
                      f"{r.started_at:%Y-%m-%d %H:%M}", (r.error or "")[:80])
    console.print(table)


def report(
    ctx: typer.Context,
    strategy_id: int = typer.Argument(..., help="Strategy id (see 'registry list')."),
    out: Path | None = typer.Option(None, "--out", help="HTML file (default: <data dir>/reports/)."),
) -> None:
    """Write a self-contained HTML report of a strategy."""
    from singularity.forge.reporting import report_for_strategy

    path = report_for_strategy(settings(ctx), strategy_id, out=out)
    console.print(f"report: {path}")
