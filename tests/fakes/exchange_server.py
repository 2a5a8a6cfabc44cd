"""A scriptable fake of Binance's public REST API on 127.0.0.1, for the real ccxt client.

The server answers ``GET /api/v3/exchangeInfo`` with a recorded, reduced response
(``binance/exchange_info.json``), ``GET /api/v3/time``, and ``GET /api/v3/klines`` with
12-field kline arrays in Binance's format, generated deterministically from a candle
series and honouring ``symbol``, ``interval``, ``startTime``, ``endTime`` and ``limit``.
Like the real exchange it also returns the still-open current candle (open time <= now).

Tests script the next kline responses with ``server.enqueue(...)``: a 429 with Binance's
error body, a stall longer than the client timeout, or any raw status and body. Every
request is logged (``server.requests``) so tests can assert what the client asked for.

    with FakeBinance(start_ms=T0, closed=350) as server:
        ex = binance_client(server.base_url, timeout_ms=300)
        server.enqueue(RateLimited(), Normal())
        ...
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import ccxt
import pandas as pd
import requests

RECORDED = Path(__file__).resolve().parent / "binance"
EXCHANGE_INFO: dict[str, Any] = json.loads((RECORDED / "exchange_info.json").read_text())
ERRORS: dict[str, dict[str, Any]] = json.loads((RECORDED / "errors.json").read_text())
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
# Price level of each listed symbol, so two symbols never serve the same numbers.
_SCALE = {"BTCUSDT": 400.0, "ETHUSDT": 20.0, "ETHBTC": 0.0005}


def interval_ms(interval: str) -> int:
    return int(interval[:-1]) * _UNIT_MS[interval[-1]]


# --------------------------------------------------------------------------- behaviours


@dataclass(frozen=True)
class Normal:
    """Serve the requested klines."""


@dataclass(frozen=True)
class RateLimited:
    """HTTP 429 with Binance's -1003 body and, like Binance, a Retry-After header (seconds)."""

    retry_after: int | None = 1


@dataclass(frozen=True)
class Stall:
    """Sleep ``seconds`` (longer than the client's timeout), then serve normally."""

    seconds: float


@dataclass(frozen=True)
class Raw:
    """Answer with exactly this status and body (malformed JSON, wrong shapes, ...)."""

    body: str
    status: int = 200
    content_type: str = "application/json;charset=UTF-8"


Behaviour = Normal | RateLimited | Stall | Raw


@dataclass(frozen=True)
class Request:
    path: str
    params: dict[str, str]
    at: float = field(compare=False)
    """``time.monotonic()`` on arrival."""


# --------------------------------------------------------------------------- candles


def candle(symbol: str, index: int) -> tuple[float, float, float, float, float]:
    """Closed candle number ``index`` of ``symbol``: (open, high, low, close, volume).

    A deterministic, valid OHLCV path (prices rounded to the tick so the strings the
    server sends parse back to exactly these floats)."""
    scale = _SCALE.get(symbol, 1.0)

    def level(i: int) -> float:
        return 100.0 + 10.0 * math.sin(i / 7.0) + 0.5 * (i % 13)

    digits = 8 if scale < 1 else 2
    o = round(level(index - 1) * scale, digits)
    c = round(level(index) * scale, digits)
    h = round(max(o, c) + 1.25 * scale, digits)
    lo = round(min(o, c) - 1.5 * scale, digits)
    v = round(10.0 + (index * 7) % 31 + 0.125, 8)
    return o, h, lo, c, v


def expected_frame(symbol: str, start_ms: int, timeframe: str, first: int, stop: int) -> pd.DataFrame:
    """Canonical frame of closed candles ``first .. stop-1`` as the server serves them."""
    step = interval_ms(timeframe)
    rows = [candle(symbol, i) for i in range(first, stop)]
    stamps = pd.to_datetime([start_ms + i * step for i in range(first, stop)], unit="ms", utc=True)
    index = pd.DatetimeIndex(stamps, name="timestamp").as_unit("ns")  # the store's unit
    return pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close", "volume"],
                        dtype="float64")


