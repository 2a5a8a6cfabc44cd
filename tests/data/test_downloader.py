"""The ccxt downloader against the REAL ccxt Binance client talking HTTP to a local fake
exchange (tests/fakes/exchange_server.py) that replays Binance's formats: no mock of ccxt,
no network."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import ccxt
import pandas as pd
import pytest

from fakes.exchange_server import (
    FakeBinance,
    Normal,
    RateLimited,
    Raw,
    Stall,
    binance_client,
    binance_config,
    expected_frame,
)
from singularity.data.downloader import download_ohlcv
from singularity.data.store import CandleStore
from singularity.errors import DataError, ExchangeError

pytestmark = pytest.mark.timeout(60)

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC, open time of candle 0
H = 3_600_000
SYMBOL, TF = "BTC/USDT", "1h"


@pytest.fixture
def server() -> Iterator[FakeBinance]:
    with FakeBinance(start_ms=T0, timeframe=TF, closed=350) as s:
        yield s


@pytest.fixture
def client(server: FakeBinance) -> ccxt.binance:
    return binance_client(server.base_url, timeout_ms=300, rate_limit_ms=1)


@pytest.fixture
def store(tmp_path) -> CandleStore:
    return CandleStore(tmp_path / "data")


def download(store: CandleStore, client: ccxt.binance, server: FakeBinance, **kw):
    symbol = kw.pop("symbol", SYMBOL)
    args = {"limit": 100, "backoff_s": 0.01, "now": server.now_ms, **kw}
    return download_ohlcv(store, client, symbol, TF, T0, **args)


def stored(store: CandleStore) -> pd.DataFrame:
    return store.read("binance", SYMBOL, TF)


def file_bytes(store: CandleStore) -> bytes:
    """Every file of the series' folder (names and contents)."""
    folder = store.path("binance", SYMBOL, TF)
    return b"".join(f.name.encode() + f.read_bytes() for f in sorted(folder.iterdir()))


def start_times(server: FakeBinance) -> list[int]:
    return [int(p["startTime"]) for p in server.kline_requests()]


def test_paginates_and_stores_exactly_the_closed_candles(store, client, server) -> None:
    seen: list[int] = []
    report = download(store, client, server, progress=seen.append)

    # 350 closed candles + the open one = 351 rows at 100 a page: 4 pages.
    assert report.pages == 4
    assert start_times(server) == [T0, T0 + 100 * H, T0 + 200 * H, T0 + 300 * H]
    assert [p["limit"] for p in server.kline_requests()] == ["100"] * 4
    assert seen == [100, 100, 100, 50]
    assert (report.candles_added, report.retries) == (350, 0)
    assert report.first == pd.Timestamp(T0, unit="ms", tz="UTC")
    assert report.last == pd.Timestamp(T0 + 349 * H, unit="ms", tz="UTC")
    pd.testing.assert_frame_equal(stored(store), expected_frame("BTCUSDT", T0, TF, 0, 350),
                                  check_exact=True)
    assert stored(store).loc["2024-01-01 00:00+00:00", "close"] == 40000.0  # 100.0 * 400


def test_open_candle_is_not_stored_even_at_the_boundary(store, client, server) -> None:
    server.now_ms = T0 + 350 * H  # candle 349 has just closed, candle 350 has just opened
    download(store, client, server)
    assert stored(store).index[-1] == pd.Timestamp(T0 + 349 * H, unit="ms", tz="UTC")
    assert len(stored(store)) == 350


def test_now_defaults_to_the_exchange_clock(store, client, server) -> None:
    client.milliseconds = lambda: server.now_ms  # the exchange's clock, controlled by the test
    report = download_ohlcv(store, client, SYMBOL, TF, "2024-01-01", limit=1000)
    assert (report.pages, report.candles_added) == (1, 350)
    assert stored(store).index[-1] == pd.Timestamp("2024-01-15 13:00", tz="UTC")  # candle 349


