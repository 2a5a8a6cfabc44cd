"""Timeframe strings (ccxt style: ``1m``, ``15m``, ``1h``, ``4h``, ``1d``, ``1w``)."""

from __future__ import annotations

import re

import pandas as pd

from singularity.errors import ConfigError

_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^([1-9][0-9]*)([mhdw])$")
SECONDS_PER_YEAR = 365 * 86400  # crypto trades every day of the year


def timeframe_seconds(tf: str) -> int:
    """Length of one candle in seconds; raises ``ConfigError`` on an unknown string."""
    m = _PATTERN.match(tf)
    if not m:
        raise ConfigError(
            f"unknown timeframe {tf!r}: expected a number and a unit m/h/d/w, e.g. '15m', '1h', '4h', '1d'"
        )
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def timeframe_delta(tf: str) -> pd.Timedelta:
    return pd.Timedelta(seconds=timeframe_seconds(tf))


def periods_per_year(tf: str) -> float:
    """Bars per year on a 365-day calendar (annualisation factor for Sharpe etc.)."""
    return SECONDS_PER_YEAR / timeframe_seconds(tf)


def is_timeframe(tf: str) -> bool:
    return bool(_PATTERN.match(tf))
