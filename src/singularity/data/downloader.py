"""Download closed OHLCV candles through ccxt into the candle store.

``download_ohlcv`` pages through ``fetch_ohlcv`` over the candles the store lacks between
``since`` and now (older history before the first stored candle, gaps inside the stored range,
then everything after the newest one, starting a few candles back so that the newest stored
candles are fetched again and corrected if they changed), with the exchange's rate limit on,
retries with exponential backoff on transient network errors, and writes to the store every
few pages so an interrupted download keeps what it already wrote. The still-open current
candle is never stored: "now" is the earlier of the exchange's clock (``fetch_time``) and the
local one (less a grace margin where the exchange tells no time), so a local clock ahead of
the exchange cannot pass a partial candle as closed. A malformed page stops the download with
an ``ExchangeError`` before it reaches the store.

Errors: ``DataError`` for an unknown symbol, ``ExchangeError`` for an unknown exchange, a
timeframe the exchange lacks, a malformed answer or an exchange that stays unreachable.
"""

from __future__ import annotations

import difflib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import ccxt
import pandas as pd

from singularity.data.schema import OHLCV_COLUMNS, ensure_valid, to_canonical
from singularity.data.store import CandleStore
from singularity.errors import CandleValidationError, DataError, ExchangeError
from singularity.timeframes import timeframe_seconds

TimeLike = pd.Timestamp | datetime | str | int
T = TypeVar("T")

DEFAULT_TIMEOUT_MS = 15_000
REFETCH_LAST = 3
"""Stored candles fetched again on every resume (the newest answer wins in the store)."""
CLOCK_GRACE_MS = 60_000
"""Margin taken off the local clock where the exchange does not tell its time."""
# Exchanges whose kline endpoint answers a bare JSON array: ccxt silently turns any other
# shape into "no candles", which would end a download early instead of failing it.
_ARRAY_KLINES = ("binance", "binanceus", "binanceusdm", "binancecoinm")


@dataclass(frozen=True)
class DownloadReport:
    exchange: str
    symbol: str
    timeframe: str
    candles_added: int
    """Candles that were not in the store before this download."""
    first: pd.Timestamp | None
    """Open time of the first candle written by this download (None when nothing was written;
    re-fetched candles count as written)."""
    last: pd.Timestamp | None
    pages: int
    """``fetch_ohlcv`` calls that returned an answer."""
    retries: int
    """Failed attempts that were retried (timeouts, 429s, connection errors)."""


