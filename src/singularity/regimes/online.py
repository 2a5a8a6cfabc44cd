"""Regimes of a growing history: what ``singularity regimes SYMBOL --until T`` computes, for
the engine's regime worker, called again at every new candle, at a cost per candle that does
not grow with the history.

``load_universe`` reads the store as the command does (the symbol and every other stored
symbol of the universe, cut at ``until``). ``regime_update`` runs in the engine's regime
worker (a spawned process) and keeps a ``SymbolRegimes`` per symbol: the candles read so far
(only the recent ones), the regime features of every bar, the fitted windows (``FitCache``:
HDBSCAN refits once per ``refit_every`` bars) and the walk-forward state after the last
complete refit block (stable ids, fill prototypes, classifier, persistence filter). A new
candle costs a range read of the newer candles (the store keeps the manifest and the log rows it
read: only the log's new batches are read), the features of the new rows from a trailing
slice (the features are window-local, so these equal the whole history's bit for bit), and
the labels of the open block; the regime names come from per-regime sums kept over the closed
blocks' bars plus the open block's (``RunningRegimeStats``: equal to sums over every bar).
The result equals ``analyse_symbol`` on the store cut at ``until``. When it cannot continue
exactly (``until`` moved back, another asset's candles arrived for bars whose refit block is
closed, an asset's first candles appeared), it starts again from the whole store. Not seen:
a stored candle rewritten or inserted before the newest one read (the engine appends).
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
from singularity.regimes.classifier import RunningRegimeStats
from singularity.regimes.model import (
    UNCLASSIFIED,
    DynamicRegimeModel,
    FitCache,
    PersistState,
    Walk,
    persist_from,
)
from singularity.regimes.settings import CROSS_COLUMN, RegimeSettings
from singularity.timeframes import timeframe_delta


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


READ_AHEAD = 96
"""Bars read beyond ``until`` when the store holds them (a replay): the next updates need no read."""


class _Rows:
    """A growing array (rows appended or rewritten from a row on) without copying the
    history at every append."""

    def __init__(self, shape: tuple[int, ...], dtype: Any, fill: Any) -> None:
        self.data = np.full((64, *shape), fill, dtype=dtype)
        self.fill = fill
        self.n = 0

    def set(self, at: int, rows: np.ndarray) -> None:
        """Rows ``at`` .. ``at + len(rows)`` become ``rows``; rows after them are dropped."""
        end = at + len(rows)
        if end > len(self.data):
            grown = np.full((max(end, 2 * len(self.data)), *self.data.shape[1:]), self.fill, dtype=self.data.dtype)
            grown[:self.n] = self.data[:self.n]
            self.data = grown
        self.data[at:end] = rows
        self.n = end

    def view(self) -> np.ndarray:
        return self.data[:self.n]


Candles = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Timestamps (int64 ns, UTC), closes and volumes of one asset's candles."""


def _arrays(df: pd.DataFrame) -> Candles:
    return (pd.DatetimeIndex(df.index).as_unit("ns").asi8, df["close"].to_numpy(dtype=np.float64),
            df["volume"].to_numpy(dtype=np.float64))


def _since(c: Candles, t: int) -> Candles:
    """The candles at or after ``t`` (ns)."""
    i = int(np.searchsorted(c[0], t))
    return c[0][i:], c[1][i:], c[2][i:]


