"""Regimes of a growing history: what ``singularity regimes SYMBOL --until T`` computes, for
the engine's regime worker, called again at every new candle.

``load_universe`` reads the store as the command does (the symbol and every other stored
symbol of the universe, cut at ``until``), so the engine's labels at a candle are the
command's labels at that candle. ``regime_update`` runs in the engine's regime worker (a
spawned process): it keeps a ``FitCache`` per symbol, so HDBSCAN refits once per refit
point (its cadence, ``refit_every`` bars) and the bars in between are only assigned.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from singularity.errors import DataError
from singularity.regimes.model import FitCache
from singularity.regimes.settings import RegimeSettings


def load_universe(store: Any, exchange: str, symbol: str, timeframe: str, symbols: Sequence[str],
                  until: pd.Timestamp | None) -> dict[str, pd.DataFrame]:
    """``symbol``'s candles and those of the other stored ``symbols`` (they feed the
    cross-asset level), each up to ``until`` inclusive."""
    universe: dict[str, pd.DataFrame] = {}
    for s in [symbol, *(x for x in symbols if x != symbol)]:
        if s != symbol and not store.exists(exchange, s, timeframe):
            continue  # not stored: it simply does not feed the cross-asset level
        df = store.read(exchange, s, timeframe)
        if until is not None:
            df = df.loc[df.index <= until]
        if len(df) or s == symbol:
            universe[s] = df
    if len(universe[symbol]) == 0:
        raise DataError(f"{symbol}: no {timeframe} candles" + (f" up to {until}" if until is not None else ""))
    return universe


_CACHES: dict[str, FitCache] = {}


def regime_update(data_dir: str, exchange: str, symbol: str, timeframe: str, symbols: tuple[str, ...],
                  settings: RegimeSettings, until: str, since: str | None) -> dict[str, Any]:
    """Labels of ``symbol``'s candles in (``since``, ``until``] and its current regime, from
    the store's history up to ``until`` (module level: runs in the engine's regime worker).

    ``{"bars": [[time, id or None, probability or None], ...], "names": {id: name},
    "warming_up": reason or None, "refits", "fits", "seconds", "pid", "t0", "t1"}``; ``t0`` and
    ``t1`` are the wall-clock start and end of the call (imports included)."""
    t0 = time.time()
    from singularity.data.store import CandleStore
    from singularity.regimes.analysis import analyse_symbol

    stop = pd.Timestamp(until)
    universe = load_universe(CandleStore(Path(data_dir)), exchange, symbol, timeframe, symbols, stop)
    cache = _CACHES.setdefault(symbol, FitCache())
    cache.reset((str(universe[symbol].index[0]), settings))
    out: dict[str, Any] = {"bars": [], "names": {}, "warming_up": None, "fits": 0, "pid": os.getpid()}
    try:
        a = analyse_symbol(universe, symbol, settings, cache=cache)
    except DataError as e:  # too little history yet: no regime
        out["warming_up"] = str(e)
    else:
        labels, prob = a.labels(), a.probability()
        keep = labels.index > pd.Timestamp(since) if since is not None else np.ones(len(labels), dtype=bool)
        out["bars"] = [[ts.isoformat(), None if np.isnan(r) else int(r), None if np.isnan(p) else round(float(p), 4)]
                       for ts, r, p in zip(labels.index[keep], labels.to_numpy()[keep], prob.to_numpy()[keep],
                                           strict=True)]
        out["names"] = {int(k): v for k, v in a.names.items()}
        out["fits"] = a.result.fits
    out["refits"] = cache.refits
    t1 = time.time()
    out.update(seconds=round(t1 - t0, 4), t0=t0, t1=t1)
    return out
