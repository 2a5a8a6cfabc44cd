"""Technical indicators (TA-Lib) and simple return/volatility/volume/candle-shape features.

Every output is scale-free (a ratio, a bounded oscillator rescaled to about [0, 1], a log
return) so the GP can apply one formula to any asset. Every value at row t uses rows <= t.

TA-Lib's recursive indicators (EMA-seeded MACD, Wilder-smoothed RSI/ATR/ADX) depend on where
the series starts; computed forward from the same first candle they are causal and the
lookahead test passes exactly. Their seed effect fades, so their warm-up is extended to
``settle_factor`` periods. Because of that start dependence the cache recomputes this family
fully rather than on a tail window (it costs milliseconds).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import talib

from singularity.features.catalogue import FeatureSpec
from singularity.features.settings import IndicatorSettings

FAMILY = "indicators"

# (name, params, description, period driving the recursive seed or 0)
_Meta = tuple[str, dict[str, object], str, int]


def _safe_div(num: np.ndarray, den: np.ndarray, fill: float) -> np.ndarray:
    """num / den where den != 0, ``fill`` elsewhere (a flat candle or band is not an error)."""
    out = np.full_like(num, fill)
    ok = den != 0
    np.divide(num, den, out=out, where=ok)
    return np.where(np.isnan(num) | np.isnan(den), np.nan, out)


def _columns(
    o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, v: np.ndarray,
    s: IndicatorSettings,
) -> tuple[dict[str, np.ndarray], list[_Meta]]:
    cols: dict[str, np.ndarray] = {}
    meta: list[_Meta] = []

    def add(name: str, values: np.ndarray, params: dict[str, object], desc: str,
            recursive: int = 0) -> None:
        cols[name] = np.asarray(values, dtype="float64")
        meta.append((name, params, desc, recursive))

    p = s.rsi_period
    add(f"rsi_{p}", talib.RSI(c, p) / 100.0, {"period": p}, "RSI / 100", p)

    f, sl, sg = s.macd_fast, s.macd_slow, s.macd_signal
    line, signal, hist = talib.MACD(c, f, sl, sg)
    mp = {"fast": f, "slow": sl, "signal": sg}
    add("macd", line / c, mp, "MACD line (EMA fast - EMA slow) / close", sl + sg)
    add("macd_signal", signal / c, mp, "MACD signal line / close", sl + sg)
    add("macd_hist", hist / c, mp, "MACD histogram / close", sl + sg)

    p = s.atr_period
    atr = talib.ATR(h, low, c, p)
    add(f"natr_{p}", talib.NATR(h, low, c, p) / 100.0, {"period": p},
        "ATR as a fraction of close (NATR / 100)", p)
    add(f"atr_{p}_expansion", _safe_div(atr, talib.SMA(atr, 4 * p), 1.0), {"period": p},
        "ATR over its own 4-period-longer average (volatility expansion)", p)

    p = s.adx_period
    add(f"adx_{p}", talib.ADX(h, low, c, p) / 100.0, {"period": p}, "ADX / 100", 2 * p)
    add(f"plus_di_{p}", talib.PLUS_DI(h, low, c, p) / 100.0, {"period": p}, "+DI / 100", p)
    add(f"minus_di_{p}", talib.MINUS_DI(h, low, c, p) / 100.0, {"period": p}, "-DI / 100", p)

    p, k = s.bbands_period, s.bbands_std
    upper, middle, lower = talib.BBANDS(c, p, k, k, 0)
    bp = {"period": p, "std": k}
    add(f"bb_pctb_{p}", _safe_div(c - lower, upper - lower, 0.5), bp,
        "Bollinger %B: position of close between the bands")
    add(f"bb_width_{p}", _safe_div(upper - lower, middle, 0.0), bp,
        "Bollinger band width / middle band")

    sk, sd = s.stoch_k, s.stoch_d
    slowk, slowd = talib.STOCH(h, low, c, sk, sd, 0, sd, 0)
    stp = {"k": sk, "d": sd}
    add(f"stoch_k_{sk}", slowk / 100.0, stp, "slow stochastic %K / 100")
    add(f"stoch_d_{sk}", slowd / 100.0, stp, "slow stochastic %D / 100")

    p = s.cci_period
    add(f"cci_{p}", talib.CCI(h, low, c, p) / 100.0, {"period": p}, "CCI / 100")
    p = s.mfi_period
    add(f"mfi_{p}", talib.MFI(h, low, c, v, p) / 100.0, {"period": p}, "money flow index / 100")

    p = s.obv_slope_period
    obv_slope = talib.LINEARREG_SLOPE(talib.OBV(c, v), p)
    add(f"obv_slope_{p}", _safe_div(obv_slope, talib.SMA(v, p), 0.0), {"period": p},
        "OBV regression slope per bar / mean volume")

    for p in s.roc_periods:
        add(f"roc_{p}", talib.ROCP(c, p), {"period": p}, f"rate of change over {p} bars")
    for p in s.ma_periods:
        add(f"ema_dist_{p}", c / talib.EMA(c, p) - 1.0, {"period": p},
            f"close / EMA({p}) - 1", p)
        add(f"sma_dist_{p}", c / talib.SMA(c, p) - 1.0, {"period": p}, f"close / SMA({p}) - 1")

    logc = np.log(c)
    for hz in s.return_horizons:
        r = np.full_like(c, np.nan)
        r[hz:] = logc[hz:] - logc[:-hz]
        add(f"logret_{hz}", r, {"horizon": hz}, f"log return over {hz} bars")
    r1 = np.full_like(c, np.nan)
    r1[1:] = np.diff(logc)
    for hz in s.vol_horizons:
        # population std of one-bar log returns over the trailing hz bars
        add(f"rvol_{hz}", talib.STDDEV(r1, hz, 1.0), {"horizon": hz},
            f"realised volatility: std of 1-bar log returns over {hz} bars")

    p = s.volume_z_period
    lv = np.log1p(v)
    add(f"volume_z_{p}", _safe_div(lv - talib.SMA(lv, p), talib.STDDEV(lv, p, 1.0), 0.0),
        {"period": p}, f"z-score of log(1 + volume) over {p} bars")

    rng = h - low
    add("body", _safe_div(c - o, rng, 0.0), {}, "candle body (close - open) / range")
    add("upper_wick", _safe_div(h - np.maximum(o, c), rng, 0.0), {}, "upper wick / range")
    add("lower_wick", _safe_div(np.minimum(o, c) - low, rng, 0.0), {}, "lower wick / range")
    add("range_pct", rng / c, {}, "candle range (high - low) / close")
    return cols, meta


def _arrays(candles: pd.DataFrame) -> tuple[np.ndarray, ...]:
    return tuple(
        np.ascontiguousarray(candles[k].to_numpy(dtype="float64"))
        for k in ("open", "high", "low", "close", "volume")
    )


@lru_cache(maxsize=32)
def indicator_catalogue(settings: IndicatorSettings) -> tuple[FeatureSpec, ...]:
    """The specs, derived without real data: warm-up = leading NaNs on a synthetic series,
    extended to ``settle_factor`` periods for recursive (seed-dependent) indicators."""
    n = 4 * _max_period(settings) + 64
    rng = np.random.default_rng(0)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    o = np.r_[c[0], c[:-1]]
    h = np.maximum(o, c) * 1.002
    low = np.minimum(o, c) * 0.998
    v = rng.uniform(1, 2, n)
    cols, meta = _columns(o, h, low, c, v, settings)
    specs = []
    for name, params, desc, recursive in meta:
        nan = np.isnan(cols[name])
        lead = int(np.argmin(nan)) if not nan.all() else n
        warm = max(lead, settings.settle_factor * recursive)
        specs.append(FeatureSpec(name, FAMILY, params, warm, desc))
    return tuple(specs)


def _max_period(s: IndicatorSettings) -> int:
    return max(
        s.rsi_period, s.macd_slow + s.macd_signal, 4 * s.atr_period, 2 * s.adx_period,
        s.bbands_period, s.stoch_k + 2 * s.stoch_d, s.cci_period, s.mfi_period,
        s.obv_slope_period, s.volume_z_period, *s.roc_periods, *s.ma_periods,
        *s.return_horizons, *(hz + 1 for hz in s.vol_horizons),
        s.settle_factor * max(s.rsi_period, s.macd_slow + s.macd_signal, 2 * s.adx_period,
                              s.atr_period, *s.ma_periods),
    )


def indicator_warmup(settings: IndicatorSettings) -> int:
    return max(spec.warmup for spec in indicator_catalogue(settings))


def indicator_features(
    candles: pd.DataFrame, settings: IndicatorSettings
) -> tuple[pd.DataFrame, list[FeatureSpec]]:
    """Indicator features of one asset, aligned to ``candles`` (rows in warm-up may be NaN)."""
    cols, _ = _columns(*_arrays(candles), settings)
    frame = pd.DataFrame(cols, index=candles.index)
    return frame, list(indicator_catalogue(settings))

