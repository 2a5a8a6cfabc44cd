"""Where the demo's candles come from: the store, else the exchange, else a synthetic market.

The synthetic market is stored under the exchange name ``synthetic`` so that every table,
report and log that shows it says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from singularity.config import Settings
from singularity.data.store import CandleStore, load_universe
from singularity.data.synthetic import SYNTHETIC_EXCHANGE, regime_switching_market

DEMO_DAYS = 365
SYNTHETIC_BARS = 6000


@dataclass(frozen=True)
class DemoData:
    exchange: str
    timeframe: str
    candles: dict[str, pd.DataFrame]
    source: str
    """'store', 'download' or 'synthetic'."""

    @property
    def synthetic(self) -> bool:
        return self.exchange == SYNTHETIC_EXCHANGE


def _stored(store: CandleStore, exchange: str, symbols: tuple[str, ...], tf: str) -> list[str]:
    return [s for s in symbols if store.exists(exchange, s, tf)]


def demo_data(settings: Settings, *, say: Callable[[str], None] = print) -> DemoData:
    tf = settings.timeframe("tactical")
    store = CandleStore(settings.data.dir)
    symbols = settings.universe.symbols
    for exchange in (settings.exchange.name, SYNTHETIC_EXCHANGE):
        have = _stored(store, exchange, symbols, tf)
        if have:
            say(f"using stored {tf} candles of {len(have)} symbols on {exchange} ({store.root})")
            return DemoData(exchange, tf, load_universe(store, exchange, have, tf), "store")
    try:
        return _download(settings, store, tf, say)
    except Exception as e:  # any failure to reach the exchange falls back to synthetic data
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        say(f"cannot reach {settings.exchange.name} ({reason}): generating a SYNTHETIC "
            "regime-switching market instead (labelled 'synthetic' everywhere)")
    market = regime_switching_market(symbols, n_bars=SYNTHETIC_BARS, timeframe=tf, seed=settings.forge.seed)
    for sym, df in market.items():
        store.write(SYNTHETIC_EXCHANGE, sym, tf, df)
    return DemoData(SYNTHETIC_EXCHANGE, tf, market, "synthetic")


def _download(settings: Settings, store: CandleStore, tf: str, say: Callable[[str], None]) -> DemoData:
    import ccxt

    from singularity.data.downloader import download_ohlcv

    exchange = getattr(ccxt, settings.exchange.name)({"enableRateLimit": True, "timeout": 5000})
    exchange.load_markets()  # fails fast without a network
    since = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=DEMO_DAYS)
    for sym in settings.universe.symbols:
        say(f"downloading {sym} {tf} from {settings.exchange.name} since {since:%Y-%m-%d}")
        download_ohlcv(store, exchange, sym, tf, since, max_retries=2)
    name = settings.exchange.name
    return DemoData(name, tf, load_universe(store, name, settings.universe.symbols, tf), "download")