def test_rate_limited_429_then_success_after_retry_after(store, client, server) -> None:
    server.enqueue(Normal(), RateLimited(retry_after=2))
    waits: list[float] = []
    report = download(store, client, server, sleep=waits.append)
    assert report.retries == 1
    assert waits == [2.0]  # Binance's Retry-After beats the 0.01 s backoff
    assert start_times(server) == [T0, T0 + 100 * H, T0 + 100 * H, T0 + 200 * H, T0 + 300 * H]
    pd.testing.assert_frame_equal(stored(store), expected_frame("BTCUSDT", T0, TF, 0, 350))


def test_timeout_then_success(store, client, server) -> None:
    server.enqueue(Stall(1.0))  # the client gives up after 300 ms
    report = download(store, client, server)
    assert (report.retries, report.pages, report.candles_added) == (1, 4, 350)
    assert start_times(server)[:2] == [T0, T0]
    pd.testing.assert_frame_equal(stored(store), expected_frame("BTCUSDT", T0, TF, 0, 350))


def test_gives_up_after_max_retries_with_exponential_backoff(store, client, server) -> None:
    server.enqueue(*[RateLimited(retry_after=None)] * 3)
    waits: list[float] = []
    with pytest.raises(ExchangeError, match=r"binance unreachable: .* failed after 2 retries \(DDoSProtection"):
        download(store, client, server, max_retries=2, backoff_s=0.5, sleep=waits.append)
    assert waits == [0.5, 1.0]
    assert len(server.kline_requests()) == 3
    assert not store.exists("binance", SYMBOL, TF)


def test_a_ban_longer_than_the_retry_budget_fails_at_once(store, client, server) -> None:
    server.enqueue(RateLimited(retry_after=3600))
    with pytest.raises(ExchangeError, match="rate limited, the exchange asks to wait 3600 s"):
        download(store, client, server, sleep=pytest.fail)
    assert len(server.kline_requests()) == 1


