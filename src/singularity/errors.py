"""The exception hierarchy. Every error a user can cause is a ``SingularityError``;
the CLI prints its message on one line and exits with its ``exit_code``.

    SingularityError
    ├── ConfigError          bad settings file, unknown key, wrong type (exit 2)
    ├── DataError            malformed or corrupt market data, unknown symbol, missing data
    │   └── CandleValidationError   candles that fail the OHLCV checks (carries the report)
    └── ExchangeError        the exchange could not be reached or answered nonsense
"""

from __future__ import annotations

from typing import Any


class SingularityError(Exception):
    """Base of every error the user can cause and fix."""

    exit_code: int = 1


class ConfigError(SingularityError):
    exit_code = 2


class DataError(SingularityError):
    exit_code = 1


class CandleValidationError(DataError):
    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


class ExchangeError(SingularityError):
    exit_code = 1
