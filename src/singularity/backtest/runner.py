"""The pandas-facing wrapper around ``kernel.simulate``: input checks, labelled outputs, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from singularity.backtest.kernel import bar_returns, simulate
from singularity.backtest.metrics import compute_metrics
from singularity.errors import ConfigError, DataError
from singularity.timeframes import periods_per_year, timeframe_delta

TRADE_COLUMNS = (
    "entry_time",
    "exit_time",
    "entry_bar",
    "exit_bar",
    "side",
    "size",
    "entry_price",
    "exit_price",
    "pnl",
    "return",
    "fees",
    "funding",
    "is_open",
)


@dataclass(frozen=True)
class BacktestResult:
    """Outputs of ``run``, all indexed by the candles' timestamps (bar open times).

    ``returns``: net per-bar return (first bar 0); ``equity``: account value at each close;
    ``positions``: weight actually held at each close (after fills, fees and drift);
    ``turnover``: traded notional / equity per bar; ``fees``: fees paid per bar (currency);
    ``trades``: one row per trade (see ``TRADE_COLUMNS``; ``side`` is +1 long / -1 short, prices
    include slippage, ``pnl`` is net of fees and funding, ``return`` = pnl / entry notional; an
    ``is_open`` trade is marked at the last close); ``metrics``: ``compute_metrics`` figures.
    """

    returns: pd.Series
    equity: pd.Series
    positions: pd.Series
    turnover: pd.Series
    fees: pd.Series
    trades: pd.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)


def _check_candles(candles: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(candles, pd.DataFrame):
        raise DataError(f"candles must be a pandas DataFrame, got {type(candles).__name__}")
    idx = candles.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None or str(idx.tz) != "UTC":
        raise DataError(
            "candles need a UTC DatetimeIndex of bar open times (the canonical candle frame)"
        )
    if not idx.is_monotonic_increasing or idx.has_duplicates:
        raise DataError(
            "candle timestamps must be strictly increasing (sort and de-duplicate them first)"
        )
    missing = [c for c in ("open", "close") if c not in candles.columns]
    if missing:
        raise DataError(
            f"candles lack column(s) {missing}; expected open, high, low, close, volume"
        )
    prices = candles[["open", "close"]].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(prices) | (prices <= 0.0)
    if bad.any():
        at = idx[np.nonzero(bad.any(axis=1))[0][0]]
        raise DataError(
            f"candles have a non-finite or non-positive open/close at {at}; validate them first"
        )
    return np.ascontiguousarray(prices[:, 0]), np.ascontiguousarray(prices[:, 1])


def _aligned(values: pd.Series | np.ndarray, index: pd.DatetimeIndex, what: str) -> np.ndarray:
    if isinstance(values, pd.Series):
        if len(values) != len(index) or not values.index.equals(index):
            raise DataError(
                f"{what} has {len(values)} rows that do not match the {len(index)} candle timestamps; "
                f"index it by the candles' index (e.g. {what}.reindex(candles.index))"
            )
        values = values.to_numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != len(index):
        raise DataError(
            f"{what} has length {arr.shape[0] if arr.ndim else 0} but there are {len(index)} candles"
        )
    return np.ascontiguousarray(arr)


def _funding_array(funding: pd.Series | np.ndarray, index: pd.DatetimeIndex) -> np.ndarray:
    """Funding rates per bar: a Series may list only the funding times (other bars pay 0)."""
    if isinstance(funding, pd.Series):
        extra = funding.index.difference(index)
        if len(extra):
            raise DataError(
                f"funding has {len(extra)} timestamp(s) not among the candles, first {extra[0]}"
            )
        funding = funding.reindex(index)
    arr = _aligned(funding, index, "funding")
    if not np.isfinite(np.nan_to_num(arr)).all():
        raise DataError("funding rates must be finite")
    return np.nan_to_num(arr, nan=0.0)


def _trades_frame(
    trades_i: np.ndarray,
    trades_f: np.ndarray,
    index: pd.DatetimeIndex,
    fill_offset: pd.Timedelta,
    bar: pd.Timedelta,
) -> pd.DataFrame:
    """Fill times are bar open times (open fills) or bar close times (close fills)."""
    entry_bar, exit_bar = trades_i[:, 0], trades_i[:, 1]
    size, entry_price = trades_f[:, 0], trades_f[:, 1]
    is_open = trades_i[:, 3].astype(bool)
    # an open trade "exits" at the last close (its mark), not at a fill
    exit_time = (index[exit_bar] + fill_offset).where(~is_open, index[exit_bar] + bar)
    notional = size * entry_price
    data = {
        "entry_time": index[entry_bar] + fill_offset,
        "exit_time": exit_time,
        "entry_bar": entry_bar,
        "exit_bar": exit_bar,
        "side": trades_i[:, 2],
        "size": size,
        "entry_price": entry_price,
        "exit_price": trades_f[:, 2],
        "pnl": trades_f[:, 3],
        "return": np.divide(
            trades_f[:, 3], notional, out=np.zeros_like(notional), where=notional > 0
        ),
        "fees": trades_f[:, 4],
        "funding": trades_f[:, 5],
        "is_open": is_open,
    }
    return pd.DataFrame(data, columns=list(TRADE_COLUMNS))


def run(
    candles: pd.DataFrame,
    positions: pd.Series | np.ndarray,
    *,
    timeframe: str,
    fee_bps: float,
    slippage_bps: float,
    fill: Literal["open", "close"] = "open",
    funding: pd.Series | np.ndarray | None = None,
    initial_equity: float = 1.0,
) -> BacktestResult:
    """Backtest target ``positions`` (fraction of equity in [-1, 1], decided at each bar's close,
    NaN = flat) on ``candles``; fills at the next bar's ``fill`` price. Accounting: see
    ``singularity.backtest.kernel``. ``fee_bps`` and ``slippage_bps`` are per side.
    Gaps in the candles stay gaps: a target fills at the next candle present, after the gap.
    ``funding`` (per-bar rate, long pays when positive) may be a Series listing only the
    funding times, or an array as long as the candles.

    >>> import pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC", name="timestamp")
    >>> c = pd.DataFrame({"open": [100.0, 100, 110, 121], "high": 130.0, "low": 90.0,
    ...                   "close": [100.0, 110, 121, 121], "volume": 1.0}, index=idx)
    >>> res = run(c, [1.0, 1.0, 0.0, 0.0], timeframe="1h", fee_bps=0, slippage_bps=0)
    >>> res.equity.round(6).tolist(), len(res.trades)
    ([1.0, 1.1, 1.21, 1.21], 1)
    """
    open_, close = _check_candles(candles)
    index = candles.index
    ppy = periods_per_year(timeframe)  # raises ConfigError on a bad string
    for name, value in (("fee_bps", fee_bps), ("slippage_bps", slippage_bps)):
        if not np.isfinite(value) or value < 0:
            raise ConfigError(
                f"{name} must be a finite number >= 0 (basis points per side), got {value}"
            )
    if fill not in ("open", "close"):
        raise ConfigError(f"fill must be 'open' or 'close', got {fill!r}")
    if not np.isfinite(initial_equity) or initial_equity <= 0:
        raise ConfigError(f"initial_equity must be > 0, got {initial_equity}")
    target = _aligned(positions, index, "positions")
    outside = np.abs(np.nan_to_num(target)) > 1.0
    if outside.any():
        i = int(np.nonzero(outside)[0][0])
        raise DataError(
            f"positions must lie in [-1, 1] (fraction of equity), got {target[i]} at {index[i]}; "
            "scale or clip them first"
        )
    fund = np.empty(0) if funding is None else _funding_array(funding, index)

    ret, eq, held, turn, fees, trades_i, trades_f, n_trades = simulate(
        open_,
        close,
        target,
        fee_bps / 1e4,
        slippage_bps / 1e4,
        fill == "open",
        fund,
        float(initial_equity),
    )
    bar = timeframe_delta(timeframe)
    fill_offset = pd.Timedelta(0) if fill == "open" else bar
    trades = _trades_frame(trades_i[:n_trades], trades_f[:n_trades], index, fill_offset, bar)
    metrics = compute_metrics(
        ret, periods_per_year=ppy, positions=held, turnover=turn, trade_pnl=trades["pnl"].to_numpy()
    )
    return BacktestResult(
        returns=pd.Series(ret, index=index, name="returns"),
        equity=pd.Series(eq, index=index, name="equity"),
        positions=pd.Series(held, index=index, name="positions"),
        turnover=pd.Series(turn, index=index, name="turnover"),
        fees=pd.Series(fees, index=index, name="fees"),
        trades=trades,
        metrics=metrics,
    )


def net_returns(candles: pd.DataFrame, target: np.ndarray | pd.Series, cost_rate: float, *,
                fill_on_open: bool = True, short_rate: float = 0.0) -> np.ndarray:
    """Net per-bar returns of ``target`` on ``candles`` through the lean kernel
    (``bar_returns``): fee and slippage folded into ``cost_rate`` per unit of traded notional.
    ``short_rate`` is charged per bar on a short (see the kernel). For loops that score many
    position series; ``run`` gives the full accounting."""
    return bar_returns(candles["open"].to_numpy(np.float64), candles["close"].to_numpy(np.float64),
                       np.asarray(target, dtype=np.float64), float(cost_rate), fill_on_open, float(short_rate))

