"""Importers: each format from a tiny file written here, symbol/timeframe from names or options."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
from candle_frames import hourly

from singularity.data.importers import import_file, parse_freqtrade_name
from singularity.errors import DataError

MS0 = 1726272000000  # 2024-09-14 00:00 UTC
H = 3_600_000


def T(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def rows(n: int = 3) -> list[list[float]]:
    return [[MS0 + i * H, 100.0 + i, 102.0 + i, 99.0 + i, 101.0 + i, 10.0 + i] for i in range(n)]


def test_freqtrade_names() -> None:
    assert parse_freqtrade_name("BTC_USDT-1h.feather") == ("BTC/USDT", "1h")
    assert parse_freqtrade_name("x/BTC_USDT_USDT-1h-futures.feather") == ("BTC/USDT:USDT", "1h")
    assert parse_freqtrade_name("ETH_BTC-15m.json.gz") == ("ETH/BTC", "15m")
    assert parse_freqtrade_name("candles.csv") is None
    with pytest.raises(DataError, match="'funding_rate' files are not trade candles"):
        parse_freqtrade_name("BTC_USDT_USDT-8h-funding_rate.feather")
    with pytest.raises(DataError, match="unknown file type"):
        parse_freqtrade_name("BTC_USDT-1h.xlsx")


def test_freqtrade_feather(tmp_path: Path) -> None:
    df = hourly(4)
    path = tmp_path / "BTC_USDT_USDT-1h-futures.feather"
    df.reset_index().rename(columns={"timestamp": "date"}).to_feather(path)
    symbol, tf, out = import_file(path)
    assert (symbol, tf) == ("BTC/USDT:USDT", "1h")
    pd.testing.assert_frame_equal(out, df)


@pytest.mark.parametrize("name", ["SOL_USDT-1h.json", "SOL_USDT-1h.json.gz"])
def test_freqtrade_json(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    text = json.dumps(rows(3))
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    symbol, tf, out = import_file(path)
    assert (symbol, tf) == ("SOL/USDT", "1h")
    assert list(out.index) == [T("2024-09-14 00:00"), T("2024-09-14 01:00"), T("2024-09-14 02:00")]
    assert out.loc[T("2024-09-14 01:00")].tolist() == [101.0, 103.0, 100.0, 102.0, 11.0]


def test_freqtrade_json_malformed(tmp_path: Path) -> None:
    path = tmp_path / "SOL_USDT-1h.json"
    path.write_text(json.dumps([[MS0, 1, 2, 1, 2]]))
    with pytest.raises(DataError, match=r"row 0 is not \[ts_ms, open, high, low, close, volume\]"):
        import_file(path)
    path.write_text("[[1, 2,")
    with pytest.raises(DataError, match="not readable JSON"):
        import_file(path)


def test_cryptodatadownload_csv(tmp_path: Path) -> None:
    # Newest first; the site's unix column went from seconds to milliseconds mid-history.
    lines = [
        "https://www.CryptoDataDownload.com",
        "unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT,tradecount",
        f"{MS0 + 2 * H},2024-09-14 02:00:00,BTCUSDT,102,104,101,103,12,1236,7",
        f"{(MS0 + H) // 1000},2024-09-14 01:00:00,BTCUSDT,101,103,100,102,11,1122,6",
        f"{MS0 // 1000},2024-09-14 00:00:00,BTCUSDT,100,102,99,101,10,1010,5",
    ]
    path = tmp_path / "Binance_BTCUSDT_1h.csv"
    path.write_text("\n".join(lines) + "\n")
    symbol, tf, out = import_file(path)
    assert (symbol, tf) == ("BTC/USDT", "1h")
    assert list(out.index) == [T("2024-09-14 00:00"), T("2024-09-14 01:00"), T("2024-09-14 02:00")]
    assert out["open"].tolist() == [100.0, 101.0, 102.0]
    assert out["volume"].tolist() == [10.0, 11.0, 12.0]  # base-currency volume, as ccxt reports it


def test_cryptodatadownload_daily_name_and_slash_symbol(tmp_path: Path) -> None:
    lines = [
        "https://www.CryptoDataDownload.com",
        "unix,date,symbol,open,high,low,close,Volume ETH,Volume USDT",
        f"{MS0 + 86_400_000},2024-09-15,ETH/USDT,2,3,1,2.5,7,17",
        f"{MS0},2024-09-14,ETH/USDT,1,2,1,2,5,9",
    ]
    path = tmp_path / "Binance_ETHUSDT_d.csv"
    path.write_text("\n".join(lines) + "\n")
    symbol, tf, out = import_file(path)
    assert (symbol, tf, len(out)) == ("ETH/USDT", "1d", 2)
    assert out["volume"].tolist() == [5.0, 7.0]


def test_generic_csv_with_column_map(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "Time,O,H,L,C,Vol\n"
        "2024-09-14T00:00:00Z,1,2,0.5,1.5,3\n"
        "2024-09-14T04:00:00Z,1.5,2.5,1,2,4\n"
        "2024-09-14T08:00:00Z,2,3,1.5,2.5,5\n"
    )
    cmap = {"timestamp": "Time", "open": "O", "high": "H", "low": "L", "close": "C", "volume": "Vol"}
    with pytest.raises(DataError, match="cannot tell the symbol and timeframe from the file name"):
        import_file(path, column_map=cmap)
    symbol, tf, out = import_file(path, symbol="BTC/USDT", timeframe="4h", column_map=cmap)
    assert (symbol, tf) == ("BTC/USDT", "4h")
    assert out["close"].tolist() == [1.5, 2.0, 2.5]
    assert out.index[1] == T("2024-09-14 04:00")
    with pytest.raises(DataError, match=r"mapped columns \['Nope'\] not found"):
        import_file(path, symbol="BTC/USDT", timeframe="4h", column_map={"timestamp": "Nope"})


def test_parquet_with_timestamp_column(tmp_path: Path) -> None:
    df = hourly(3)
    path = tmp_path / "BNB_USDT-1h.parquet"
    df.reset_index().assign(timestamp=lambda d: d["timestamp"].astype("int64") // 10**6).to_parquet(path)
    symbol, tf, out = import_file(path)
    assert (symbol, tf) == ("BNB/USDT", "1h")
    pd.testing.assert_frame_equal(out, df)


def test_options_win_and_wrong_timeframe_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "BTC_USDT-1h.json"
    path.write_text(json.dumps(rows(5)))
    assert import_file(path, symbol="XBT/USD")[0] == "XBT/USD"
    with pytest.raises(DataError, match="candles are 1h apart, not 4h; pass the right --timeframe"):
        import_file(path, timeframe="4h")
    with pytest.raises(DataError, match="malformed symbol"):
        import_file(path, symbol="btcusdt")
    with pytest.raises(DataError, match="no such file"):
        import_file(tmp_path / "ETH_USDT-1h.json")


def test_import_does_not_hide_corruption(tmp_path: Path) -> None:
    data = rows(3)
    data.insert(1, data[1])  # duplicated candle stays for validation to reject
    path = tmp_path / "BTC_USDT-1h.json"
    path.write_text(json.dumps(data))
    _, _, out = import_file(path)
    assert len(out) == 4 and out.index.duplicated().sum() == 1
