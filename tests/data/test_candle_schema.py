"""Validation of the canonical candle frame: every check on tiny frames with exact answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from candle_frames import frame, hourly

from singularity.data.schema import (
    OHLCV_COLUMNS,
    ensure_valid,
    gap_mask,
    to_canonical,
    validate_candles,
)
from singularity.errors import CandleValidationError, DataError


def T(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def test_valid_frame_reports_nothing() -> None:
    r = validate_candles(hourly(5), "1h")
    assert r.ok and r.rows == 5
    assert r.problems() == []
    assert r.gaps == () and r.missing_candles == 0
    assert r.first == T("2024-09-14 00:00") and r.last == T("2024-09-14 04:00")
    assert r.summary() == "ok"


def test_empty_frame_is_valid() -> None:
    r = validate_candles(hourly(0), "1h")
    assert r.ok and r.rows == 0 and r.first is None


def test_duplicate_timestamps_listed_once_each() -> None:
    df = hourly(4)
    df = pd.concat([df, df.iloc[[1, 1, 3]]]).sort_index(kind="stable")
    r = validate_candles(df, "1h")
    assert r.duplicates == (T("2024-09-14 01:00"), T("2024-09-14 03:00"))
    assert r.out_of_order == ()
    assert not r.ok


def test_wrong_order() -> None:
    df = hourly(4).iloc[[0, 2, 1, 3]]
    r = validate_candles(df, "1h")
    assert r.out_of_order == (T("2024-09-14 01:00"),)
    assert r.duplicates == () and r.gaps == ()  # gaps are judged on the sorted timestamps


def test_off_grid_spacing() -> None:
    df = frame([("2024-09-14 00:00", 1, 2, 1, 1, 1), ("2024-09-14 01:30", 1, 2, 1, 1, 1)])
    assert validate_candles(df, "1h").misaligned == (T("2024-09-14 01:30"),)


def test_nan_and_inf_are_reported_once_as_non_finite() -> None:
    df = hourly(4)
    df.iloc[1, 3] = np.nan  # close
    df.iloc[2, 4] = np.inf  # volume
    df.iloc[3, 1] = -np.inf  # high: not also counted as "high below"
    r = validate_candles(df, "1h")
    assert r.non_finite == (T("2024-09-14 01:00"), T("2024-09-14 02:00"), T("2024-09-14 03:00"))
    assert r.high_below == () and r.low_above == () and r.non_positive == ()


def test_high_below_max_open_close_and_below_low() -> None:
    df = frame(
        [
            ("2024-09-14 00:00", 10, 11, 9, 10.5, 1),  # fine
            ("2024-09-14 01:00", 10, 10.4, 9, 10.5, 1),  # high < close
            ("2024-09-14 02:00", 10.6, 10.5, 9, 10.1, 1),  # high < open
            ("2024-09-14 03:00", 10, 10, 10, 10, 1),  # flat candle is fine
        ]
    )
    r = validate_candles(df, "1h")
    assert r.high_below == (T("2024-09-14 01:00"), T("2024-09-14 02:00"))
    assert r.low_above == ()


def test_low_above_min_open_close() -> None:
    df = frame([("2024-09-14 00:00", 10, 11, 9.5, 9.4, 1), ("2024-09-14 01:00", 10, 11, 9, 10.5, 1)])
    assert validate_candles(df, "1h").low_above == (T("2024-09-14 00:00"),)


def test_non_positive_price_and_negative_volume() -> None:
    df = frame(
        [
            ("2024-09-14 00:00", 0, 1, 0, 1, 1),
            ("2024-09-14 01:00", 1, 1, 1, 1, -0.5),
            ("2024-09-14 02:00", 1, 1, 1, 1, 0),  # zero volume is a real, quiet hour
        ]
    )
    r = validate_candles(df, "1h")
    assert r.non_positive == (T("2024-09-14 00:00"),)
    assert r.negative_volume == (T("2024-09-14 01:00"),)


def test_gaps_are_spans_of_missing_candles_and_allowed() -> None:
    df = hourly(8).iloc[[0, 1, 4, 5, 7]]
    r = validate_candles(df, "1h")
    assert r.gaps == (
        (T("2024-09-14 02:00"), T("2024-09-14 03:00")),
        (T("2024-09-14 06:00"), T("2024-09-14 06:00")),
    )
    assert r.missing_candles == 3
    assert r.ok
    assert ensure_valid(df, "1h").gaps == r.gaps
    assert r.summary() == "2 gaps (3 missing candles, first: 2024-09-14 02:00 UTC .. 2024-09-14 03:00 UTC)"
    assert gap_mask(df, "1h").tolist() == [False, False, True, False, True]


def test_gap_mask_on_empty_frame() -> None:
    assert gap_mask(hourly(0), "1h").tolist() == []


def test_ensure_valid_one_line_message() -> None:
    df = hourly(7)
    df.iloc[5, 1] = df.iloc[5, 3] - 1  # high below close
    df.iloc[6, 1] = df.iloc[6, 0] - 1  # high below open
    df = pd.concat([df.iloc[:4], df.iloc[[3]], df.iloc[4:]])
    with pytest.raises(CandleValidationError) as e:
        ensure_valid(df, "1h", "BTC/USDT")
    assert str(e.value) == (
        "BTC/USDT 1h: 1 duplicate timestamp (2024-09-14 03:00 UTC); "
        "2 candles with high below max(open, close) (first: 2024-09-14 05:00 UTC)"
    )
    assert "\n" not in str(e.value)
    assert e.value.report.duplicates == (T("2024-09-14 03:00"),)


def test_structure_errors_are_data_errors() -> None:
    df = hourly(2)
    with pytest.raises(DataError, match="columns must be exactly"):
        validate_candles(df[["open", "close"]], "1h")
    with pytest.raises(DataError, match="tz-aware"):
        validate_candles(df.tz_localize(None), "1h")
    with pytest.raises(DataError, match="UTC"):
        validate_candles(df.tz_convert("Europe/Berlin"), "1h")
    with pytest.raises(DataError, match="float64"):
        validate_candles(df.astype({"volume": "int64"}), "1h")


def _check_canonical(out: pd.DataFrame) -> None:
    assert tuple(out.columns) == OHLCV_COLUMNS
    assert out.index.name == "timestamp"
    assert str(out.index.dtype) == "datetime64[ns, UTC]"
    assert all(out[c].dtype == np.float64 for c in OHLCV_COLUMNS)


@pytest.mark.parametrize(
    "ts",
    [
        [1726272000000, 1726275600000],  # ms
        [1726272000, 1726275600],  # s
        ["2024-09-14 00:00", "2024-09-14 01:00"],  # naive strings = UTC
        pd.to_datetime(["2024-09-14 02:00", "2024-09-14 03:00"]).tz_localize("Europe/Berlin"),
    ],
)
def test_to_canonical_timestamp_forms(ts: object) -> None:
    raw = pd.DataFrame(
        {"Date": ts, "Open": [1, 2], "High": [2, 3], "Low": [1, 1], "Close": [2, 2], "Volume": [5, 6], "x": 0}
    )
    out = to_canonical(raw)
    _check_canonical(out)
    assert list(out.index) == [T("2024-09-14 00:00"), T("2024-09-14 01:00")]
    assert out["volume"].tolist() == [5.0, 6.0]


def test_to_canonical_keeps_order_and_index_input() -> None:
    df = hourly(3).iloc[[2, 0, 1]]
    out = to_canonical(df.tz_convert("Asia/Tokyo"))
    _check_canonical(out)
    assert out.index.equals(df.index)  # not sorted: disorder is for validation to report


def test_to_canonical_errors() -> None:
    with pytest.raises(DataError, match=r"missing columns \['volume'\]"):
        to_canonical(pd.DataFrame({"timestamp": [1], "open": [1], "high": [1], "low": [1], "close": [1]}))
    with pytest.raises(DataError, match="no timestamp column"):
        to_canonical(pd.DataFrame({c: [1.0] for c in OHLCV_COLUMNS}))
    bad = pd.DataFrame({"timestamp": [1726272000000], **{c: ["x"] for c in OHLCV_COLUMNS}})
    with pytest.raises(DataError, match="column 'open' is not numeric"):
        to_canonical(bad)
