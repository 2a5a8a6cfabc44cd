"""One self-contained HTML file per strategy: plotly figures with their JavaScript embedded
(works offline), the gauntlet table, the explanation and the lineage; with the regime
features, the market regimes shaded on the price chart and a table per regime."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from singularity.storage import atomic_write_bytes


@dataclass
class ReportData:
    title: str
    candles: pd.DataFrame
    """Training window and holdout together, canonical frame."""
    positions: np.ndarray
    """Held position per bar (after fills), aligned with ``candles``."""
    returns: np.ndarray
    """Net per-bar returns of the strategy, aligned with ``candles``."""
    holdout_start: pd.Timestamp
    expression: str = ""
    explanation: str = ""
    gauntlet: Sequence[dict[str, Any]] = ()
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Section name ('in-sample', 'holdout') -> metric name -> value."""
    lineage: Sequence[dict[str, Any]] = ()
    synthetic: bool = False
    holdout_looks: int = 1
    """Candidates whose holdout the cycle opened (more than one: p-values Holm-corrected)."""
    regimes: np.ndarray | None = None
    """Regime id per bar (-1 unclassified), aligned with ``candles``; None: no regime inputs."""
    timeframe: str = "1h"
    regime_names: dict[int, str] | None = None
    """Regime id -> words ("high volatility, down-trend, mean-reverting")."""


_REGIME_COLOURS = ("rgba(31,119,180,0.13)", "rgba(44,160,44,0.13)", "rgba(214,39,40,0.13)",
                   "rgba(148,103,189,0.13)", "rgba(140,86,75,0.13)", "rgba(227,119,194,0.13)",
                   "rgba(188,189,34,0.13)", "rgba(23,190,207,0.13)")


def regime_shapes(index: pd.DatetimeIndex, regimes: np.ndarray,
                  names: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """One shaded rectangle per spell of a regime (unclassified bars stay white), over the
    price panel of the positions chart."""
    shapes: list[dict[str, Any]] = []
    start = 0
    for i in range(1, len(regimes) + 1):
        if i == len(regimes) or regimes[i] != regimes[start]:
            k = int(regimes[start])
            if k >= 0:
                shapes.append({"type": "rect", "xref": "x", "yref": "y domain", "x0": index[start],
                               "x1": index[i - 1], "y0": 0, "y1": 1, "layer": "below",
                               "fillcolor": _REGIME_COLOURS[k % len(_REGIME_COLOURS)],
                               "line": {"width": 0},
                               "name": f"regime {k}" + (f": {names[k]}" if names and k in names else "")})
            start = i
    return shapes


def regime_tables(d: ReportData) -> str:
    """Performance per regime in the training window and the holdout (empty without regimes)."""
    if d.regimes is None:
        return ""
    from singularity.timeframes import periods_per_year
    from singularity.validation.regimes import regime_performance

    hold = np.asarray(d.candles.index >= d.holdout_start)
    cols = ["regime", *(["name"] if d.regime_names else []), "bars", "bar_share", "sharpe", "pnl", "pnl_share"]
    out = ["<h2>Performance per regime</h2>"]
    for name, m in (("holdout", hold), ("training window", ~hold)):
        rows = regime_performance(np.asarray(d.returns)[m], np.asarray(d.regimes)[m],
                                  periods_per_year(d.timeframe))
        for row in rows:
            row["name"] = (d.regime_names or {}).get(row["regime"], "")
        out.append(f"<h3>{name}</h3>{_table(rows, cols)}")
    return "".join(out)


def _figures(d: ReportData) -> list[tuple[str, Any]]:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    idx = d.candles.index
    equity = np.cumprod(1.0 + np.asarray(d.returns))
    bh = d.candles["close"].to_numpy() / d.candles["close"].iloc[0]
    shade = {"type": "rect", "xref": "x", "yref": "paper", "x0": d.holdout_start, "x1": idx[-1],
             "y0": 0, "y1": 1, "fillcolor": "rgba(255,165,0,0.12)", "line": {"width": 0}}
    eq = go.Figure()
    eq.add_trace(go.Scatter(x=idx, y=equity, name="strategy (net of costs)", line={"width": 1.6}))
    eq.add_trace(go.Scatter(x=idx, y=bh, name="buy and hold", line={"width": 1, "color": "grey"}))
    eq.update_layout(title="Equity against buy-and-hold (holdout shaded)", shapes=[shade],
                     yaxis_type="log", height=420, margin={"t": 50, "b": 30})
    peak = np.maximum.accumulate(equity)
    dd = go.Figure(go.Scatter(x=idx, y=equity / peak - 1.0, fill="tozeroy", name="drawdown",
                              line={"color": "firebrick", "width": 1}))
    dd.update_layout(title="Drawdown", yaxis_tickformat=".0%", shapes=[shade], height=260,
                     margin={"t": 50, "b": 30})
    pos = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.03)
    pos.add_trace(go.Scatter(x=idx, y=d.candles["close"], name="close", line={"width": 1, "color": "black"}), 1, 1)
    pos.add_trace(go.Scatter(x=idx, y=d.positions, name="position", line={"width": 1, "shape": "hv"},
                             fill="tozeroy"), 2, 1)
    spells = regime_shapes(idx, np.asarray(d.regimes), d.regime_names) if d.regimes is not None else []
    pos.update_layout(title="Positions on price" + (" (regimes shaded)" if spells else ""),
                      height=480, margin={"t": 50, "b": 30},
                      shapes=[{**shade, "yref": "paper"}, *spells])
    monthly = (pd.Series(d.returns, index=idx).add(1.0).groupby(idx.tz_convert(None).to_period("M").astype(str)).prod() - 1.0)
    years = sorted({m[:4] for m in monthly.index})
    grid = np.full((len(years), 12), np.nan)
    for m, v in monthly.items():
        grid[years.index(m[:4]), int(m[5:7]) - 1] = v
    heat = go.Figure(go.Heatmap(z=grid, x=[f"{i:02d}" for i in range(1, 13)], y=years, colorscale="RdYlGn",
                                zmid=0, text=[[("" if np.isnan(v) else f"{v:.1%}") for v in row] for row in grid],
                                texttemplate="%{text}", colorbar={"tickformat": ".0%"}))
    heat.update_layout(title="Monthly returns", height=120 + 40 * len(years), margin={"t": 50, "b": 30})
    return [("equity", eq), ("drawdown", dd), ("positions", pos), ("monthly", heat)]


