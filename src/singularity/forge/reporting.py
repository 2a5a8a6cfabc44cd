"""Strategy reports: the forge saves each reported strategy's per-bar series next to its HTML
file, so ``singularity report ID`` can render it again from the registry without re-running
anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from singularity.analyst.report import ReportData, write_report
from singularity.config import Settings
from singularity.errors import DataError
from singularity.forge.split import Split
from singularity.registry import Registry
from singularity.storage import atomic_write_with
from singularity.timeframes import periods_per_year
from singularity.validation.regimes import regime_ids


def reports_dir(settings: Settings) -> Path:
    return Path(settings.data.dir) / "reports"


def series_path(settings: Settings, strategy_id: int) -> Path:
    return reports_dir(settings) / f"strategy-{strategy_id}.parquet"


def write_strategy_report(settings: Settings, registry: Registry, strategy_id: int, candles: pd.DataFrame,
                          inputs: pd.DataFrame, split: Split, *, synthetic: bool, holdout_looks: int = 1) -> Path:
    """One causal run of the rule over the whole window (training start to holdout end), with
    the gauntlet's accounting (fee and slippage folded into one cost on traded notional, the
    short charge per bar): its holdout slice is the gauntlet's and the registry's holdout."""
    from singularity.backtest import run
    from singularity.backtest.kernel import short_financing
    from singularity.forge.champion import positions_fn, short_rate_per_bar

    st = registry.strategy(strategy_id)
    window = slice(split.train.start, split.holdout.stop)
    c, x = candles.iloc[window], inputs.iloc[window]
    target = positions_fn(settings)(st.expression, x)
    short = short_rate_per_bar(settings, st.timeframe)
    res = run(c, target, timeframe=st.timeframe, fee_bps=settings.costs.fee_bps + settings.costs.slippage_bps,
              slippage_bps=0.0, funding=short_financing(target, short) if short > 0 else None)
    series = c.copy()
    series["target"] = target
    series["position"] = res.positions.to_numpy()
    series["return"] = res.returns.to_numpy()
    series["turnover"] = res.turnover.to_numpy()
    regimes = regime_ids(x)
    if regimes is not None:  # the regime features are on: the report shades and tabulates them
        series["regime"] = regimes
    series.attrs = {}
    holdout_start = candles.index[split.holdout.start]
    meta = pd.Series({"holdout_start": holdout_start.isoformat(), "synthetic": str(synthetic)})
    path = series_path(settings, strategy_id)
    atomic_write_with(path, lambda tmp: series.assign(
        holdout_start=meta["holdout_start"], synthetic=meta["synthetic"],
        holdout_looks=int(holdout_looks)).to_parquet(tmp))
    return render_saved(settings, registry, strategy_id)


def _metric_sections(series: pd.DataFrame, holdout_start: pd.Timestamp, timeframe: str) -> dict[str, dict[str, Any]]:
    from singularity.backtest import compute_metrics, count_trades

    ppy = periods_per_year(timeframe)
    out: dict[str, dict[str, Any]] = {}
    for name, part in (("training window", series[series.index < holdout_start]),
                       ("holdout", series[series.index >= holdout_start])):
        m = compute_metrics(part["return"].to_numpy(), periods_per_year=ppy, positions=part["position"].to_numpy(),
                            turnover=part["turnover"].to_numpy())
        m["trade_count"] = float(count_trades(part["target"].to_numpy(np.float64)))  # as the gauntlet counts
        out[name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()}
    return out


def _regime_names(series: pd.DataFrame, holdout_start: pd.Timestamp, settings: Settings) -> dict[int, str] | None:
    """The regimes' names from the training window's candles (as the explanation names them)."""
    if "regime" not in series:
        return None
    from singularity.regimes.classifier import names_of_labels

    train = series[series.index < holdout_start]
    return names_of_labels(train, train["regime"].to_numpy(), settings.features.regimes)


def render_saved(settings: Settings, registry: Registry, strategy_id: int, out: Path | None = None) -> Path:
    st = registry.strategy(strategy_id)
    path = series_path(settings, strategy_id)
    if not path.is_file():
        raise DataError(f"no saved series for strategy {strategy_id} ({path}): only strategies a forge cycle "
                        "reported (champions and best candidates) have one")
    series = pd.read_parquet(path)
    holdout_start = pd.Timestamp(series["holdout_start"].iloc[0])
    synthetic = series["synthetic"].iloc[0] == "True"
    looks = int(series["holdout_looks"].iloc[0]) if "holdout_looks" in series else 1
    lineage = [{"id": s.id, "status": s.status, "fitness": round(s.fitness, 4), "readable": s.readable,
                "created_at": f"{s.created_at:%Y-%m-%d %H:%M}"} for s in registry.lineage(strategy_id)]
    data = ReportData(
        title=f"{st.symbol} {st.timeframe} — strategy {st.id} ({st.status})",
        candles=series[["open", "high", "low", "close", "volume"]],
        positions=series["position"].to_numpy(), returns=series["return"].to_numpy(),
        holdout_start=holdout_start, expression=st.readable or st.expression, explanation=st.explanation,
        gauntlet=st.gauntlet, metrics=_metric_sections(series, holdout_start, st.timeframe),
        lineage=lineage, synthetic=synthetic, holdout_looks=looks,
        regimes=series["regime"].to_numpy() if "regime" in series else None, timeframe=st.timeframe,
        regime_names=_regime_names(series, holdout_start, settings))
    return write_report(out or reports_dir(settings) / f"strategy-{strategy_id}.html", data)


def report_for_strategy(settings: Settings, strategy_id: int, *, out: Path | None = None) -> Path:
    return render_saved(settings, Registry(settings.database_url), strategy_id, out)