MALFORMED = {
    "not json": Raw("<html>502 Bad Gateway</html>"),
    "object instead of array": Raw(json.dumps({"data": [[T0, "1", "2", "0.5", "1", "3"]]})),
    "rows not arrays": Raw("[1, 2, 3]"),
    "text timestamps": Raw(json.dumps([["2024-01-05 04:00", "1", "2", "0.5", "1", "3", 0, "0", 1, "0", "0", "0"]])),
    "short rows": Raw(json.dumps([[T0 + 100 * H, "1", "2"]])),
    "string prices": Raw(json.dumps([[T0 + 100 * H, "abc", "x", "y", "z", "v", 0, "0", 1, "0", "0", "0"]])),
    "missing low": Raw(json.dumps([[T0 + 100 * H, "1.0", "2.0", None, "1.5", "3.0", 0, "0", 1, "0", "0", "0"]])),
    "high below low": Raw(json.dumps([[T0 + 100 * H, "10.0", "9.0", "11.0", "10.0", "3.0", 0, "0", 1, "0", "0", "0"]])),
    "duplicate candle": Raw(json.dumps([
        [T0 + 100 * H, "10.0", "11.0", "9.0", "10.0", "3.0", 0, "0", 1, "0", "0", "0"],
        [T0 + 100 * H, "10.0", "11.0", "9.0", "10.0", "3.0", 0, "0", 1, "0", "0", "0"],
    ])),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_response_is_a_clear_error_and_leaves_the_store_unchanged(name, store, client, server) -> None:
    server.set_closed(100)
    download(store, client, server)  # 100 candles stored in one write
    before = file_bytes(store)
    server.set_closed(350)
    server.enqueue(MALFORMED[name])
    with pytest.raises(ExchangeError, match=r"^binance BTC/USDT 1h: (malformed|the exchange sent corrupt)") as err:
        download(store, client, server)
    assert "\n" not in str(err.value)
    assert file_bytes(store) == before
    assert len(server.kline_requests()) == 2  # a malformed answer is not retried


def test_resume_refetches_the_last_stored_candles_then_continues(store, client, server) -> None:
    server.set_closed(200)
    first = download(store, client, server)
    assert (first.pages, first.candles_added) == (2, 200)
    server.requests.clear()
    server.set_closed(350)
    second = download(store, client, server)
    # the last 3 stored candles (197..199) are asked again, then everything after them
    assert start_times(server) == [T0 + 197 * H, T0 + 297 * H]
    assert (second.candles_added, second.first) == (150, pd.Timestamp(T0 + 197 * H, unit="ms", tz="UTC"))
    pd.testing.assert_frame_equal(stored(store), expected_frame("BTCUSDT", T0, TF, 0, 350))
    server.requests.clear()
    again = download(store, client, server)  # up to date: one page, the last 3 candles again
    assert (again.pages, again.candles_added) == (1, 0)
    assert start_times(server) == [T0 + 347 * H]


def test_since_before_the_stored_range_backfills(store, client, server) -> None:
    server.set_closed(300)
    download_ohlcv(store, client, SYMBOL, TF, T0 + 250 * H, limit=100, now=server.now_ms)
    server.requests.clear()
    report = download(store, client, server)  # since T0: the older history, then the newest again
    assert start_times(server) == [T0, T0 + 100 * H, T0 + 200 * H, T0 + 297 * H]
    assert (report.candles_added, report.first, report.last) == (
        250, pd.Timestamp(T0, unit="ms", tz="UTC"), pd.Timestamp(T0 + 299 * H, unit="ms", tz="UTC"))
    pd.testing.assert_frame_equal(stored(store), expected_frame("BTCUSDT", T0, TF, 0, 300))


def test_until_is_exclusive(store, client, server) -> None:
    report = download(store, client, server, until=pd.Timestamp(T0 + 150 * H, unit="ms", tz="UTC"))
    assert start_times(server) == [T0, T0 + 100 * H]
    assert report.candles_added == 150
    assert stored(store).index[-1] == pd.Timestamp(T0 + 149 * H, unit="ms", tz="UTC")


def test_writes_in_chunks_so_an_interrupted_download_keeps_its_pages(store, client, server) -> None:
    server.enqueue(Normal(), Normal(), Raw("garbage"))
    with pytest.raises(ExchangeError, match="not JSON"):
        download(store, client, server, flush_pages=1)
    pd.testing.assert_frame_equal(stored(store), expected_frame("BTCUSDT", T0, TF, 0, 200))


def test_unknown_symbol_names_it(store, client, server) -> None:
    with pytest.raises(DataError, match=r"unknown symbol 'DOGE/USDT' on binance"):
        download(store, client, server, symbol="DOGE/USDT")
    assert server.kline_requests() == []
    with pytest.raises(DataError, match=r"similar: BTC/USDT"):
        download(store, client, server, symbol="BTC/USDC")


def test_exchange_side_invalid_symbol_is_a_data_error(store, client, server) -> None:
    client.load_markets()
    client.markets["BTC/USDT"]["id"] = "NOPEUSDT"  # listed locally, unknown to the server
    with pytest.raises(DataError, match=r"unknown symbol .*Invalid symbol"):
        download(store, client, server)


def test_exchange_by_id_with_config(store, server) -> None:
    config = binance_config(server.base_url, rate_limit_ms=1)
    report = download_ohlcv(store, "binance", SYMBOL, TF, T0, now=server.now_ms, exchange_config=config)
    assert (report.exchange, report.pages, report.candles_added) == ("binance", 1, 350)
    assert [r.path for r in server.requests] == ["/api/v3/exchangeInfo", "/api/v3/klines"]


def test_unknown_exchange_and_timeframe(store, client, server) -> None:
    with pytest.raises(ExchangeError, match=r"unknown exchange 'binanse'.*did you mean binance"):
        download_ohlcv(store, "binanse", SYMBOL, TF, T0)
    with pytest.raises(ExchangeError, match="does not offer timeframe '7h'"):
        download_ohlcv(store, client, SYMBOL, "7h", T0, now=server.now_ms)


def test_the_rate_limiter_is_switched_on_and_spaces_requests(store, server) -> None:
    ex = binance_client(server.base_url, rate_limit_ms=250)
    ex.enableRateLimit = False
    download(store, ex, server)
    assert ex.enableRateLimit is True
    cost = ex.api["public"]["get"]["klines"]["cost"]  # Binance's request weight, as ccxt knows it
    times = [r.at for r in server.requests if r.path == "/api/v3/klines"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 3
    assert min(gaps) >= 0.9 * 0.250 * cost  # ccxt's throttle sleeps rateLimit * cost between calls


@pytest.mark.realdata
def test_replays_real_binance_candles_and_keeps_an_outage_as_a_gap(store, load_feather) -> None:
    real = load_feather("BTC", "1h", tail=2500)
    served = real.drop(real.index[1200:1205])  # a 5-hour outage: Binance skips those candles
    with FakeBinance(frames={"BTCUSDT": served}) as srv:
        ex = binance_client(srv.base_url, rate_limit_ms=1)
        report = download_ohlcv(store, ex, SYMBOL, TF, real.index[0], now=srv.now_ms)
    assert report.pages == 3  # 2,495 rows at Binance's 1,000 a page
    assert report.candles_added == len(served) - 1  # the last row is the open candle
    want = served.iloc[:-1].copy()
    want.index = want.index.as_unit("ns")
    pd.testing.assert_frame_equal(stored(store), want, check_exact=True, check_freq=False)
    (entry,) = store.entries()
    assert (entry.gaps, entry.missing) == (1, 5)  # kept as a gap, never filled


def test_ctrl_c_keeps_the_pages_already_written(store, client, server) -> None:
    calls: list[int] = []

    def interrupt_on_second_page(n: int) -> None:
        calls.append(n)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download(store, client, server, flush_pages=1, progress=interrupt_on_second_page)
    pd.testing.assert_frame_equal(stored(store), expected_frame("BTCUSDT", T0, TF, 0, 100))
    assert download(store, client, server).candles_added == 250  # and the next run resumes


def test_exchange_clock_behind_never_stores_an_open_candle(store, client, server) -> None:
    # No ``now``: the exchange's clock (5 minutes into candle 350, far behind this machine's
    # clock) decides; candle 350 is still open and the server serves it half-formed.
    server.now_ms = T0 + 350 * H + 5 * 60_000
    report = download_ohlcv(store, client, SYMBOL, TF, T0, limit=100, backoff_s=0.01)
    assert report.candles_added == 350
    pd.testing.assert_frame_equal(stored(store), expected_frame("BTCUSDT", T0, TF, 0, 350))


def test_a_candle_stored_open_is_corrected_on_resume(store, client, server) -> None:
    # An older version stored candle 349 while it was open (partial volume, close so far).
    server.set_closed(349)
    server.now_ms += H // 2 - 60_000  # near the end of candle 349, still open
    partial = _open_candle_frame(server, 349)
    download(store, client, server, until=pd.Timestamp(T0 + 349 * H, unit="ms", tz="UTC"))
    store.write("binance", SYMBOL, TF, partial)
    assert stored(store).iloc[-1]["volume"] != expected_frame("BTCUSDT", T0, TF, 349, 350).iloc[0]["volume"]
    server.set_closed(360)
    download(store, client, server)
    pd.testing.assert_frame_equal(stored(store), expected_frame("BTCUSDT", T0, TF, 0, 360))


def test_gaps_inside_the_stored_range_are_backfilled(store, client, server) -> None:
    full = expected_frame("BTCUSDT", T0, TF, 0, 300)
    store.write("binance", SYMBOL, TF, full.drop(full.index[120:135]))  # an inner gap
    server.set_closed(300)
    report = download(store, client, server)
    assert report.candles_added == 15
    pd.testing.assert_frame_equal(stored(store), full)


def _open_candle_frame(server: FakeBinance, index: int) -> pd.DataFrame:
    from fakes.exchange_server import kline

    row = kline("BTCUSDT", T0, H, index, open_candle=True)
    frame = pd.DataFrame([[float(x) for x in row[1:6]]],
                         index=pd.DatetimeIndex(pd.to_datetime([row[0]], unit="ms", utc=True),
                                                name="timestamp").as_unit("ns"),
                         columns=["open", "high", "low", "close", "volume"])
    return frame
