"""Files from other sources, as a new user has them: a CryptoDataDownload hourly file (banner,
newest first, '09-AM' dates), a CSV written by ``DataFrame.to_csv`` (timestamps in an unnamed
first column), a truncated feather file; and tables that keep whole symbols in a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from singularity.data.importers import import_file
from singularity.data.store import CandleStore

EXE = [sys.executable, "-m", "singularity"]


def _run(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_") and k != "COLUMNS"}
    return subprocess.run([*EXE, "--data-dir", str(tmp / "store"), *args], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=180)


def _cdd_hourly(path: Path, n: int = 30) -> pd.DatetimeIndex:
    idx = pd.date_range("2019-10-16 04:00", periods=n, freq="1h", tz="UTC")
    rows = ["https://www.CryptoDataDownload.com", "Date,Symbol,Open,High,Low,Close,Volume BTC,Volume USDT"]
    for i, t in enumerate(idx[::-1]):  # the site writes the newest row first
        p = 8000.0 + i
        rows.append(f"{t:%Y-%m-%d %I-%p},BTCUSDT,{p},{p + 5},{p - 5},{p + 1},{10 + i},{(10 + i) * p}")
    path.write_text("\n".join(rows) + "\n")
    return idx


def test_cryptodatadownload_hourly_file_imports_without_flags(tmp_path: Path) -> None:
    src = tmp_path / "Binance_BTCUSDT_1h.csv"
    idx = _cdd_hourly(src)
    sym, tf, df = import_file(src)
    assert (sym, tf) == ("BTC/USDT", "1h")
    assert df.index.equals(idx.rename("timestamp").as_unit(df.index.unit))
    assert df["open"].iloc[-1] == 8000.0 and df["volume"].iloc[-1] == 10.0  # newest row, base volume
    r = _run(tmp_path, "data", "import", str(src))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no pandas warning leaks
    stored = CandleStore(tmp_path / "store").read("binance", "BTC/USDT", "1h")
    assert len(stored) == 30 and stored.index[0] == idx[0]


def test_a_to_csv_file_imports_with_symbol_timeframe_exchange_only(tmp_path: Path) -> None:
    idx = pd.date_range("2024-01-01", periods=50, freq="1h", tz="UTC")
    close = 100 + np.arange(50.0)
    frame = pd.DataFrame({"open": close - 0.5, "high": close + 1, "low": close - 1, "close": close,
                          "volume": 1.0}, index=idx)
    src = tmp_path / "prices.csv"
    frame.to_csv(src)  # header ',open,high,...': the index column has no name
    r = _run(tmp_path, "data", "import", str(src), "--symbol", "ETH/USDT", "--timeframe", "1h",
             "--exchange", "kraken")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    stored = CandleStore(tmp_path / "store").read("kraken", "ETH/USDT", "1h")
    np.testing.assert_array_equal(stored["close"].to_numpy(), close)
    assert stored.index[0] == idx[0]


def test_a_truncated_feather_file_is_one_line(tmp_path: Path) -> None:
    idx = pd.date_range("2024-01-01", periods=500, freq="1h", tz="UTC")
    frame = pd.DataFrame({"date": idx, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 3.0})
    path = tmp_path / "BTC_USDT-1h.feather"
    frame.to_feather(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    r = _run(tmp_path, "data", "import", str(path))
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "BTC_USDT-1h.feather" in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store").rglob("*.parquet"))


def test_tables_keep_whole_symbols_in_a_pipe(tmp_path: Path) -> None:
    store = CandleStore(tmp_path / "store")
    idx = pd.date_range("2024-01-01", periods=30, freq="1h", tz="UTC", name="timestamp")
    frame = pd.DataFrame({"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 3.0}, index=idx)
    for sym in ("VIRTUAL/USDT", "1000SATS/USDT", "BTC/USDT:USDT"):
        store.write("binanceusdm", sym, "1h", frame)
    r = _run(tmp_path, "data", "list")
    assert r.returncode == 0, r.stderr
    for sym in ("VIRTUAL/USDT", "1000SATS/USDT", "BTC/USDT:USDT", "binanceusdm"):
        assert sym in r.stdout, r.stdout
    assert "…" not in r.stdout
