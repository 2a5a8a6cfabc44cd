"""The canonical candle frame and its validation.

Canonical frame: index = ``DatetimeIndex`` tz=UTC named ``timestamp`` (candle OPEN time),
columns exactly ``OHLCV_COLUMNS`` as float64, strictly increasing. Gaps stay gaps (missing
rows); nothing is forward-filled. ``validate_candles`` reports every problem; ``ensure_valid``
rejects corrupt candles (anything but gaps) with a one-line ``CandleValidationError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from singularity.errors import CandleValidationError, DataError
from singularity.timeframes import timeframe_delta

OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
INDEX_NAME = "timestamp"
TIME_UNIT = "ns"
_TIME_COLUMNS = ("timestamp", "date", "datetime", "time", "open_time", "unix")


def format_ts(ts: pd.Timestamp) -> str:
    """``2024-09-14 03:00 UTC`` (seconds only when they are not zero)."""
    fmt = "%Y-%m-%d %H:%M UTC" if ts.second == 0 else "%Y-%m-%d %H:%M:%S UTC"
    return ts.strftime(fmt)


@dataclass(frozen=True)
class ValidationReport:
    """Every problem found in a candle frame; each tuple lists the offending candles' timestamps."""

    timeframe: str
    rows: int
    duplicates: tuple[pd.Timestamp, ...] = ()
    """Timestamps that occur more than once (each listed once)."""
    out_of_order: tuple[pd.Timestamp, ...] = ()
    """Rows whose timestamp is earlier than the row before."""
    misaligned: tuple[pd.Timestamp, ...] = ()
    """Rows whose distance to the previous candle is not a whole number of timeframes."""
    non_finite: tuple[pd.Timestamp, ...] = ()
    """Rows with NaN or inf in any column."""
    high_below: tuple[pd.Timestamp, ...] = ()
    """Rows with high < max(open, close) (or high < low)."""
    low_above: tuple[pd.Timestamp, ...] = ()
    """Rows with low > min(open, close)."""
    non_positive: tuple[pd.Timestamp, ...] = ()
    """Rows with a price <= 0."""
    negative_volume: tuple[pd.Timestamp, ...] = ()
    gaps: tuple[tuple[pd.Timestamp, pd.Timestamp], ...] = ()
    """(first missing candle, last missing candle) of every run of missing candles."""
    missing_candles: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None

    @property
    def ok(self) -> bool:
        """True when nothing is corrupt (gaps are allowed)."""
        return not self.problems()

    def problems(self) -> list[tuple[str, tuple[pd.Timestamp, ...]]]:
        """(description, timestamps) of every corrupt-candle check that failed."""
        checks = [
            ("duplicate timestamp", "duplicate timestamps", self.duplicates),
            ("candle out of order", "candles out of order", self.out_of_order),
            ("candle off the timeframe grid", "candles off the timeframe grid", self.misaligned),
            ("candle with NaN/inf", "candles with NaN/inf", self.non_finite),
            (
                "candle with high below max(open, close)",
                "candles with high below max(open, close)",
                self.high_below,
            ),
            (
                "candle with low above min(open, close)",
                "candles with low above min(open, close)",
                self.low_above,
            ),
            ("candle with a non-positive price", "candles with a non-positive price", self.non_positive),
            ("candle with negative volume", "candles with negative volume", self.negative_volume),
        ]
        out = []
        for one, many, ts in checks:
            if ts:
                out.append((f"{len(ts)} {one if len(ts) == 1 else many}", ts))
        return out

    def problem_text(self) -> str:
        """One line naming every corrupt-candle problem with its first example."""
        return "; ".join(
            f"{desc} ({format_ts(ts[0])})" if len(ts) == 1 else f"{desc} (first: {format_ts(ts[0])})"
            for desc, ts in self.problems()
        )

    def summary(self) -> str:
        """One line: every problem with its first example, then the gaps."""
        parts = [self.problem_text()] if self.problems() else []
        if self.gaps:
            s = "" if len(self.gaps) == 1 else "s"
            start, end = self.gaps[0]
            m = "" if self.missing_candles == 1 else "s"
            parts.append(
                f"{len(self.gaps)} gap{s} ({self.missing_candles} missing candle{m}, "
                f"first: {format_ts(start)} .. {format_ts(end)})"
            )
        return "; ".join(parts) if parts else "ok"


