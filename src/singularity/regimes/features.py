"""Regime features: what a market state looks like, per bar, from bars up to that bar only.

Columns: realised volatility over two horizons (log) and their ratio, trend strength (the
return over a window in units of its volatility) and the efficiency ratio, the lag-1
autocorrelation of returns, the volume z-score, the drawdown from the trailing high and,
when other assets are given, the cross-asset correlation level (mean |correlation| of
returns with the other assets, the graph family's edge weights). Every value at bar t is a
trailing-window statistic ending at t; the first rows are NaN until each window is full.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from singularity.regimes.settings import ALL_COLUMNS, BASE_COLUMNS, CROSS_COLUMN, RegimeSettings

__all__ = ["ALL_COLUMNS", "BASE_COLUMNS", "CROSS_COLUMN", "regime_features", "symbol_regime_features"]


def _rolling_autocorr(r: pd.Series, window: int) -> pd.Series:
    """corr(r_t, r_{t-1}) over the trailing window (NaN until full, or on a flat window)."""
    return r.rolling(window, min_periods=window).corr(r.shift(1))


def regime_features(candles: pd.DataFrame, settings: RegimeSettings) -> pd.DataFrame:
    """The per-asset regime features of ``candles`` (canonical OHLCV frame)."""
    s = settings
    close = candles["close"].astype("float64")
    logc = np.log(close)
    r = logc.diff()
    vol_s = r.rolling(s.vol_short, min_periods=s.vol_short).std()
    vol_l = r.rolling(s.vol_long, min_periods=s.vol_long).std()
    w = s.trend_window
    move = logc - logc.shift(w)
    vol_w = r.rolling(w, min_periods=w).std()
    trend = move / (vol_w * np.sqrt(w)).where(vol_w > 0)
    path = r.abs().rolling(w, min_periods=w).sum()
    efficiency = move.abs() / path.where(path > 0)
    logv = np.log1p(candles["volume"].astype("float64").clip(lower=0))
    vm = logv.rolling(s.volume_window, min_periods=s.volume_window).mean()
    vs = logv.rolling(s.volume_window, min_periods=s.volume_window).std()
    volume_z = (logv - vm) / vs.where(vs > 0)
    high = close.rolling(s.drawdown_window, min_periods=s.drawdown_window).max()
    out = pd.DataFrame(
        {
            "log_vol_short": np.log(vol_s.where(vol_s > 0)),
            "log_vol_long": np.log(vol_l.where(vol_l > 0)),
            "vol_ratio": vol_s / vol_l.where(vol_l > 0),
            "trend": trend,
            "efficiency": efficiency,
            "autocorr": _rolling_autocorr(r, s.autocorr_window),
            "volume_z": volume_z,
            "drawdown": close / high - 1.0,
        },
        index=candles.index,
    )
    return out.astype("float64")


def latest_regime_features(candles: pd.DataFrame, settings: RegimeSettings) -> np.ndarray:
    """The last row of ``regime_features(candles)`` from plain numpy on the trailing bars it
    needs (``settings.warmup_bars`` are enough): what a live engine computes per new candle,
    without pandas' rolling machinery. Equal to the full computation up to rounding."""
    s = settings
    close = candles["close"].to_numpy(dtype=np.float64)
    logc = np.log(close)
    r = np.diff(logc)
    vol_s = r[-s.vol_short:].std(ddof=1)
    vol_l = r[-s.vol_long:].std(ddof=1)
    w = s.trend_window
    move = logc[-1] - logc[-1 - w]
    vol_w = r[-w:].std(ddof=1)
    path = np.abs(r[-w:]).sum()
    a, b = r[-s.autocorr_window:], r[-s.autocorr_window - 1:-1]
    da, db = a - a.mean(), b - b.mean()
    den = np.sqrt((da * da).sum() * (db * db).sum())
    logv = np.log1p(np.maximum(candles["volume"].to_numpy(dtype=np.float64)[-s.volume_window:], 0))
    vs = logv.std(ddof=1)
    nan = float("nan")
    return np.array([
        np.log(vol_s) if vol_s > 0 else nan,
        np.log(vol_l) if vol_l > 0 else nan,
        vol_s / vol_l if vol_l > 0 else nan,
        move / (vol_w * np.sqrt(w)) if vol_w > 0 else nan,
        abs(move) / path if path > 0 else nan,
        (da * db).sum() / den if den > 0 else nan,
        (logv[-1] - logv.mean()) / vs if vs > 0 else nan,
        close[-1] / close[-s.drawdown_window:].max() - 1.0,
    ])


def cross_corr_level(
    universe: Mapping[str, pd.DataFrame], symbol: str, settings: RegimeSettings
) -> pd.Series | None:
    """Mean |corr| of ``symbol``'s returns with each other asset's over ``corr_window`` bars
    ending at t, on ``symbol``'s timestamps; None when there is no other asset."""
    others = [s for s in universe if s != symbol]
    if not others:
        return None
    from singularity.features.graph import align_closes, log_returns, rolling_pair_corr

    order = [symbol, *others]
    index, closes = align_closes({s: universe[s] for s in order})
    r = log_returns(closes)
    w = settings.corr_window
    # own column against the others; the kernel pairs columns of one matrix
    rho = rolling_pair_corr(r, r, w, max(3, int(0.75 * w)), True)[:, 0, 1:]
    with np.errstate(all="ignore"):
        valid = np.isfinite(rho)
        level = np.where(valid.any(axis=1),
                         np.nansum(np.abs(rho), axis=1) / np.maximum(valid.sum(axis=1), 1),
                         np.nan)
    return pd.Series(level, index=index, name=CROSS_COLUMN).reindex(universe[symbol].index)


def symbol_regime_features(
    universe: Mapping[str, pd.DataFrame], symbol: str, settings: RegimeSettings
) -> tuple[pd.DataFrame, list[str]]:
    """Regime features of ``symbol`` with the cross-asset level when other assets exist,
    and notes saying what was left out."""
    frame = regime_features(universe[symbol], settings)
    notes: list[str] = []
    cross = cross_corr_level(universe, symbol, settings)
    if cross is None:
        notes.append(f"{symbol}: no other assets stored; cross-asset correlation level absent")
    else:
        frame[CROSS_COLUMN] = cross
    return frame, notes
