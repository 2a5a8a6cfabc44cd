"""Regime features: what a market state looks like, per bar, from bars up to that bar only.

Columns: realised volatility over two horizons (log) and their ratio, trend strength (the
return over a window in units of its volatility) and the efficiency ratio, the lag-1
autocorrelation of returns, the volume z-score, the drawdown from the trailing high and,
when other assets are given, the cross-asset correlation level (mean |correlation| of
returns with the other assets, the graph family's edge weights). Every value at bar t is a
trailing-window statistic ending at t; the first rows are NaN until each window is full.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from singularity.regimes.settings import ALL_COLUMNS, BASE_COLUMNS, CROSS_COLUMN, RegimeSettings
from singularity.regimes.windows import (
    window_corr_level,
    window_lag1_corr,
    window_max,
    window_mean,
    window_std,
    window_sum,
)

__all__ = ["ALL_COLUMNS", "BASE_COLUMNS", "CROSS_COLUMN", "regime_features", "symbol_regime_features"]


def regime_features(candles: pd.DataFrame, settings: RegimeSettings) -> pd.DataFrame:
    """The per-asset regime features of ``candles`` (canonical OHLCV frame). Window-local
    (``regimes.windows``): a row's value depends on its own window's candles only."""
    x = own_feature_array(candles["close"].to_numpy(dtype=np.float64),
                          candles["volume"].to_numpy(dtype=np.float64), settings)
    return pd.DataFrame(x, index=candles.index, columns=list(BASE_COLUMNS))


def own_feature_array(close: np.ndarray, volume: np.ndarray, settings: RegimeSettings) -> np.ndarray:
    """``regime_features``' values, (n, 8) in ``BASE_COLUMNS`` order, from the closes and volumes."""
    s = settings
    n = len(close)
    logc = np.log(close)
    r = np.full(n, np.nan)
    r[1:] = np.diff(logc)
    vol_s = window_std(r, s.vol_short)
    vol_l = window_std(r, s.vol_long)
    w = s.trend_window
    move = np.full(n, np.nan)
    move[w:] = logc[w:] - logc[:-w]
    vol_w = window_std(r, w)
    path = window_sum(np.abs(r), w)
    logv = np.log1p(np.clip(volume, 0, None))
    vm = window_mean(logv, s.volume_window)
    vs = window_std(logv, s.volume_window)
    high = window_max(close, s.drawdown_window)
    nan = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.column_stack([
            np.log(np.where(vol_s > 0, vol_s, nan)),
            np.log(np.where(vol_l > 0, vol_l, nan)),
            vol_s / np.where(vol_l > 0, vol_l, nan),
            move / np.where(vol_w > 0, vol_w * np.sqrt(w), nan),
            np.abs(move) / np.where(path > 0, path, nan),
            window_lag1_corr(r, s.autocorr_window),
            (logv - vm) / np.where(vs > 0, vs, nan),
            close / high - 1.0,
        ])


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
    universe: Mapping[str, pd.DataFrame], symbol: str, settings: RegimeSettings, *, validate: bool = True,
) -> pd.Series | None:
    """Mean |corr| of ``symbol``'s returns with each other asset's over ``corr_window`` bars
    ending at t, on ``symbol``'s timestamps; None when there is no other asset. The assets are
    aligned on the union of their timestamps (``features.graph.align_closes``, which also
    validates them unless ``validate`` is False: candles read back from the store)."""
    others = [s for s in universe if s != symbol]
    if not others:
        return None
    from singularity.features.graph import align_closes

    order = [symbol, *others]
    if validate:
        align_closes({s: universe[s] for s in order})  # its checks (one-line DataError)
    level = cross_level_array([pd.DatetimeIndex(universe[s].index).as_unit("ns").asi8 for s in order],
                              [universe[s]["close"].to_numpy(dtype=np.float64) for s in order], settings)
    return pd.Series(level, index=universe[symbol].index, name=CROSS_COLUMN)


def cross_level_array(stamps: Sequence[np.ndarray], closes: Sequence[np.ndarray], settings: RegimeSettings,
                      first: int = 0) -> np.ndarray:
    """``cross_corr_level``'s values on the first asset's rows from each asset's timestamps
    (int64 ns) and closes, aligned on the union of the timestamps in plain numpy (the
    engine's worker calls this at every candle); rows before ``first`` are left NaN."""
    from singularity.features.graph import log_returns

    index = np.unique(np.concatenate(stamps))
    aligned = np.full((len(index), len(stamps)), np.nan)
    for j, (st, c) in enumerate(zip(stamps, closes, strict=True)):
        aligned[np.searchsorted(index, st), j] = c
    rows = np.searchsorted(index, stamps[0])
    w = settings.corr_window
    level = window_corr_level(log_returns(aligned), w, max(3, int(0.75 * w)),
                              int(rows[first]) if first < len(rows) else len(index))
    return level[rows]


def symbol_regime_features(
    universe: Mapping[str, pd.DataFrame], symbol: str, settings: RegimeSettings, *, validate: bool = True,
) -> tuple[pd.DataFrame, list[str]]:
    """Regime features of ``symbol`` with the cross-asset level when other assets exist,
    and notes saying what was left out."""
    frame = regime_features(universe[symbol], settings)
    notes: list[str] = []
    cross = cross_corr_level(universe, symbol, settings, validate=validate)
    if cross is None:
        notes.append(f"{symbol}: no other assets stored; cross-asset correlation level absent")
    else:
        frame[CROSS_COLUMN] = cross
    return frame, notes
