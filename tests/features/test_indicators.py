"""TA-Lib indicator family: exact values on tiny inputs, causality, scale-freeness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from singularity.data.synthetic import regime_switching_market
from singularity.features.causality import assert_causal
from singularity.features.indicators import indicator_catalogue, indicator_features
from singularity.features.settings import IndicatorSettings

SETTINGS = IndicatorSettings()


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return regime_switching_market(["A/USDT"], n_bars=1200, seed=3)["A/USDT"]


def test_catalogue_matches_columns_and_warmup(candles: pd.DataFrame) -> None:
    frame, specs = indicator_features(candles, SETTINGS)
    assert list(frame.columns) == [s.name for s in specs]
    assert frame.index.equals(candles.index)
    assert len(specs) == 35 and {s.family for s in specs} == {"indicators"}
    for s in specs:
        # NaN only inside the declared warm-up, a value everywhere after it
        assert not frame[s.name].iloc[s.warmup:].isna().any(), s.name
    warm = {s.name: s.warmup for s in specs}
    assert warm["rsi_14"] == 42  # Wilder seed: 3 periods (settle_factor=3)
    assert warm["sma_dist_200"] == 199 and warm["ema_dist_200"] == 600
    assert warm["macd"] == 3 * (26 + 9) and warm["body"] == 0


def test_exact_values_on_hand_built_candles() -> None:
    idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC", name="timestamp")
    c = pd.DataFrame(
        {"open": [10.0, 11.0, 12.0], "high": [12.0, 11.0, 13.0], "low": [9.0, 11.0, 11.0],
         "close": [11.0, 11.0, 11.5], "volume": [1.0, 2.0, 3.0]},
        index=idx,
    )
    s = IndicatorSettings(return_horizons=(1, 2), roc_periods=(1,), vol_horizons=(2,),
                          ma_periods=(2,), volume_z_period=2)
    f, _ = indicator_features(c, s)
    np.testing.assert_allclose(f["body"], [1 / 3, 0.0, -0.25])  # flat candle: 0, not NaN
    np.testing.assert_allclose(f["upper_wick"], [1 / 3, 0.0, 0.5])
    np.testing.assert_allclose(f["lower_wick"], [1 / 3, 0.0, 0.25])
    np.testing.assert_allclose(f["range_pct"], [3 / 11, 0.0, 2 / 11.5])
    np.testing.assert_allclose(f["logret_1"], [np.nan, 0.0, np.log(11.5 / 11)])
    np.testing.assert_allclose(f["logret_2"], [np.nan, np.nan, np.log(11.5 / 11)])
    np.testing.assert_allclose(f["roc_1"], [np.nan, 0.0, 0.5 / 11])
    np.testing.assert_allclose(f["sma_dist_2"], [np.nan, 0.0, 11.5 / 11.25 - 1])
    # population std of the two 1-bar log returns (0 and log(11.5/11))
    np.testing.assert_allclose(f["rvol_2"].iloc[2], abs(np.log(11.5 / 11)) / 2)
    lv = np.log1p([2.0, 3.0])
    np.testing.assert_allclose(f["volume_z_2"].iloc[2], (lv[1] - lv.mean()) / lv.std())


def test_talib_values_are_rescaled_not_rewritten(candles: pd.DataFrame) -> None:
    f, _ = indicator_features(candles, SETTINGS)
    c = candles["close"].to_numpy()
    h, low = candles["high"].to_numpy(), candles["low"].to_numpy()
    np.testing.assert_array_equal(f["rsi_14"].to_numpy(), talib.RSI(c, 14) / 100)
    np.testing.assert_array_equal(f["adx_14"].to_numpy(), talib.ADX(h, low, c, 14) / 100)
    line, _, _ = talib.MACD(c, 12, 26, 9)
    np.testing.assert_array_equal(f["macd"].to_numpy(), line / c)


def test_indicators_are_causal(candles: pd.DataFrame) -> None:
    # exact: TA-Lib's recursions restart from the same first candle in both computations
    assert_causal(lambda d: indicator_features(d, SETTINGS), candles, points=6, min_rows=2,
                  rtol=0, atol=0)


def test_scale_free(candles: pd.DataFrame) -> None:
    scaled = candles.copy()
    scaled[["open", "high", "low", "close"]] *= 1000.0
    a, _ = indicator_features(candles, SETTINGS)
    b, _ = indicator_features(scaled, SETTINGS)
    pd.testing.assert_frame_equal(a, b, rtol=1e-6, atol=1e-9)


def test_settings_drive_the_columns() -> None:
    names = [s.name for s in indicator_catalogue(IndicatorSettings(rsi_period=7, ma_periods=(5,)))]
    assert "rsi_7" in names and "ema_dist_5" in names and "ema_dist_200" not in names


@pytest.mark.realdata
def test_real_candles_causal_and_complete_after_warmup(load_feather) -> None:
    from singularity.features.particle_filter import particle_filter_features
    from singularity.features.settings import ParticleFilterSettings

    btc = load_feather("BTC", "1h", tail=1500)
    assert_causal(lambda d: indicator_features(d, SETTINGS), btc, points=4, min_rows=700,
                  rtol=0, atol=0)
    pf = ParticleFilterSettings()
    assert_causal(lambda d: particle_filter_features(d, pf), btc, points=[-1, 900], rtol=0, atol=0)
    frame, specs = indicator_features(btc, SETTINGS)
    warm = max(s.warmup for s in specs)
    assert not frame.iloc[warm:].isna().any().any()
    pf_frame, _ = particle_filter_features(btc, pf)
    assert pf_frame.iloc[pf.warmup:]["pf_logvol"].between(np.log(1e-4), np.log(0.1)).all()
