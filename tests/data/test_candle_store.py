"""The Parquet candle store: layout, merge semantics, rejected and interrupted writes.
(Partitions, the append log and the migration of the one-file layout: test_candle_partitions.)"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from candle_frames import hourly

from singularity.data.store import CandleStore, load_universe, symbol_to_filename
from singularity.errors import CandleValidationError, DataError


def T(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def digest(path: Path) -> str:
    """Names, contents and modification times of every file of a series' folder."""
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        h.update(f"{f.name}:{f.stat().st_mtime_ns}:".encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> CandleStore:
    return CandleStore(tmp_path)


def test_layout_and_round_trip(store: CandleStore, tmp_path: Path) -> None:
    df = hourly(5)
    rep = store.write("binance", "BTC/USDT", "1h", df)
    path = tmp_path / "ohlcv" / "binance" / "BTC_USDT-1h"
    assert rep.path == path and (path / "manifest.json").is_file()
    assert [p.name[:8] for p in path.glob("*.parquet")] == ["2024-09."]  # one month
    assert (rep.rows_before, rep.rows_after, rep.added, rep.overlapped, rep.changed) == (0, 5, 5, 0, 0)
    assert rep.written
    out = store.read("binance", "BTC/USDT", "1h")
    pd.testing.assert_frame_equal(out, df)
    assert str(out.index.dtype) == "datetime64[ns, UTC]" and out.index.name == "timestamp"
    assert store.exists("binance", "BTC/USDT", "1h")
    assert not store.exists("binance", "BTC/USDT", "4h")


def test_symbol_file_names() -> None:
    assert symbol_to_filename("BTC/USDT") == "BTC_USDT"
    assert symbol_to_filename("BTC/USDT:USDT") == "BTC_USDT_USDT"
    assert symbol_to_filename("1000PEPE/USDT") == "1000PEPE_USDT"
    with pytest.raises(DataError, match="malformed symbol 'btc-usdt'"):
        symbol_to_filename("btc-usdt")


def test_perpetual_path(store: CandleStore, tmp_path: Path) -> None:
    store.write("binanceusdm", "BTC/USDT:USDT", "1h", hourly(2))
    assert (tmp_path / "ohlcv" / "binanceusdm" / "BTC_USDT_USDT-1h" / "manifest.json").is_file()
    assert [e.symbol for e in store.entries()] == ["BTC/USDT:USDT"]


def test_merge_appends_and_new_value_wins(store: CandleStore) -> None:
    store.write("binance", "BTC/USDT", "1h", hourly(5))  # 00:00 .. 04:00
    newer = hourly(4, start="2024-09-14 03:00", base=500.0)  # 03:00 .. 06:00, different values
    rep = store.write("binance", "BTC/USDT", "1h", newer)
    assert (rep.rows_before, rep.rows_after, rep.added, rep.overlapped, rep.changed) == (5, 7, 2, 2, 2)
    out = store.read("binance", "BTC/USDT", "1h")
    assert len(out) == 7 and out.index.is_monotonic_increasing
    assert out["open"].tolist() == [100.0, 101.0, 102.0, 500.0, 501.0, 502.0, 503.0]


def test_merge_fills_a_hole_and_an_earlier_range(store: CandleStore) -> None:
    full = hourly(6)
    store.write("binance", "BTC/USDT", "1h", full.iloc[[3, 5]])
    rep = store.write("binance", "BTC/USDT", "1h", full.iloc[[0, 1, 4]])
    assert rep.added == 3 and rep.validation.gaps == ((T("2024-09-14 02:00"), T("2024-09-14 02:00")),)
    pd.testing.assert_frame_equal(store.read("binance", "BTC/USDT", "1h"), full.iloc[[0, 1, 3, 4, 5]])


def test_unchanged_write_leaves_file_untouched(store: CandleStore) -> None:
    df = hourly(5)
    path = store.write("binance", "BTC/USDT", "1h", df).path
    before = digest(path)
    rep = store.write("binance", "BTC/USDT", "1h", df.iloc[1:3])
    assert not rep.written and (rep.added, rep.overlapped, rep.changed) == (0, 2, 0)
    assert digest(path) == before


def test_rejected_write_leaves_store_byte_for_byte_unchanged(store: CandleStore) -> None:
    path = store.write("binance", "BTC/USDT", "1h", hourly(5)).path
    before = digest(path)
    bad = hourly(3, start="2024-09-14 05:00")
    bad.iloc[1, 1] = bad.iloc[1, 3] - 1  # high below close
    with pytest.raises(CandleValidationError, match=r"^BTC/USDT 1h: 1 candle with high below max\(open, close\) \(2024-09-14 06:00 UTC\)$"):
        store.write("binance", "BTC/USDT", "1h", bad)
    dup = pd.concat([hourly(2, start="2024-09-14 05:00")] * 2)
    with pytest.raises(CandleValidationError, match="2 duplicate timestamps"):
        store.write("binance", "BTC/USDT", "1h", dup)
    assert digest(path) == before
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")) == [path.name]


def test_merge_that_would_be_corrupt_is_rejected(store: CandleStore) -> None:
    # Each write alone is valid, but half-hour candles do not fit a stored 1h series.
    path = store.write("binance", "BTC/USDT", "1h", hourly(3)).path
    before = digest(path)
    shifted = hourly(2, start="2024-09-14 05:30")
    with pytest.raises(CandleValidationError, match="off the timeframe grid"):
        store.write("binance", "BTC/USDT", "1h", shifted)
    assert digest(path) == before
    with pytest.raises(CandleValidationError):
        store.check_write("binance", "BTC/USDT", "1h", shifted)


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_crash_inside_the_writer_keeps_old_file_and_leaves_no_temp(
    store: CandleStore, monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    path = store.write("binance", "BTC/USDT", "1h", hourly(5)).path
    before = digest(path)
    real = pq.write_table

    def half_then_die(table, where, **kw):  # type: ignore[no-untyped-def]
        real(table.slice(0, 2), where, **kw)  # a partial file exists at the temp path...
        assert Path(where).name.endswith(".tmp")
        raise exc  # ...when the process is interrupted

    monkeypatch.setattr(pq, "write_table", half_then_die)
    with pytest.raises(type(exc)):  # overlapping: the month is rewritten (not an append)
        store.write("binance", "BTC/USDT", "1h", hourly(3, start="2024-09-14 03:00", base=7.0))
    monkeypatch.undo()
    assert digest(path) == before
    assert [p.name for p in path.iterdir() if p.suffix == ".tmp"] == []
    assert len(store.read("binance", "BTC/USDT", "1h")) == 5


def test_entries_come_from_metadata(store: CandleStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write("binance", "ETH/USDT", "1h", hourly(8).iloc[[0, 1, 4, 5, 7]])
    store.write("binance", "BTC/USDT", "4h", hourly(1))
    store.write("binance", "BTC/USDT", "1h", hourly(3))
    store.write("kraken", "BTC/USD", "1d", hourly(1))

    def no_candle_reads(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("entries() must not read candles")

    monkeypatch.setattr(pq, "read_table", no_candle_reads)
    got = [(e.exchange, e.symbol, e.timeframe, e.rows, e.first, e.last, e.gaps, e.missing) for e in store.entries()]
    assert got == [
        ("binance", "BTC/USDT", "1h", 3, T("2024-09-14 00:00"), T("2024-09-14 02:00"), 0, 0),
        ("binance", "BTC/USDT", "4h", 1, T("2024-09-14 00:00"), T("2024-09-14 00:00"), 0, 0),
        ("binance", "ETH/USDT", "1h", 5, T("2024-09-14 00:00"), T("2024-09-14 07:00"), 2, 3),
        ("kraken", "BTC/USD", "1d", 1, T("2024-09-14 00:00"), T("2024-09-14 00:00"), 0, 0),
    ]
    assert store.last_timestamp("binance", "ETH/USDT", "1h") == T("2024-09-14 07:00")
    assert store.last_timestamp("binance", "SOL/USDT", "1h") is None


def test_read_window_is_half_open(store: CandleStore) -> None:
    store.write("binance", "BTC/USDT", "1h", hourly(6))
    out = store.read("binance", "BTC/USDT", "1h", start="2024-09-14 01:00", end=T("2024-09-14 04:00"))
    assert list(out.index) == [T("2024-09-14 01:00"), T("2024-09-14 02:00"), T("2024-09-14 03:00")]


def test_absent_symbol_names_it_and_lists_the_store(store: CandleStore) -> None:
    with pytest.raises(DataError, match=r"no candles stored for ETH/USDT 1h on binance; the store at .* is empty"):
        store.read("binance", "ETH/USDT", "1h")
    store.write("binance", "BTC/USDT", "1h", hourly(2))
    with pytest.raises(DataError) as e:
        store.read("binance", "ETH/USDT", "1h")
    assert str(e.value) == "no candles stored for ETH/USDT 1h on binance; stored: BTC/USDT 1h (binance)"


def test_load_universe(store: CandleStore) -> None:
    store.write("binance", "BTC/USDT", "1h", hourly(3))
    store.write("binance", "ETH/USDT", "1h", hourly(4, base=10.0))
    got = load_universe(store, "binance", ["ETH/USDT", "BTC/USDT"], "1h")
    assert list(got) == ["ETH/USDT", "BTC/USDT"] and [len(v) for v in got.values()] == [4, 3]
    with pytest.raises(DataError) as e:
        load_universe(store, "binance", ["BTC/USDT", "SOL/USDT", "XRP/USDT"], "1h")
    assert str(e.value) == "no 1h candles on binance for SOL/USDT, XRP/USDT; stored 1h: BTC/USDT, ETH/USDT"


def test_bad_names_are_rejected(store: CandleStore) -> None:
    with pytest.raises(DataError, match="malformed exchange id"):
        store.write("../x", "BTC/USDT", "1h", hourly(1))
    with pytest.raises(Exception, match="unknown timeframe '1x'"):
        store.read("binance", "BTC/USDT", "1x")


def test_concurrent_writers_lose_nothing(store: CandleStore) -> None:
    full = hourly(40)
    chunks = [full.iloc[i::2] for i in range(2)]  # each writer holds every other candle

    def writer(part: pd.DataFrame) -> None:
        for k in range(0, len(part), 4):
            store.write("binance", "BTC/USDT", "1h", part.iloc[k : k + 4])

    threads = [threading.Thread(target=writer, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pd.testing.assert_frame_equal(store.read("binance", "BTC/USDT", "1h"), full)


def test_damaged_file_is_a_one_line_data_error(store: CandleStore) -> None:
    path = store.write("binance", "BTC/USDT", "1h", hourly(3)).path
    (part,) = path.glob("*.parquet")
    part.write_bytes(part.read_bytes()[:-40])  # truncated by something outside the store
    for call in (
        lambda: store.read("binance", "BTC/USDT", "1h"),
        lambda: store.write("binance", "BTC/USDT", "1h", hourly(1, start="2024-09-14 02:00", base=5.0)),
    ):
        with pytest.raises(DataError, match=r"BTC_USDT-1h/2024-09\.\w+\.parquet: unreadable candle file") as e:
            call()
        assert "\n" not in str(e.value)
    (path / "manifest.json").write_text("{not json")
    for call in (store.entries, lambda: store.read("binance", "BTC/USDT", "1h")):
        with pytest.raises(DataError, match=r"BTC_USDT-1h/manifest.json: unreadable candle manifest") as e:
            call()
        assert "\n" not in str(e.value)


def test_random_overlapping_writes_match_a_plain_dict_merge(store: CandleStore) -> None:
    """Twenty writes of random, overlapping, holey slices: the store equals {timestamp: last written row}."""
    rng = np.random.default_rng(7)
    times = pd.date_range("2024-09-14", periods=60, freq="h", tz="UTC")  # pandas' own 'us' unit
    expected: dict[pd.Timestamp, list[float]] = {}
    for k in range(20):
        a = int(rng.integers(0, 55))
        b = int(rng.integers(a + 1, 61))
        keep = np.sort(rng.choice(np.arange(a, b), size=max(1, (b - a) // 2), replace=False))
        px = 100.0 + k + rng.random(len(keep))
        df = pd.DataFrame(
            {"open": px, "high": px + 1, "low": px - 1, "close": px, "volume": np.full(len(keep), float(k))},
            index=pd.DatetimeIndex(times[keep], name="timestamp"),
        )
        store.write("binance", "BTC/USDT", "1h", df)
        for ts, row in zip(df.index, df.to_numpy().tolist(), strict=True):
            expected[ts] = row
    out = store.read("binance", "BTC/USDT", "1h")
    assert list(out.index) == sorted(expected)
    assert out.to_numpy().tolist() == [expected[t] for t in sorted(expected)]
    entry = store.entries()[0]
    assert (entry.rows, entry.first, entry.last) == (len(expected), min(expected), max(expected))