def _check_structure(df: pd.DataFrame) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame of candles, got {type(df).__name__}")
    if not isinstance(df.index, pd.DatetimeIndex) or df.index.tz is None:
        raise DataError("candle index must be a tz-aware DatetimeIndex (use to_canonical)")
    if str(df.index.tz) != "UTC":
        raise DataError(f"candle index must be in UTC, got {df.index.tz}")
    if tuple(df.columns) != OHLCV_COLUMNS:
        raise DataError(f"candle columns must be exactly {list(OHLCV_COLUMNS)}, got {list(df.columns)}")
    bad = [c for c in OHLCV_COLUMNS if df[c].dtype != np.float64]
    if bad:
        raise DataError(f"candle columns must be float64: {bad} are not (use to_canonical)")


def _stamps(index: pd.DatetimeIndex, mask: np.ndarray) -> tuple[pd.Timestamp, ...]:
    return tuple(index[mask])


def validate_candles(df: pd.DataFrame, timeframe: str) -> ValidationReport:
    """Check a canonical frame; never raises for bad candles, only for a wrong structure."""
    _check_structure(df)
    idx = df.index
    n = len(df)
    if n == 0:
        return ValidationReport(timeframe=timeframe, rows=0)
    step = timeframe_delta(timeframe).value  # ns
    t = idx.as_unit(TIME_UNIT).asi8
    dt = np.diff(t)

    dup_mask = idx.duplicated(keep=False)
    duplicates = tuple(pd.DatetimeIndex(idx[dup_mask]).unique().sort_values())
    order_mask = np.concatenate([[False], dt < 0])
    misaligned_mask = np.concatenate([[False], (dt > 0) & (dt % step != 0)])

    values = {c: df[c].to_numpy() for c in OHLCV_COLUMNS}
    o, h, lo, c, v = (values[k] for k in OHLCV_COLUMNS)
    finite = np.isfinite(np.column_stack([o, h, lo, c, v])).all(axis=1)
    with np.errstate(invalid="ignore"):
        # Checks below only judge finite rows; NaN rows are reported once, as non-finite.
        high_below = finite & ((h < np.maximum(o, c)) | (h < lo))
        low_above = finite & (lo > np.minimum(o, c))
        non_positive = finite & ((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0))
        negative_volume = finite & (v < 0)

    # Gaps on the sorted, de-duplicated timestamps so they stay meaningful on a messy frame.
    u = np.unique(t)
    du = np.diff(u)
    gap_at = np.flatnonzero(du > step)
    gaps = tuple(
        (pd.Timestamp(u[i] + step, tz="UTC"), pd.Timestamp(u[i + 1] - step, tz="UTC"))
        for i in gap_at
    )
    missing = int(sum(int(du[i] // step) - 1 for i in gap_at))
    return ValidationReport(
        timeframe=timeframe,
        rows=n,
        duplicates=duplicates,
        out_of_order=_stamps(idx, order_mask),
        misaligned=_stamps(idx, misaligned_mask),
        non_finite=_stamps(idx, ~finite),
        high_below=_stamps(idx, high_below),
        low_above=_stamps(idx, low_above),
        non_positive=_stamps(idx, non_positive),
        negative_volume=_stamps(idx, negative_volume),
        gaps=gaps,
        missing_candles=missing,
        first=pd.Timestamp(u[0], tz="UTC"),
        last=pd.Timestamp(u[-1], tz="UTC"),
    )


def ensure_valid(
    df: pd.DataFrame, timeframe: str, symbol: str | None = None
) -> ValidationReport:
    """Validate and raise ``CandleValidationError`` (one line) when any candle is corrupt."""
    report = validate_candles(df, timeframe)
    if not report.ok:
        label = f"{symbol} {timeframe}" if symbol else timeframe
        raise CandleValidationError(f"{label}: {report.problem_text()}", report)
    return report


def gap_mask(df: pd.DataFrame, timeframe: str) -> pd.Series:
    """True on a bar whose predecessor candle is missing (the first bar is False)."""
    t = df.index.as_unit(TIME_UNIT).asi8
    step = timeframe_delta(timeframe).value
    mask = np.concatenate([[False], np.diff(t) > step]) if len(t) else np.zeros(0, dtype=bool)
    return pd.Series(mask, index=df.index, name="gap")


def _to_utc_index(values: pd.Series | pd.Index, what: str) -> pd.DatetimeIndex:
    """ms/s/us/ns integers (unit inferred from magnitude), strings, naive (=UTC) or aware datetimes."""
    s = pd.Series(values)
    if s.isna().any():
        raise DataError(f"{what}: {int(s.isna().sum())} missing timestamps")
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        if not np.isfinite(s.to_numpy(dtype=float)).all():
            raise DataError(f"{what}: non-finite timestamps")
        mag = float(np.abs(s.to_numpy(dtype=float)).max()) if len(s) else 0.0
        # Seconds until ~5138 AD, then ms, us, ns: the ranges do not overlap for real dates.
        unit = "s" if mag < 1e11 else "ms" if mag < 1e14 else "us" if mag < 1e17 else "ns"
        idx = pd.DatetimeIndex(pd.to_datetime(s.to_numpy(dtype="int64"), unit=unit, utc=True))
    else:
        try:
            parsed = pd.to_datetime(s, utc=False) if not isinstance(s.dtype, pd.DatetimeTZDtype) else s
        except (ValueError, TypeError) as e:
            raise DataError(f"{what}: unreadable timestamps ({e})") from e
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            idx = pd.DatetimeIndex(parsed).tz_convert("UTC")
        else:
            try:
                idx = pd.DatetimeIndex(parsed).tz_localize("UTC")
            except (TypeError, ValueError) as e:
                raise DataError(f"{what}: mixed or unreadable timestamps ({e})") from e
    return idx.as_unit(TIME_UNIT).rename(INDEX_NAME)


def to_canonical(df: pd.DataFrame, *, source: str = "candles") -> pd.DataFrame:
    """Coerce a frame with a timestamp index or column into the canonical candle frame.

    Column names are matched case-insensitively; the time comes from a DatetimeIndex or the
    first of the columns timestamp/date/datetime/time/open_time/unix. Rows are NOT sorted or
    de-duplicated: disorder in a source is a problem for validation to report, not to hide.
    """
    cols = {str(c).strip().lower(): c for c in df.columns}
    missing = [c for c in OHLCV_COLUMNS if c not in cols]
    if missing:
        raise DataError(f"{source}: missing columns {missing} (have {list(df.columns)})")
    if isinstance(df.index, pd.DatetimeIndex):
        idx = _to_utc_index(df.index, source)
    else:
        tcol = next((cols[c] for c in _TIME_COLUMNS if c in cols), None)
        if tcol is None:
            raise DataError(
                f"{source}: no timestamp column (expected one of {list(_TIME_COLUMNS)} or a DatetimeIndex)"
            )
        idx = _to_utc_index(df[tcol], source)
    out = {}
    for c in OHLCV_COLUMNS:
        col = df[cols[c]]
        try:
            out[c] = pd.to_numeric(col, errors="raise").to_numpy(dtype=np.float64)
        except (ValueError, TypeError) as e:
            raise DataError(f"{source}: column {c!r} is not numeric ({e})") from e
    return pd.DataFrame(out, index=idx, columns=list(OHLCV_COLUMNS))