def _fmt(x: float) -> str:
    return f"{x:.8f}"


def kline(symbol: str, start_ms: int, step: int, index: int, *, open_candle: bool) -> list[Any]:
    """One kline in Binance's 12-field layout. The open candle is half-formed."""
    o, h, lo, c, v = candle(symbol, index)
    if open_candle:  # mid-candle: partial volume, the range so far
        c, v = round((o + c) / 2, 8), round(v / 2, 8)
        h, lo = max(o, c), min(o, c)
    t = start_ms + index * step
    return [t, _fmt(o), _fmt(h), _fmt(lo), _fmt(c), _fmt(v), t + step - 1,
            _fmt(v * c), 100 + index % 50, _fmt(v / 2), _fmt(v * c / 2), "0"]


# --------------------------------------------------------------------------- server


class FakeBinance:
    """Threaded HTTP server on an ephemeral port of 127.0.0.1.

    ``start_ms``: open time of candle 0 (no candles exist before it);
    ``timeframe``: the only interval served; ``closed``: closed candles before ``now``
    (``now_ms`` sits in the middle of candle ``closed``, which is still open). Tests may
    move ``now_ms`` forward to simulate time passing."""

    def __init__(self, *, start_ms: int = 1_704_067_200_000, timeframe: str = "1h",
                 closed: int = 350, frames: dict[str, pd.DataFrame] | None = None) -> None:
        self.start_ms = start_ms
        self.timeframe = timeframe
        self.step = interval_ms(timeframe)
        self.now_ms = start_ms + closed * self.step + self.step // 2
        # Replay mode: serve these canonical frames (gaps included) instead of the formula;
        # the last row of each is the still-open candle, ``now_ms`` sits in its middle.
        self.frames = frames
        if frames:
            self.now_ms = max(int(f.index[-1].value // 1_000_000) for f in frames.values()) + self.step // 2
        self.requests: list[Request] = []
        self._script: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True  # a stalled handler never blocks shutdown
        # A short poll interval: shutdown() waits up to one interval.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    # lifecycle
    def start(self) -> FakeBinance:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # scripting
    def enqueue(self, *behaviours: Behaviour) -> None:
        """Behaviours for the next kline requests, in order; then ``Normal`` again."""
        with self._lock:
            self._script.extend(behaviours)

    def set_closed(self, closed: int) -> None:
        """Move the clock: ``closed`` candles are complete, the next one is open."""
        self.now_ms = self.start_ms + closed * self.step + self.step // 2

    def kline_requests(self) -> list[dict[str, str]]:
        return [r.params for r in self.requests if r.path == "/api/v3/klines"]

    # internals used by the handler
    def _next_behaviour(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else Normal()

    def _log(self, path: str, params: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(Request(path, params, time.monotonic()))

    def klines(self, params: dict[str, str]) -> tuple[int, Any]:
        symbol = params.get("symbol", "")
        if symbol not in {s["symbol"] for s in EXCHANGE_INFO["symbols"]}:
            return 400, ERRORS["invalid_symbol"]
        if params.get("interval") != self.timeframe:
            return 400, ERRORS["invalid_interval"]
        limit = min(int(params.get("limit", 500)), 1000)
        start = int(params.get("startTime", self.start_ms))
        end = int(params.get("endTime", self.now_ms))
        end = min(end, self.now_ms)
        if self.frames is not None:
            return 200, self._replayed_klines(symbol, start, end, limit)
        first = max(0, -(-(start - self.start_ms) // self.step))  # ceil: first open >= start
        open_index = (self.now_ms - self.start_ms) // self.step
        rows = []
        i = first
        while len(rows) < limit and self.start_ms + i * self.step <= end:
            rows.append(kline(symbol, self.start_ms, self.step, i, open_candle=i == open_index))
            i += 1
        return 200, rows

    def _replayed_klines(self, symbol: str, start: int, end: int, limit: int) -> list[list[Any]]:
        frame = (self.frames or {}).get(symbol)
        if frame is None:
            return []
        ms = frame.index.as_unit("ms").asi8
        lo = int(ms.searchsorted(start, side="left"))
        hi = min(int(ms.searchsorted(end, side="right")), lo + limit)
        values = frame[["open", "high", "low", "close", "volume"]].to_numpy()
        rows = []
        for t, (o, h, lo_, c, v) in zip(ms[lo:hi].tolist(), values[lo:hi].tolist(), strict=True):
            rows.append([t, _fmt(o), _fmt(h), _fmt(lo_), _fmt(c), _fmt(v), t + self.step - 1,
                         _fmt(v * c), 1000, _fmt(v / 2), _fmt(v * c / 2), "0"])
        return rows


def _handler_for(server: FakeBinance) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

        def _send(self, status: int, body: str, content_type: str = "application/json;charset=UTF-8",
                  headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test): nothing to answer

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            params = dict(parse_qsl(url.query))
            server._log(url.path, params)
            if url.path == "/api/v3/exchangeInfo":
                info = dict(EXCHANGE_INFO, serverTime=server.now_ms)
                self._send(200, json.dumps(info))
            elif url.path == "/api/v3/time":
                self._send(200, json.dumps({"serverTime": server.now_ms}))
            elif url.path == "/api/v3/klines":
                self._klines(params)
            else:
                self._send(404, "<html><body><h2>404 Not found</h2></body></html>", "text/html")

        def _klines(self, params: dict[str, str]) -> None:
            behaviour = server._next_behaviour()
            if isinstance(behaviour, RateLimited):
                ra = behaviour.retry_after
                self._send(429, json.dumps(ERRORS["rate_limited"]),
                           headers={} if ra is None else {"Retry-After": str(ra)})
                return
            if isinstance(behaviour, Raw):
                self._send(behaviour.status, behaviour.body, behaviour.content_type)
                return
            if isinstance(behaviour, Stall):
                time.sleep(behaviour.seconds)
            status, payload = server.klines(params)
            self._send(status, json.dumps(payload))

    return Handler


# --------------------------------------------------------------------------- client


def binance_config(base_url: str, *, timeout_ms: int = 2_000, rate_limit_ms: int | None = None) -> dict[str, Any]:
    """ccxt constructor config that points every Binance API URL at ``base_url``.

    Only spot markets are loaded (one ``exchangeInfo`` call); currencies and margin pairs,
    which need keys or other hosts, are off; proxies from the environment are ignored."""
    session = requests.Session()
    session.trust_env = False  # never route 127.0.0.1 through an HTTP(S)_PROXY
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": timeout_ms,
        "session": session,
        "urls": {"api": _rebase(ccxt.binance().describe()["urls"]["api"], base_url)},
        "options": {
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
        },
    }
    if rate_limit_ms is not None:
        config["rateLimit"] = rate_limit_ms
    return config


def binance_client(base_url: str, *, timeout_ms: int = 2_000, rate_limit_ms: int | None = None) -> ccxt.binance:
    """A real ``ccxt.binance`` talking to the fake server at ``base_url``."""
    return ccxt.binance(binance_config(base_url, timeout_ms=timeout_ms, rate_limit_ms=rate_limit_ms))


def _rebase(urls: Any, base_url: str) -> Any:
    if isinstance(urls, dict):
        return {k: _rebase(v, base_url) for k, v in urls.items()}
    if isinstance(urls, str) and urls.startswith("http"):
        base = urlsplit(base_url)
        u = urlsplit(urls)
        return urlunsplit((base.scheme, base.netloc, u.path, u.query, u.fragment))
    return urls
