"""Plain JSON views of the registry and the candle store: what the API answers.

Each function takes the objects it reads and returns dicts of JSON types; nothing here knows
about HTTP. Settings are never serialised wholesale, so no configured secret can leak through.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from singularity.data.store import CandleStore
from singularity.errors import DataError
from singularity.registry import Registry
from singularity.timeframes import timeframe_seconds

# The forge's stages in order: the forge page shows progress as the stage's place in it.
FORGE_STAGES = ("starting", "data", "features", "bakeoff", "evolution", "gauntlet", "registry",
                "report", "done")


def _iso(t: datetime | pd.Timestamp | None) -> str | None:
    return None if t is None else t.isoformat()


def strategy_summary(st: Any) -> dict[str, Any]:
    hs = (st.holdout or {}).get("sharpe")
    return {"id": st.id, "run_id": st.run_id, "symbol": st.symbol, "timeframe": st.timeframe,
            "status": st.status, "fitness": st.fitness, "size": st.size,
            "rule": st.readable or st.expression, "holdout_sharpe": hs,
            "passed": bool(st.gauntlet) and all(bool(v.get("passed")) for v in st.gauntlet
                                                 if isinstance(v, dict)),
            "created_at": _iso(st.created_at)}


def report_file(reports_dir: Path, strategy_id: int) -> Path | None:
    path = reports_dir / f"strategy-{int(strategy_id)}.html"
    return path if path.is_file() else None


def strategy_detail(reg: Registry, strategy_id: int, reports_dir: Path) -> dict[str, Any]:
    st = reg.strategy(strategy_id)
    lineage = reg.lineage(strategy_id)
    d = strategy_summary(st)
    d.update({"expression": st.expression, "readable": st.readable, "in_sample": st.in_sample,
              "holdout": st.holdout, "gauntlet": st.gauntlet, "explanation": st.explanation,
              "parents": [int(p) for p in st.parents],
              "lineage": [{"id": x.id, "parents": [int(p) for p in x.parents], "status": x.status,
                           "symbol": x.symbol, "rule": x.readable or x.expression,
                           "run_id": x.run_id} for x in lineage],
              "report_url": (f"/api/strategies/{st.id}/report"
                             if report_file(reports_dir, st.id) else None)})
    return d


def _progress(stage: str, status: str) -> float:
    if status != "running":
        return 1.0
    try:
        return FORGE_STAGES.index(stage) / (len(FORGE_STAGES) - 1)
    except ValueError:
        return 0.0


def run_summary(r: Any) -> dict[str, Any]:
    return {"id": r.id, "symbol": r.symbol, "timeframe": r.timeframe, "status": r.status,
            "stage": r.stage, "stage_detail": r.stage_detail, "progress": _progress(r.stage, r.status),
            "generation": r.generation, "seed": r.seed, "parent_champion_id": r.parent_champion_id,
            "champion_id": r.champion_id, "seconds": r.seconds, "stage_seconds": r.stage_seconds,
            "error": r.error, "started_at": _iso(r.started_at), "updated_at": _iso(r.updated_at),
            "finished_at": _iso(r.finished_at)}


def run_detail(reg: Registry, run_id: int) -> dict[str, Any]:
    d = run_summary(reg.run(run_id))
    d["models"] = [{"name": m.name, "winner": m.winner, "metrics": m.metrics} for m in reg.models(run_id)]
    d["generations"] = reg.generation_stats(run_id)
    return d


def store_entries(store: CandleStore) -> list[dict[str, Any]]:
    return [{"exchange": e.exchange, "symbol": e.symbol, "timeframe": e.timeframe, "rows": e.rows,
             "first": _iso(e.first), "last": _iso(e.last), "gaps": e.gaps, "missing": e.missing}
            for e in store.entries()]


def store_gaps(store: CandleStore, exchange: str, symbol: str, timeframe: str,
               *, limit: int = 500) -> dict[str, Any]:
    """The runs of missing candles of one stored series."""
    if not store.exists(exchange, symbol, timeframe):
        raise DataError(f"no candles stored for {symbol} {timeframe} on {exchange}")
    idx = store.read(exchange, symbol, timeframe).index
    step = pd.Timedelta(seconds=timeframe_seconds(timeframe))
    d = idx[1:] - idx[:-1]
    at = (d > step).nonzero()[0]
    gaps = [{"after": _iso(idx[i]), "before": _iso(idx[i + 1]), "missing": int(d[i] // step) - 1}
            for i in at[:limit]]
    return {"exchange": exchange, "symbol": symbol, "timeframe": timeframe, "rows": len(idx),
            "gaps": gaps, "total_gaps": len(at)}


def last_prices(store: CandleStore, exchange: str, symbols: list[str], timeframe: str) -> dict[str, dict[str, Any]]:
    """Last stored close per symbol (the overview's price when no engine is running)."""
    out: dict[str, dict[str, Any]] = {}
    for sym in symbols:
        try:
            last = store.last_timestamp(exchange, sym, timeframe)
        except DataError:
            continue
        if last is None:
            continue
        tail = store.read(exchange, sym, timeframe, start=last)
        if len(tail):
            out[sym] = {"price": float(tail["close"].iloc[-1]), "last_candle": _iso(tail.index[-1])}
    return out
