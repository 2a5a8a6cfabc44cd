"""Shared fixtures. Real-data tests read ../shared/data: they skip where it is absent,
and fail under CI (CI=true), where its absence is a broken set-up, not a reason to skip."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from postgres_cluster import PostgresCluster, find_bin
from singularity.data.importers import read_freqtrade_feather

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SINGULARITY_SHARED_DATA", REPO.parent / "shared" / "data"))
BINANCE_DIR = SHARED_DATA / "binance-spot-2024-2026"
CORE8 = ("BTC", "ETH", "SOL", "XRP", "BNB", "DOGE", "ADA", "LTC")


def _skip_or_fail(msg: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {msg}")
    pytest.skip(msg)


def _require_shared() -> Path:
    if BINANCE_DIR.is_dir():
        return BINANCE_DIR
    _skip_or_fail(f"real candles not found at {BINANCE_DIR} (../shared/data beside the repository)")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throw-away PostgreSQL server on a unix socket (skips where PostgreSQL is not installed,
    fails under CI=true); stopped and removed at the end of the session."""
    bindir = find_bin()
    if bindir is None:
        _skip_or_fail("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; "
                      "Debian package 'postgresql')")
        raise AssertionError("unreachable")
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """SQLAlchemy URL of the throw-away server's 'postgres' database."""
    return postgres_cluster.url("postgres")


@pytest.fixture()
def postgres_db(postgres_cluster: PostgresCluster) -> str:
    """SQLAlchemy URL of a fresh, empty database on the throw-away server (one per test)."""
    return postgres_cluster.create_database()


@pytest.fixture(scope="session")
def binance_dir() -> Path:
    """Folder of freqtrade feather files; skips (or fails under CI) where absent."""
    return _require_shared()


@pytest.fixture(scope="session")
def load_feather(binance_dir: Path):
    """``load_feather('BTC', '1h', tail=5000)`` -> canonical OHLCV frame (UTC DatetimeIndex)."""

    def load(base: str, timeframe: str = "1h", tail: int | None = None) -> pd.DataFrame:
        df = read_freqtrade_feather(binance_dir / f"{base}_USDT-{timeframe}.feather")
        return df.iloc[-tail:] if tail else df

    return load
