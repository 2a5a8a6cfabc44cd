"""The engine's regime worker (``regimes.online.regime_update``) resumes from its state at each
new candle, reading only the newer candles, and still equals the offline computation on the
store cut at the same candle (``singularity regimes --until``), also when another asset's
candles arrive late, when a new asset appears and when ``until`` moves back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from small_regimes import SMALL

from singularity.data.store import CandleStore
from singularity.errors import DataError
from singularity.regimes.analysis import analyse_symbol
from singularity.regimes.online import load_universe, regime_update
from singularity.regimes.synthetic import planted_regime_market

SYM = "S0/USDT"


def _offline(store: CandleStore, symbols: tuple[str, ...], until: pd.Timestamp, since: str | None) -> dict:
    universe = load_universe(store, "ex", SYM, "1h", symbols, until)
    try:
        a = analyse_symbol(universe, SYM, SMALL)
    except DataError as e:  # the worker reports the same message while warming up
        return {"warming_up": str(e), "bars": [], "names": {}, "fits": 0}
    labels, prob = a.labels(), a.probability()
    keep = labels.index > pd.Timestamp(since) if since is not None else np.ones(len(labels), dtype=bool)
    bars = [[t.isoformat(), None if np.isnan(r) else int(r), None if np.isnan(p) else round(float(p), 4)]
            for t, r, p in zip(labels.index[keep], labels.to_numpy()[keep], prob.to_numpy()[keep], strict=True)]
    return {"warming_up": None, "bars": bars, "names": {int(k): v for k, v in a.names.items()},
            "fits": a.result.fits}


def test_resumed_updates_equal_the_offline_computation(tmp_path, monkeypatch) -> None:
    reads: list[tuple[str, str, object]] = []
    plain_read, plain_arrays = CandleStore.read, CandleStore.read_arrays

    def read(self, exchange, symbol, timeframe, start=None, end=None):
        reads.append(("frame", symbol, start))
        return plain_read(self, exchange, symbol, timeframe, start, end)

    def read_arrays(self, exchange, symbol, timeframe, start=None, end=None):
        reads.append(("arrays", symbol, start))
        return plain_arrays(self, exchange, symbol, timeframe, start, end)

    universe, _ = planted_regime_market(3, n_bars=760, seed=7, min_spell=100, max_spell=220)
    universe[SYM] = universe[SYM].drop(universe[SYM].index[500:503])  # a gap in the symbol
    symbols = tuple(universe)
    store = CandleStore(tmp_path)
    idx = universe[SYM].index
    first = 330  # before the first fit (warming up) ...
    store.write("ex", SYM, "1h", universe[SYM])
    store.write("ex", "S1/USDT", "1h", universe["S1/USDT"].loc[:idx[first]])  # S1 lags; S2 comes later
    since, resumed, n = None, [], 0
    steps = [1, 1, 2, 1, 3, 1, 1, 5, 1, 1, 1, 40, 1, 2, 1, 1, 1, 7, 1, 1]
    pos = first
    for i in range(44):
        pos += steps[i % len(steps)]
        if pos >= len(idx):
            break
        until = idx[pos]
        if i == 18:  # S2's whole history appears: the cross-asset level changes, a fresh start
            store.write("ex", "S2/USDT", "1h", universe["S2/USDT"].loc[:until])
        s1_to = idx[pos - 1] if i % 3 else until  # S1 often one candle behind, then caught up
        store.write("ex", "S1/USDT", "1h", universe["S1/USDT"].loc[:s1_to])
        if i > 18:
            store.write("ex", "S2/USDT", "1h", universe["S2/USDT"].loc[:until])
        if i == 33:  # an earlier candle again: from the whole store
            until, since = idx[pos - 30], idx[pos - 31].isoformat()
        reads.clear()
        with monkeypatch.context() as m:
            m.setattr(CandleStore, "read", read)
            m.setattr(CandleStore, "read_arrays", read_arrays)
            got = regime_update(str(tmp_path), "ex", SYM, "1h", symbols, SMALL, until.isoformat(), since)
        if got["resumed"]:  # range reads: only the candles after those read before
            assert all(kind == "arrays" and start is not None for kind, _, start in reads), reads
        want = _offline(store, symbols, until, since)
        assert {k: got[k] for k in want} == want, (i, until)
        resumed.append(got["resumed"])
        n += len(got["bars"])
        since = until.isoformat()
    assert n > 150 and not resumed[0]
    # fresh starts: the first call, S2 appearing, until moving back, and an S1 candle arriving
    # for a bar whose refit block had closed meanwhile (rare); every other call resumed
    assert sum(resumed) >= len(resumed) - 5, resumed


def test_a_failed_update_leaves_no_half_made_state(tmp_path, monkeypatch) -> None:
    universe, _ = planted_regime_market(2, n_bars=560, seed=7, min_spell=100, max_spell=220)
    symbols = tuple(universe)
    store = CandleStore(tmp_path)
    for k, df in universe.items():
        store.write("ex", k, "1h", df)
    idx = universe[SYM].index
    regime_update(str(tmp_path), "ex", SYM, "1h", symbols, SMALL, idx[-6].isoformat(), None)
    plain = CandleStore.read_arrays

    def failing(self, exchange, symbol, *a, **k):
        if symbol == "S1/USDT":
            raise OSError("disk gone")
        return plain(self, exchange, symbol, *a, **k)

    with monkeypatch.context() as m:  # S0's newer candles are taken, then S1's read fails
        m.setattr(CandleStore, "read_arrays", failing)
        m.setattr("singularity.regimes.online.READ_AHEAD", 1)
        with pytest.raises(OSError, match="disk gone"):
            regime_update(str(tmp_path), "ex", SYM, "1h", symbols, SMALL, idx[-5].isoformat(), idx[-6].isoformat())
    got = regime_update(str(tmp_path), "ex", SYM, "1h", symbols, SMALL, idx[-4].isoformat(), idx[-6].isoformat())
    assert got["resumed"] is False
    want = _offline(store, symbols, idx[-4], idx[-6].isoformat())
    assert {k: got[k] for k in want} == want and len(got["bars"]) == 2