def _table(rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _gauntlet_table(rows: Sequence[dict[str, Any]]) -> str:
    out = []
    for r in rows:
        ok = bool(r.get("passed"))
        figs = {k: v for k, v in r.get("figures", {}).items() if not isinstance(v, list)}
        out.append(f"<tr class='{'pass' if ok else 'fail'}'><td>{html.escape(str(r.get('test')))}</td>"
                   f"<td>{'PASS' if ok else 'FAIL'}</td><td>{html.escape(str(r.get('detail', '')))}</td>"
                   f"<td><code>{html.escape(json.dumps(figs))}</code></td></tr>")
    return ("<table><thead><tr><th>test</th><th>verdict</th><th>detail</th><th>figures</th></tr></thead>"
            f"<tbody>{''.join(out)}</tbody></table>")


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
tr.pass td:nth-child(2){color:#07631e;font-weight:bold}tr.fail td:nth-child(2){color:#b00020;font-weight:bold}
.synthetic{background:#b00020;color:white;padding:6px 12px;font-weight:bold}code{font-size:0.85em}
pre{white-space:pre-wrap;background:#f6f6f6;padding:1em}"""


def render_report(d: ReportData) -> str:
    import plotly.io as pio

    figs = _figures(d)
    parts = [pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0), div_id=f"fig-{name}",
                         config={"displaylogo": False})
             for i, (name, fig) in enumerate(figs)]
    metric_rows = [{"metric": k, **{sec: vals.get(k, "") for sec, vals in d.metrics.items()}}
                   for k in dict.fromkeys(k for vals in d.metrics.values() for k in vals)]
    banner = ("<p class='synthetic'>SYNTHETIC MARKET: these candles were generated, not traded.</p>"
              if d.synthetic else "")
    lineage = _table(d.lineage, ["id", "status", "fitness", "readable", "created_at"]) if d.lineage else "<p>none</p>"
    doc = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(d.title)}</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(d.title)}</h1>{banner}
<p><b>Rule:</b> <code>{html.escape(d.expression)}</code></p>
<h2>Explanation</h2><pre>{html.escape(d.explanation)}</pre>
<h2>Metrics</h2>{_table(metric_rows, ["metric", *d.metrics.keys()])}
<h2>Gauntlet</h2><p>Holdout looks this cycle: {d.holdout_looks}</p>{_gauntlet_table(d.gauntlet)}
{regime_tables(d)}
{''.join(parts)}
<h2>Lineage</h2>{lineage}
</body></html>"""
    return doc


def write_report(path: str | Path, d: ReportData) -> Path:
    path = Path(path)
    atomic_write_bytes(path, render_report(d).encode("utf-8"))
    return path