def build_exchange(
    exchange_id: str, *, timeout_ms: int = DEFAULT_TIMEOUT_MS, exchange_config: dict[str, Any] | None = None
) -> ccxt.Exchange:
    """A ccxt exchange by id, with its rate limiter on."""
    cls = getattr(ccxt, exchange_id, None) if exchange_id in ccxt.exchanges else None
    if cls is None:
        near = difflib.get_close_matches(exchange_id, ccxt.exchanges, n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise ExchangeError(f"unknown exchange {exchange_id!r}: not a ccxt exchange id{hint}")
    return cls({"enableRateLimit": True, "timeout": timeout_ms, **(exchange_config or {})})


def download_ohlcv(
    store: CandleStore,
    exchange: str | ccxt.Exchange,
    symbol: str,
    timeframe: str,
    since: TimeLike,
    *,
    until: TimeLike | None = None,
    limit: int = 1000,
    max_retries: int = 5,
    backoff_s: float = 1.0,
    progress: Callable[[int], None] | None = None,
    exchange_config: dict[str, Any] | None = None,
    now: TimeLike | None = None,
    flush_pages: int = 10,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadReport:
    """Download closed ``symbol`` candles with open time in ``[since, until)`` into ``store``.

    ``exchange``: a ccxt id (built with the rate limiter on) or a ready ccxt instance (its
    rate limiter is switched on); ``exchange_config`` (only with an id) goes to the ccxt
    constructor, e.g. ``{"timeout": 15000, "apiKey": ...}``. Where the store already holds
    this series, only what it lacks is fetched: candles before its first one (when ``since``
    is earlier) and from one timeframe after its newest one. ``now`` (default: the
    exchange's clock, ``milliseconds()``) decides which candle is still open. ``progress``
    gets the number of new candles of every page. Candles are written every ``flush_pages``
    pages and at the end; on an error the unwritten pages are dropped, the written ones stay.
    Naive times are read as UTC.
    """
    if limit < 1 or max_retries < 0 or backoff_s < 0 or flush_pages < 1:
        raise ValueError("limit and flush_pages must be >= 1, max_retries and backoff_s >= 0")
    step = timeframe_seconds(timeframe) * 1000
    owned = isinstance(exchange, str)
    ex = build_exchange(exchange, exchange_config=exchange_config) if owned else exchange
    ex.enableRateLimit = True  # never hammer the exchange, whoever built the client
    ex.enableLastHttpResponse = True  # the raw body is checked for malformed answers
    retry = _Retrier(ex, max_retries, backoff_s, sleep)
    what = f"{ex.id} {symbol} {timeframe}"
    try:
        _check_market(ex, retry, symbol, timeframe)
        now_ms = _to_ms(now) if now is not None else _exchange_now(ex, retry)
        stop = now_ms - step + 1  # a candle is closed when open + step <= now
        if until is not None:
            stop = min(stop, _to_ms(until))
        ranges = _missing_ranges(store, ex.id, symbol, timeframe, _to_ms(since), stop, step)

        pending: list[pd.DataFrame] = []
        written: list[pd.DatetimeIndex] = []
        added, pages = 0, 0

        def flush() -> None:
            nonlocal added
            if pending:
                frame = pd.concat(pending) if len(pending) > 1 else pending[0]
                pending.clear()
                added += store.write(ex.id, symbol, timeframe, frame).added
                written.append(frame.index)

        for start, end in ranges:
            cursor = start
            while cursor < end:
                rows = retry.call(
                    f"fetch_ohlcv {symbol} {timeframe} since {_iso(cursor)}",
                    lambda c=cursor: ex.fetch_ohlcv(symbol, timeframe, since=c, limit=limit),
                )
                pages += 1
                rows = _checked_rows(ex, rows, what)
                if not rows:
                    break  # nothing after the cursor: the series ends here
                keep = [r for r in rows if cursor <= r[0] < end]
                if keep:
                    pending.append(_page_frame(keep, timeframe, what))
                if progress is not None:
                    progress(len(keep))
                if rows[-1][0] < cursor:
                    raise ExchangeError(f"{what}: the exchange answered candles before {_iso(cursor)}")
                cursor = rows[-1][0] + step
                if len(pending) >= flush_pages:
                    flush()
        flush()
        first = min(ix[0] for ix in written) if written else None
        last = max(ix[-1] for ix in written) if written else None
        return DownloadReport(ex.id, symbol, timeframe, added, first, last, pages, retry.retries)
    finally:
        if owned and getattr(ex, "session", None) is not None:
            ex.session.close()


# --------------------------------------------------------------------------- helpers


class _Retrier:
    """Calls ccxt, retrying transient errors with exponential backoff; maps ccxt errors.

    A rate-limit answer's ``Retry-After`` (seconds) lengthens the wait; one asking for more
    than ``MAX_RETRY_AFTER_S`` (an IP ban) ends the download at once."""

    MAX_RETRY_AFTER_S = 120.0

    def __init__(self, ex: ccxt.Exchange, max_retries: int, backoff_s: float,
                 sleep: Callable[[float], None]) -> None:
        self.ex = ex
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.retries = 0

    def call(self, what: str, fn: Callable[[], T]) -> T:
        name = self.ex.id
        attempt = 0
        while True:
            try:
                return fn()
            except ccxt.BadSymbol as e:
                raise DataError(f"{name} {what}: unknown symbol ({_one_line(e)})") from e
            except ccxt.NetworkError as e:  # timeouts, 429/418, connection errors, maintenance
                wait = self.backoff_s * 2**attempt
                if isinstance(e, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
                    asked = _retry_after_s(self.ex)
                    if asked is not None and asked > self.MAX_RETRY_AFTER_S:
                        raise ExchangeError(
                            f"{name} {what}: rate limited, the exchange asks to wait {asked:.0f} s; try later"
                        ) from e
                    wait = max(wait, asked or 0.0)
                if attempt >= self.max_retries:
                    raise ExchangeError(
                        f"{name} unreachable: {what} failed after {self.max_retries} "
                        f"retries ({type(e).__name__}: {_one_line(e)})"
                    ) from e
                self.sleep(wait)
                attempt += 1
                self.retries += 1
            except ccxt.BaseError as e:
                raise ExchangeError(f"{name} {what}: {type(e).__name__}: {_one_line(e)}") from e


def _retry_after_s(ex: ccxt.Exchange) -> float | None:
    """The ``Retry-After`` header (seconds form) of the exchange's last answer, if any."""
    headers = getattr(ex, "last_response_headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None  # the HTTP-date form: fall back to the exponential backoff


def _check_market(ex: ccxt.Exchange, retry: _Retrier, symbol: str, timeframe: str) -> None:
    if not ex.has.get("fetchOHLCV"):
        raise ExchangeError(f"{ex.id} offers no OHLCV candles through ccxt (fetchOHLCV)")
    markets = retry.call("load_markets", ex.load_markets)
    if symbol not in markets:
        near = difflib.get_close_matches(symbol, list(markets), n=3)
        hint = f"; similar: {', '.join(near)}" if near else ""
        raise DataError(f"unknown symbol {symbol!r} on {ex.id} ({len(markets)} markets){hint}")
    offered = getattr(ex, "timeframes", None) or {}
    if offered and timeframe not in offered:
        raise ExchangeError(
            f"{ex.id} does not offer timeframe {timeframe!r}; it offers {', '.join(offered)}"
        )


def _exchange_now(ex: ccxt.Exchange, retry: _Retrier) -> int:
    """The earlier of the exchange's clock and the local one (which may run ahead of it)."""
    local = int(ex.milliseconds())
    if ex.has.get("fetchTime"):
        server = retry.call("fetch_time", ex.fetch_time)
        if isinstance(server, int | float) and not isinstance(server, bool) and server > 0:
            return min(local, int(server))
    return local - CLOCK_GRACE_MS


def _missing_ranges(store: CandleStore, exchange_id: str, symbol: str, timeframe: str,
                    since_ms: int, stop_ms: int, step: int) -> list[tuple[int, int]]:
    """Open-time ranges ``[start, end)`` to fetch: older history before the first stored
    candle (when ``since`` is earlier), the gaps inside the stored range, then the last
    ``REFETCH_LAST`` stored candles (a candle stored while still open, or corrected by the
    exchange since, is replaced) and everything after them."""
    if not store.exists(exchange_id, symbol, timeframe):
        return [(since_ms, stop_ms)] if since_ms < stop_ms else []
    index = store.read(exchange_id, symbol, timeframe).index
    if len(index) == 0:
        return [(since_ms, stop_ms)] if since_ms < stop_ms else []
    ms = (index.as_unit("ms").asi8 if hasattr(index, "as_unit") else index.asi8 // 1_000_000)
    first = int(ms[0])
    ranges = [(since_ms, min(first, stop_ms))]
    gaps = (ms[1:] - ms[:-1]) > step
    for i in gaps.nonzero()[0].tolist():
        a, b = int(ms[i]) + step, int(ms[i + 1])
        ranges.append((max(a, since_ms), min(b, stop_ms)))
    refetch_from = int(ms[max(0, len(ms) - REFETCH_LAST)])
    ranges.append((max(since_ms, refetch_from), stop_ms))
    return [(a, b) for a, b in ranges if a < b]


def _checked_rows(ex: ccxt.Exchange, rows: Any, what: str) -> list[list[Any]]:
    """ccxt's parsed rows, after checking that the answer really was a page of candles."""
    raw = getattr(ex, "last_http_response", None)
    if isinstance(raw, str):
        try:
            payload = json.loads(raw)
        except ValueError:
            raise ExchangeError(f"{what}: malformed response, not JSON: {raw[:60]!r}") from None
        if ex.id in _ARRAY_KLINES and not isinstance(payload, list):
            raise ExchangeError(
                f"{what}: malformed response, expected an array of klines, got {type(payload).__name__}: {raw[:60]!r}"
            )
        if not rows and isinstance(payload, list) and payload:
            raise ExchangeError(
                f"{what}: malformed response, {len(payload)} entries but no readable candle "
                f"(first: {str(payload[0])[:60]!r})"
            )
    if not isinstance(rows, list):
        raise ExchangeError(f"{what}: malformed response, expected a list of candles")
    prev = None
    for i, row in enumerate(rows):
        if not isinstance(row, list | tuple) or len(row) < 6:
            raise ExchangeError(f"{what}: malformed candle #{i}: {str(row)[:80]!r}")
        ts = row[0]
        if not isinstance(ts, int) or isinstance(ts, bool):
            raise ExchangeError(f"{what}: malformed candle #{i}: timestamp {ts!r} is not an integer")
        for name, v in zip(OHLCV_COLUMNS, row[1:6], strict=True):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ExchangeError(f"{what}: malformed candle at {_iso(ts)}: {name} is {v!r}")
        if prev is not None and ts <= prev:
            raise ExchangeError(f"{what}: malformed response, candles out of order at {_iso(ts)}")
        prev = ts
    return rows


def _page_frame(rows: list[list[Any]], timeframe: str, what: str) -> pd.DataFrame:
    raw = pd.DataFrame([r[:6] for r in rows], columns=["timestamp", *OHLCV_COLUMNS])
    frame = to_canonical(raw, source=what)
    try:
        ensure_valid(frame, timeframe)
    except CandleValidationError as e:  # the exchange, not the user, sent corrupt candles
        raise ExchangeError(f"{what}: the exchange sent corrupt candles: {e}") from e
    return frame


def _to_ms(t: TimeLike) -> int:
    """Epoch milliseconds of an int (ms), a Timestamp/datetime or a date string; naive = UTC."""
    if isinstance(t, bool):
        raise DataError(f"not a time: {t!r}")
    if isinstance(t, int):
        return t
    try:
        ts = pd.Timestamp(t)
    except (ValueError, TypeError) as e:
        raise DataError(f"not a time: {t!r} (expected e.g. '2024-01-01' or '2024-01-01T12:00Z')") from e
    if ts is pd.NaT:
        raise DataError(f"not a time: {t!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M UTC")


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 200 else text[:197] + "..."
