"""ccxt clients for the engine: ccxt.pro (websockets) for the feed, the REST client for
confirmations, backfills and orders. ``engine.rest_url``/``engine.ws_url`` point them elsewhere
(a gateway, or the tests' local exchange). Keys are passed in, never read from the
environment here."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit


def _rebase(urls: Any, base_url: str) -> Any:
    if isinstance(urls, dict):
        return {k: _rebase(v, base_url) for k, v in urls.items()}
    if isinstance(urls, str) and urls.startswith("http"):
        base, u = urlsplit(base_url), urlsplit(urls)
        return urlunsplit((base.scheme, base.netloc, u.path, u.query, u.fragment))
    return urls


def client_config(settings: Any, *, pro: bool, keys: tuple[str, str] | None = None) -> dict[str, Any]:
    import ccxt

    eng = settings.engine
    config: dict[str, Any] = {"enableRateLimit": True, "timeout": settings.exchange.timeout_ms,
                              # spot only: the engine trades spot markets (one exchangeInfo call)
                              "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                                          "fetchMargins": False, "defaultType": "spot"}}
    if keys is not None:
        config["apiKey"], config["secret"] = keys
    if eng.rest_url:
        if pro:
            import ccxt.pro

        cls = getattr(ccxt.pro if pro else ccxt, settings.exchange.name)
        urls = dict(cls().describe()["urls"])
        urls["api"] = _rebase(urls["api"], eng.rest_url)
        if pro and eng.ws_url:
            ws = dict(urls["api"].get("ws") or {})
            ws["spot"] = eng.ws_url
            urls["api"]["ws"] = ws
        config["urls"] = urls
        if not pro:
            import requests

            session = requests.Session()
            session.trust_env = False  # a local gateway is never reached through a proxy
            config["session"] = session
    return config


def rest_client(settings: Any, keys: tuple[str, str] | None = None) -> Any:
    import ccxt

    from singularity.data.downloader import build_exchange

    return build_exchange(settings.exchange.name, exchange_config=client_config(settings, pro=False, keys=keys)) \
        if settings.exchange.name in ccxt.exchanges else None


def pro_client(settings: Any, keys: tuple[str, str] | None = None) -> Any:
    import ccxt.pro

    cls = getattr(ccxt.pro, settings.exchange.name)
    return cls(client_config(settings, pro=True, keys=keys))