def _concat(a: Candles, b: Candles) -> Candles:
    return tuple(np.concatenate([x, y]) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


class _Resume(Exception):
    """The state cannot continue exactly: start again from the whole store."""


class SymbolRegimes:
    """One symbol's regimes over a growing history (see the module docstring)."""

    def __init__(self, exchange: str, symbol: str, timeframe: str, symbols: Sequence[str],
                 settings: RegimeSettings) -> None:
        s = settings
        self.exchange, self.symbol, self.timeframe, self.s = exchange, symbol, timeframe, s
        self.others = tuple(x for x in symbols if x != symbol)
        self.model = DynamicRegimeModel(s)
        self.bar = int(timeframe_delta(timeframe).value)  # ns
        self.cache = FitCache()
        self.margin = s.warmup_bars + 2
        """Candles of a trailing slice before the first row taken from it (every window held)."""
        self.keep = s.refit_every + 2 * self.margin
        """Candles of the symbol kept in memory (the open block's rows can be recomputed)."""
        self.until: int | None = None  # ns
        self.last: dict[str, int] = {}  # each asset's newest candle taken (ns)
        self.tails: dict[str, Candles] = {}  # each asset's recent candles
        self.ahead: dict[str, Candles] = {}  # candles read after ``until``
        self.tail_at = 0  # row of the symbol's first kept candle
        self.times = _Rows((), np.int64, 0)
        self.x: _Rows | None = None
        self.columns: list[str] = []
        self.feature_error: DataError | None = None
        self.walk: Walk | None = None
        self.start = 0  # the first refit row
        self.open_at = 0  # first row of the refit block still growing
        self.pstate: PersistState | None = None
        self.redo_from: int | None = None  # rows whose features changed since the last labels
        self.labels = _Rows((), np.int64, UNCLASSIFIED)
        self.proba = _Rows((s.max_regimes,), np.float64, np.nan)
        self.known = _Rows((s.max_regimes,), bool, False)
        self.stats: RunningRegimeStats | None = None  # the regimes' statistics (``names``)

    # -- candles and features ------------------------------------------------------------

    def load(self, store: Any, until: pd.Timestamp) -> None:
        """From the whole store up to ``until`` (what the command reads)."""
        from singularity.regimes.features import symbol_regime_features

        universe = load_universe(store, self.exchange, self.symbol, self.timeframe, self.others, until)
        self.until = until.value
        tails = {k: _arrays(df) for k, df in universe.items() if len(df)}
        self.last = {k: int(c[0][-1]) for k, c in tails.items()}
        self.times.set(0, tails[self.symbol][0])
        try:
            feats, _ = symbol_regime_features(universe, self.symbol, self.s)
        except DataError as e:
            self.feature_error = e  # said while warming up; the next update reads the store again
            return
        self.columns = list(feats.columns)
        self.x = _Rows((len(self.columns),), np.float64, np.nan)
        self.x.set(0, feats.to_numpy())
        self.tails = tails
        self._trim()

    def _trim(self) -> None:
        own = self.tails[self.symbol]
        cut = max(0, len(own[0]) - self.keep)
        if cut:
            self.tail_at += cut
            first = own[0][cut]
            self.tails = {k: _since(c, first) for k, c in self.tails.items()}

    def advance(self, store: Any, until: pd.Timestamp) -> None:
        """Read the candles after those read so far (up to ``until``) and compute the rows
        they add or change; ``_Resume`` when that cannot be done exactly."""
        stop = until.value
        if self.x is None or self.until is None or stop < self.until:
            raise _Resume
        new: dict[str, Candles] = {}
        for k in (self.symbol, *self.others):
            c = self._newer(store, k, stop)
            if c is not None and len(c[0]):
                new[k] = c
        self.until = stop
        if not new:
            return
        n = self.times.n
        times = self.times.view()
        r0 = n  # first row to (re)compute: the symbol's new candles, or earlier where another
        for k, c in new.items():  # asset's candles arrived for times the symbol already has
            if k != self.symbol:
                if k not in self.last:  # an asset's first candles: the whole store is read
                    raise _Resume  # again (the cross-asset column may appear, its checks run)
                r0 = min(r0, int(np.searchsorted(times, c[0][0])))
        if self.walk is not None and r0 < self.open_at:
            raise _Resume  # rows a closed refit block (or the open block's fit) was computed from
        self.redo_from = r0 if self.redo_from is None else min(self.redo_from, r0)
        lo = max(0, r0 - self.margin)
        if lo < self.tail_at:
            raise _Resume
        for k, c in new.items():
            self.tails[k] = _concat(self.tails[k], c) if k in self.tails else c
            self.last[k] = int(c[0][-1])
        if self.symbol in new:
            self.times.set(n, new[self.symbol][0])
        self.x.set(r0, self._rows(lo, r0))
        self._trim()

    def _newer(self, store: Any, k: str, stop: int) -> Candles | None:
        """``k``'s candles after those taken so far, up to ``stop`` (ns): from the candles
        read ahead when they reach it, else from a range read after the newest candle read (it
        opens only the months it needs; up to ``READ_AHEAD`` bars beyond ``stop`` are kept for
        the next updates: a replay's store already holds them, a live one does not)."""
        ahead = self.ahead.get(k)
        seen = int(ahead[0][-1]) if ahead is not None and len(ahead[0]) else self.last.get(k)
        if seen is None or seen < stop:
            if seen is None and (k == self.symbol or not store.exists(self.exchange, k, self.timeframe)):
                return None  # not stored: it does not feed the cross-asset level
            ts, cols = store.read_arrays(self.exchange, k, self.timeframe,
                                         start=None if seen is None else pd.Timestamp(seen + self.bar, tz="UTC"),
                                         end=pd.Timestamp(stop + READ_AHEAD * self.bar, tz="UTC"))
            got = (ts, cols["close"], cols["volume"])  # the read starts a bar after ``seen``
            ahead = got if ahead is None else _concat(ahead, got)
        if ahead is None:
            return None
        cut = int(np.searchsorted(ahead[0], stop, side="right"))
        self.ahead[k] = (ahead[0][cut:], ahead[1][cut:], ahead[2][cut:])
        return ahead[0][:cut], ahead[1][:cut], ahead[2][:cut]

    def _rows(self, lo: int, r0: int) -> np.ndarray:
        """Features of the symbol's rows r0 .. (its last) from the trailing slice that starts
        at row ``lo`` (``symbol_regime_features``' computation on the slice: window-local, so
        equal to the whole history's)."""
        from singularity.regimes.features import cross_level_array, own_feature_array

        st, close, volume = (a[lo - self.tail_at:] for a in self.tails[self.symbol])
        x = own_feature_array(close, volume, self.s)
        if CROSS_COLUMN in self.columns:
            stamps, closes = [st], [close]
            for k, c in self.tails.items():
                if k != self.symbol:
                    c = _since(c, int(st[0]))
                    if len(c[0]):
                        stamps.append(c[0])
                        closes.append(c[1])
            level = (cross_level_array(stamps, closes, self.s, first=r0 - lo) if len(stamps) > 1
                     else np.full(len(st), np.nan))  # no other asset has candles in these windows
            x = np.column_stack([x, level])
        return x[r0 - lo:]

    # -- labels ----------------------------------------------------------------------------

    def label(self) -> None:
        """Walk-forward labels of every row (``label_history``'s, resumed from the last
        complete refit block); DataError while warming up."""
        from singularity.regimes.analysis import check_history

        s, n = self.s, self.times.n
        check_history(self.symbol, n, s)
        if self.feature_error is not None or self.x is None:
            raise self.feature_error or DataError(f"{self.symbol}: no regime features")
        x = self.x.view()
        if self.walk is None:
            start = self.model.start_row(x, self.symbol)
            cols = self.model.cluster_columns(self.columns, x.shape[1], self.symbol)
            self.walk, self.open_at, self.start = Walk(s, cols), start, start
            self.labels.set(0, np.full(start, UNCLASSIFIED, dtype=np.int64))
            self.proba.set(0, np.full((start, s.max_regimes), np.nan))
            self.known.set(0, np.zeros((start, s.max_regimes), dtype=bool))
        walk = self.walk
        while self.open_at + s.refit_every <= n:  # blocks completed since the last call
            a = self.open_at
            self._block(walk, a, a + s.refit_every, commit=True)
            self.open_at = a + s.refit_every
        if self.open_at < n:
            self._block(walk.copy(), self.open_at, n, commit=False)
        else:
            for rows in (self.labels, self.proba, self.known):
                rows.n = n
        self.redo_from = None

    def _block(self, walk: Walk, a: int, b: int, *, commit: bool) -> None:
        s = self.s
        x = self.x.view()  # type: ignore[union-attr]
        fit = self.cache.result(x, a, b, s, walk.cols, redo_from=self.redo_from)
        raw, proba, known = walk.apply(fit, x[a:b])
        state = self.pstate or (int(raw[0]), int(raw[0]), 0)
        labels, state = persist_from(raw, s.persistence, state)
        if commit:
            self.pstate = state
        self.labels.set(a, labels)
        self.proba.set(a, proba)
        self.known.set(a, known)

    @property
    def fits(self) -> int:
        """Refit points so far (``RegimeLabels.fits``)."""
        if self.walk is None:
            return 0
        return -(-(self.times.n - self.start) // self.s.refit_every)

    def names(self) -> dict[int, str]:
        """``regime_stats``' names of every row's labels: the rows of the closed refit blocks
        (their labels and features final) are folded into running sums once, each call adds
        the open block's rows (the persistence filter may still relabel them)."""
        from singularity.regimes.classifier import regime_name

        x, lab = self.x.view(), self.labels.view()  # type: ignore[union-attr]
        if self.stats is None:
            self.stats = RunningRegimeStats(self.columns)
        st = self.stats
        final = self.open_at if self.walk is not None else 0
        if final > st.folded:
            st.fold(x[st.folded:final], lab[st.folded:final])
        return {k: regime_name(v) for k, v in st.stats(x[st.folded:], lab[st.folded:]).items()}

    def bars(self, since: pd.Timestamp | None) -> list[list[Any]]:
        """[time, id or None, probability or None] of the rows after ``since``."""
        times = self.times.view()
        first = 0 if since is None else int(np.searchsorted(times, since.value, side="right"))
        lab = self.labels.view()[first:]
        proba, known = self.proba.view()[first:], self.known.view()[first:]
        out = []
        for i, (t, r) in enumerate(zip(times[first:].tolist(), lab.tolist(), strict=True)):
            p = proba[i, r] if r >= 0 and known[i, r] else np.nan
            out.append([pd.Timestamp(t, tz="UTC").isoformat(), None if r < 0 else int(r),
                        None if np.isnan(p) else round(float(p), 4)])
        return out


_STATES: dict[str, tuple[Any, SymbolRegimes]] = {}
_STORES: dict[str, Any] = {}


def regime_update(data_dir: str, exchange: str, symbol: str, timeframe: str, symbols: tuple[str, ...],
                  settings: RegimeSettings, until: str, since: str | None) -> dict[str, Any]:
    """Labels of ``symbol``'s candles in (``since``, ``until``] and its current regime, equal
    to those of the store's history up to ``until`` (module level: runs in the engine's
    regime worker, which keeps each symbol's state between calls).

    ``{"bars": [[time, id or None, probability or None], ...], "names": {id: name},
    "warming_up": reason or None, "refits", "fits", "seconds", "pid", "t0", "t1", "resumed"}``;
    ``t0`` and ``t1`` are the wall-clock start and end of the call (imports included);
    ``resumed``: False when the whole store was read."""
    t0 = time.time()
    from singularity.data.store import CandleStore

    stop = pd.Timestamp(until)
    store = _STORES.get(data_dir)
    if store is None:  # opened once per worker (opening a store looks for old layouts to migrate)
        store = _STORES[data_dir] = CandleStore(Path(data_dir))
    key = (data_dir, exchange, timeframe, tuple(symbols), settings)
    held = _STATES.get(symbol)
    st = held[1] if held is not None and held[0] == key else None
    resumed = st is not None
    out: dict[str, Any] = {"bars": [], "names": {}, "warming_up": None, "fits": 0, "pid": os.getpid()}
    try:
        try:
            if st is None:
                raise _Resume
            st.advance(store, stop)
        except _Resume:
            st = SymbolRegimes(exchange, symbol, timeframe, symbols, settings)
            _STATES[symbol] = (key, st)
            resumed = False
            st.load(store, stop)
        try:
            st.label()
        except DataError as e:  # too little history yet: no regime
            out["warming_up"] = str(e)
        else:
            out["bars"] = st.bars(pd.Timestamp(since) if since is not None else None)
            out["names"] = st.names()
            out["fits"] = st.fits
    except BaseException:
        _STATES.pop(symbol, None)  # a half-made update: the next one starts from the whole store
        raise
    out["refits"] = st.cache.refits
    out["resumed"] = resumed
    t1 = time.time()
    out.update(seconds=round(t1 - t0, 4), t0=t0, t1=t1)
    return out
