"""Monthly partitions, the O(new rows) append log, range reads that open only the months they
need, and the migration of stores written in the earlier one-file layout."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from candle_frames import hourly

from singularity.data import series_files as sf
from singularity.data.schema import validate_candles
from singularity.data.store import META_KEY, CandleStore, _frame_to_table
from singularity.errors import CandleValidationError


def T(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def _files(path: Path) -> dict[str, int]:
    return {f.name: f.stat().st_mtime_ns for f in path.iterdir()}


def test_one_parquet_file_per_month(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    df = hourly(24 * 70, start="2024-01-20 00:00")  # Jan 20 .. Mar 29
    path = store.write("binance", "BTC/USDT", "1h", df).path
    assert sorted(p.name[:7] for p in path.glob("*.parquet")) == ["2024-01", "2024-02", "2024-03"]
    pd.testing.assert_frame_equal(store.read("binance", "BTC/USDT", "1h"), df)


def test_a_range_read_opens_only_the_months_it_needs(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    df = hourly(24 * 70, start="2024-01-20 00:00")
    path = store.write("binance", "BTC/USDT", "1h", df).path
    for p in path.glob("2024-0[13].*.parquet"):
        p.write_bytes(b"damaged")  # January and March: unreadable
    out = store.read("binance", "BTC/USDT", "1h", start="2024-02-03", end="2024-02-05 12:00")
    pd.testing.assert_frame_equal(out, df.loc["2024-02-03":"2024-02-05 11:00"])


def test_an_append_after_the_last_candle_writes_only_the_log(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    df = hourly(24 * 40, start="2024-01-01 00:00")
    path = store.write("binance", "BTC/USDT", "1h", df).path
    parts = {n: t for n, t in _files(path).items() if n.endswith(".parquet")}
    manifest = (path / sf.MANIFEST).read_bytes()
    nxt = hourly(1, start=str(df.index[-1].tz_localize(None) + pd.Timedelta(hours=1)), base=7.0)
    rep = store.write("binance", "BTC/USDT", "1h", nxt)
    assert (rep.rows_before, rep.rows_after, rep.added, rep.written) == (960, 961, 1, True)
    assert {n: t for n, t in _files(path).items() if n.endswith(".parquet")} == parts
    assert (path / sf.MANIFEST).read_bytes() == manifest  # nothing rewritten: the log grew
    later = hourly(2, start=str(nxt.index[0].tz_localize(None) + pd.Timedelta(hours=3)), base=9.0)
    rep = store.write("binance", "BTC/USDT", "1h", later)  # a gap of two candles
    assert len(rep.validation.gaps) == 1 and rep.validation.missing_candles == 2
    want = pd.concat([df, nxt, later])
    pd.testing.assert_frame_equal(store.read("binance", "BTC/USDT", "1h"), want)
    (entry,) = store.entries()
    assert (entry.rows, entry.last, entry.gaps, entry.missing) == (963, want.index[-1], 1, 2)
    # a write into the past folds the log into the months: same candles, no log left
    store.write("binance", "BTC/USDT", "1h", hourly(1, start="2024-01-01 05:00", base=3.0))
    want.iloc[5] = hourly(1, start="2024-01-01 05:00", base=3.0).iloc[0]
    pd.testing.assert_frame_equal(store.read("binance", "BTC/USDT", "1h"), want)
    assert not list(path.glob("log.*"))


def test_an_off_grid_append_is_rejected_and_changes_nothing(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    path = store.write("binance", "BTC/USDT", "1h", hourly(5)).path
    before = _files(path)
    for start in ("2024-09-14 05:30", "2024-10-02 00:30"):  # same month, and a later month
        with pytest.raises(CandleValidationError, match="off the timeframe grid"):
            store.write("binance", "BTC/USDT", "1h", hourly(1, start=start))
    assert _files(path) == before


def test_a_torn_append_is_ignored_and_cut_off_by_the_next(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    path = store.write("binance", "BTC/USDT", "1h", hourly(5)).path
    a, b = hourly(1, start="2024-09-14 05:00"), hourly(1, start="2024-09-14 06:00")
    store.write("binance", "BTC/USDT", "1h", a)
    (log,) = path.glob("log.*.bin")
    with open(log, "ab") as fh:  # a crash mid-append: half a batch
        fh.write(b"\x01\x00\x00\x00\x00\x00\x00\x00" + b"\x07" * 20)
    assert len(store.read("binance", "BTC/USDT", "1h")) == 6
    store.write("binance", "BTC/USDT", "1h", b)
    pd.testing.assert_frame_equal(store.read("binance", "BTC/USDT", "1h"), pd.concat([hourly(5), a, b]))


def test_a_one_file_store_is_migrated_on_first_open(tmp_path: Path) -> None:
    """A series written by the earlier layout (one Parquet file, summary in its metadata)."""
    df = hourly(24 * 50, start="2024-02-15 00:00").drop(index=[T("2024-03-02 10:00")])
    legacy = tmp_path / "ohlcv" / "binance" / "ETH_USDT-1h.parquet"
    legacy.parent.mkdir(parents=True)
    pq.write_table(_frame_to_table(df, "binance", "ETH/USDT", "1h", validate_candles(df, "1h")), legacy)
    assert json.loads(pq.read_metadata(legacy).metadata[META_KEY])["rows"] == len(df)

    store = CandleStore(tmp_path)
    assert not legacy.exists()
    path = tmp_path / "ohlcv" / "binance" / "ETH_USDT-1h"
    assert sorted(p.name[:7] for p in path.glob("*.parquet")) == ["2024-02", "2024-03", "2024-04"]
    pd.testing.assert_frame_equal(store.read("binance", "ETH/USDT", "1h"), df)
    (entry,) = store.entries()
    assert (entry.symbol, entry.rows, entry.gaps, entry.missing) == ("ETH/USDT", len(df), 1, 1)
    assert CandleStore(tmp_path).entries() == [entry]  # a second open changes nothing


def test_the_append_log_gets_the_mode_of_the_umask(tmp_path: Path) -> None:
    import os
    import stat

    store = CandleStore(tmp_path)
    store.write("binance", "BTC/USDT", "1h", hourly(3))
    old = os.umask(0o002)
    try:
        path = store.write("binance", "BTC/USDT", "1h", hourly(1, start="2024-09-14 03:00")).path
    finally:
        os.umask(old)
    (log,) = path.glob("log.*.bin")
    assert stat.S_IMODE(log.stat().st_mode) == 0o664


def test_read_arrays_gives_the_range_read_as_plain_arrays(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    df = hourly(24 * 40, start="2024-09-20 00:00")
    store.write("binance", "BTC/USDT", "1h", df.iloc[:-5])
    for i in range(-5, 0):  # appended after the last candle: the log
        store.write("binance", "BTC/USDT", "1h", df.iloc[[i]])
    for start, end in [(None, None), ("2024-10-01 05:00", "2024-10-29 21:00"), (df.index[-3], None),
                       (df.index[-8], df.index[-2]), ("2030-01-01", None)]:
        frame = store.read("binance", "BTC/USDT", "1h", start, end)
        t, cols = store.read_arrays("binance", "BTC/USDT", "1h", start, end)
        assert t.tolist() == frame.index.as_unit("ns").asi8.tolist()
        for c in frame.columns:
            assert cols[c].tolist() == frame[c].tolist()


def test_range_bounds_keep_their_nanoseconds(tmp_path: Path) -> None:
    # pyarrow turns a pandas Timestamp filter into a Python datetime (microseconds): start
    # T + 1 ns used to read the candle at T, and end U + 1 ns to leave U out
    store = CandleStore(tmp_path)
    df = hourly(24 * 40, start="2024-01-01 00:00")
    store.write("binance", "BTC/USDT", "1h", df)
    ns = pd.Timedelta(1, "ns")
    t, u = df.index[100], df.index[200]
    out = store.read("binance", "BTC/USDT", "1h", start=t + ns, end=u + ns)
    pd.testing.assert_frame_equal(out, df.iloc[101:201])
    times, _ = store.read_arrays("binance", "BTC/USDT", "1h", start=t + ns, end=u + ns)
    assert times[0] == df.index[101].value and times[-1] == u.value and len(times) == 100


def test_a_polling_reader_reads_only_the_new_log_batches_and_sees_every_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that reads again and again (the engine's regime worker) keeps the manifest and
    the log rows it read: an append costs a read of the new batch only (the whole log is not
    read again), and what it reads equals a fresh store's read after appends, a torn batch,
    its completion, and a rewrite of the months (a new manifest and log)."""
    writer, reader = CandleStore(tmp_path), CandleStore(tmp_path)
    df = hourly(24 * 3, start="2024-01-30 00:00")  # two months
    path = writer.write("binance", "BTC/USDT", "1h", df).path
    whole_reads = []
    real = sf.read_log
    monkeypatch.setattr(sf, "read_log", lambda p: whole_reads.append(p) or real(p))

    def same() -> None:
        for start, end in ((None, None), ("2024-02-01 05:00", None), ("2024-02-02 01:00", "2024-02-02 04:00")):
            want = CandleStore(tmp_path).read("binance", "BTC/USDT", "1h", start, end)
            pd.testing.assert_frame_equal(reader.read("binance", "BTC/USDT", "1h", start, end), want)

    same()
    assert len(whole_reads) == 4  # the reader's first read, then one per fresh store
    t = df.index[-1].tz_localize(None)
    for i in range(1, 4):
        writer.write("binance", "BTC/USDT", "1h", hourly(1, start=str(t + pd.Timedelta(hours=i)), base=50.0 + i))
        whole_reads.clear()
        ts, cols = reader.read_arrays("binance", "BTC/USDT", "1h", start=str(t + pd.Timedelta(hours=i)))
        assert not whole_reads  # only the new batch was read
        assert ts.tolist() == [(t + pd.Timedelta(hours=i)).value] and cols["close"].tolist() == [51.0 + i]
        same()
    (log,) = path.glob("log.*.bin")
    with open(log, "ab") as fh:  # an append caught half-written
        fh.write(b"\x01\x00\x00\x00\x00\x00\x00\x00" + b"\x07" * 20)
    same()
    writer.write("binance", "BTC/USDT", "1h", hourly(1, start=str(t + pd.Timedelta(hours=4)), base=60.0))
    same()  # the torn bytes were cut and the batch written where they began
    assert len(reader.read("binance", "BTC/USDT", "1h")) == 24 * 3 + 4
    writer.write("binance", "BTC/USDT", "1h", hourly(1, start="2024-01-30 05:00", base=3.0))  # the past
    assert not list(path.glob("log.*"))
    same()
    assert reader.read("binance", "BTC/USDT", "1h").loc["2024-01-30 05:00", "close"] == 4.0
