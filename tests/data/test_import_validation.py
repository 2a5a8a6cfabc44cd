"""An import validates the candles once, not once more per month (issue 15: re-checking each
month of a fresh series was most of the partitioned store's import time, 12.3 s against 5.0 s
for the one-file layout), and the months still come out exactly as written; a damaged
one-file store is still refused on migration."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from candle_frames import hourly

from singularity.data import schema
from singularity.data.schema import validate_candles
from singularity.data.store import META_KEY, CandleStore, _frame_to_table
from singularity.errors import DataError


def test_a_fresh_series_is_validated_once_and_read_back_exactly(tmp_path: Path, monkeypatch) -> None:
    calls: list[int] = []
    real = schema.validate_candles

    def counting(df, timeframe):  # type: ignore[no-untyped-def]
        calls.append(len(df))
        return real(df, timeframe)

    monkeypatch.setattr(schema, "validate_candles", counting)
    df = hourly(24 * 95, start="2024-01-20 00:00")  # four months
    store = CandleStore(tmp_path)
    store.write("binance", "BTC/USDT", "1h", df)
    assert calls == [len(df)]  # before: one more call per month ([2280, 288, 696, 744, 552])
    path = tmp_path / "ohlcv" / "binance" / "BTC_USDT-1h"
    assert sorted(p.name[:7] for p in path.glob("*.parquet")) == ["2024-01", "2024-02", "2024-03", "2024-04"]
    pd.testing.assert_frame_equal(store.read("binance", "BTC/USDT", "1h"), df)
    # a write onto stored months still merges and checks them
    calls.clear()
    store.write("binance", "BTC/USDT", "1h", hourly(3, start="2024-02-10 00:00", base=200.0))
    assert len(calls) == 2


def test_a_damaged_one_file_store_is_refused_on_migration(tmp_path: Path) -> None:
    df = hourly(24 * 40, start="2024-02-15 00:00")
    meta = validate_candles(df, "1h")
    bad = df.copy()
    bad.iloc[100, bad.columns.get_loc("high")] = 1.0  # high below the open: damaged by hand
    legacy = tmp_path / "ohlcv" / "binance" / "ETH_USDT-1h.parquet"
    legacy.parent.mkdir(parents=True)
    pq.write_table(_frame_to_table(bad, "binance", "ETH/USDT", "1h", meta), legacy)
    assert json.loads(pq.read_metadata(legacy).metadata[META_KEY])["rows"] == len(df)
    with pytest.raises(DataError, match="ETH/USDT 1h"):
        CandleStore(tmp_path)._migrate(legacy)
    assert legacy.exists() and not (tmp_path / "ohlcv" / "binance" / "ETH_USDT-1h").exists()


def test_a_fresh_series_syncs_its_directory_once_before_the_commit(tmp_path: Path, monkeypatch) -> None:
    """Each month file is fsynced, the directory once after all of them are renamed in and
    before the manifest (the commit) names them; before, the directory after every month."""
    import os

    from singularity import storage

    events: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        events.append("dir" if os.path.isdir(target) else ("manifest" if ".manifest.json." in target else "file"))
        real(fd)

    monkeypatch.setattr(storage.os, "fsync", fsync)
    CandleStore(tmp_path).write("binance", "BTC/USDT", "1h", hourly(24 * 95, start="2024-01-20 00:00"))
    assert events == ["file"] * 4 + ["dir", "manifest", "dir"], events
