"""Resampling 1h -> 4h: exact aggregation, epoch-aligned buckets, incomplete buckets dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from candle_frames import frame, hourly

from singularity.data.resample import resample
from singularity.errors import DataError


def T(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def test_one_hour_to_four_hours_exact_values() -> None:
    src = frame(
        [
            ("2024-09-14 00:00", 10, 12, 9, 11, 1),
            ("2024-09-14 01:00", 11, 15, 10, 14, 2),
            ("2024-09-14 02:00", 14, 14, 8, 9, 3),
            ("2024-09-14 03:00", 9, 10, 8.5, 9.5, 4),
            ("2024-09-14 04:00", 9.5, 11, 9, 10, 5),
            ("2024-09-14 05:00", 10, 10, 7, 8, 6),
            ("2024-09-14 06:00", 8, 9, 8, 8.5, 7),
            ("2024-09-14 07:00", 8.5, 13, 8, 12, 8),
            ("2024-09-14 08:00", 12, 12, 11, 11.5, 9),  # partial last bucket: dropped
        ]
    )
    out = resample(src, "1h", "4h")
    expected = frame(
        [
            ("2024-09-14 00:00", 10, 15, 8, 9.5, 10),
            ("2024-09-14 04:00", 9.5, 13, 7, 12, 26),
        ]
    )
    pd.testing.assert_frame_equal(out, expected)


def test_buckets_align_to_the_epoch_and_incomplete_ones_are_dropped() -> None:
    src = hourly(14, start="2024-09-14 02:00")  # 02:00 .. 15:00
    src = src.drop(T("2024-09-14 09:00"))  # a hole inside the 08:00 bucket
    out = resample(src, "1h", "4h")
    # 00:00 lacks 00:00-01:00, 08:00 lacks 09:00, 12:00-15:00 is complete.
    assert list(out.index) == [T("2024-09-14 04:00"), T("2024-09-14 12:00")]
    assert out.loc[T("2024-09-14 12:00")].tolist() == [110.0, 115.0, 109.0, 114.0, 20 + 21 + 22 + 23.0]


def test_same_timeframe_is_a_copy_and_bad_pairs_fail() -> None:
    src = hourly(4)
    pd.testing.assert_frame_equal(resample(src, "1h", "1h"), src)
    with pytest.raises(DataError, match="4h must be a multiple of 3h"):
        resample(src, "3h", "4h")
    with pytest.raises(DataError, match="must be a multiple"):
        resample(src, "4h", "1h")
    with pytest.raises(DataError, match="corrupt 1h candles: 1 duplicate timestamp"):
        resample(pd.concat([src, src.iloc[[0]]]), "1h", "4h")
    with pytest.raises(DataError, match="epoch-aligned"):
        resample(hourly(8, start="2024-09-14 00:30"), "1h", "4h")


@pytest.mark.realdata
def test_matches_pandas_on_real_candles(load_feather) -> None:  # type: ignore[no-untyped-def]
    src = load_feather("ETH", "1h", tail=2000)
    out = resample(src, "1h", "1d")
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    ref = src.resample("1D", label="left", closed="left").agg(agg)
    counts = src["close"].resample("1D").count()
    ref = ref[counts == 24]
    pd.testing.assert_frame_equal(out, ref, check_freq=False, check_index_type=False, check_names=False)
    assert len(out) >= 82


@pytest.mark.realdata
def test_binance_5m_resampled_to_1h_equals_binance_1h(load_feather) -> None:  # type: ignore[no-untyped-def]
    """Our aggregation reproduces the exchange's own hourly candles from its 5-minute ones."""
    five = load_feather("BTC", "5m", tail=12 * 24 * 20)
    hourly_ref = load_feather("BTC", "1h")
    out = resample(five, "5m", "1h")
    common = out.index.intersection(hourly_ref.index)
    assert len(common) >= 24 * 19
    got, ref = out.loc[common], hourly_ref.loc[common]
    assert (got[["open", "high", "low", "close"]] == ref[["open", "high", "low", "close"]]).all().all()
    np.testing.assert_allclose(got["volume"], ref["volume"], rtol=1e-12)
