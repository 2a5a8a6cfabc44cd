"""The regime statistics kept incrementally (the engine's regime worker) equal those computed
from every bar, bit for bit, at every cut."""

from __future__ import annotations

import numpy as np

from singularity.regimes.classifier import RunningRegimeStats, _merged_median, regime_stats

COLUMNS = ["log_vol_short", "trend", "other", "efficiency", "autocorr", "drawdown"]


def _history(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows whose sums depend on the order of addition (magnitudes 1e-8..1e8, NaNs),
    and labels -1..4 (regime 4 only late, a regime whose trend is always NaN)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(COLUMNS))) * 10.0 ** rng.uniform(-8, 8, (n, len(COLUMNS)))
    x[:, 0] = rng.uniform(-9, 3, n)  # log volatility
    x[rng.random((n, len(COLUMNS))) < 0.1] = np.nan
    labels = rng.integers(-1, 4, n)
    labels[n // 2:][rng.random(n - n // 2) < 0.2] = 4
    x[labels == 3, 1] = np.nan
    return x, labels


def _whole(x: np.ndarray, labels: np.ndarray) -> str:
    return repr(regime_stats({c: x[:, i] for i, c in enumerate(COLUMNS)}, labels))  # repr: NaN == NaN


def test_running_stats_equal_a_whole_history_bincount_at_every_cut() -> None:
    x, final = _history(1200, seed=3)
    rng = np.random.default_rng(7)
    run = RunningRegimeStats(COLUMNS)
    assert run.stats(x[:0], final[:0]) == {} == regime_stats({c: x[:0, i] for i, c in enumerate(COLUMNS)}, final[:0])
    n = 0
    while n < len(final):
        n = min(len(final), n + int(rng.integers(1, 60)))
        settled = max(run.folded, n - int(rng.integers(0, 40)))  # the open rows' labels still move:
        run.fold(x[run.folded:settled], final[run.folded:settled])  # each call relabels them
        labels = final[:n].copy()
        labels[settled:] = rng.integers(-1, 5, n - settled)
        got = repr(run.stats(x[settled:n], labels[settled:]))
        assert got == _whole(x[:n], labels), n
    assert run.folded > 1000


def test_merged_median_is_numpys() -> None:
    rng = np.random.default_rng(0)
    for na, nb in ((0, 1), (1, 0), (5, 4), (400, 7), (1001, 30), (3, 3)):
        a, b = np.sort(rng.standard_normal(na) * 1e3), np.sort(rng.integers(-2, 2, nb).astype(float))
        assert _merged_median(a, b) == float(np.median(np.concatenate([a, b])))
    assert np.isnan(_merged_median(np.empty(0), np.empty(0)))


def test_the_regime_worker_s_statistics_equal_every_bar_s(tmp_path) -> None:
    """``SymbolRegimes`` keeps the statistics of the closed refit blocks and adds the open
    block's rows at each candle: equal to ``regime_stats`` of all its rows at every update,
    also while another asset's late candles change the open block's rows."""
    import pandas as pd
    from small_regimes import SMALL

    from singularity.data.store import CandleStore
    from singularity.regimes.online import _STATES, regime_update
    from singularity.regimes.synthetic import planted_regime_market

    universe, _ = planted_regime_market(2, n_bars=600, seed=7, min_spell=100, max_spell=220)
    symbols, sym = tuple(universe), "S0/USDT"
    store = CandleStore(tmp_path)
    idx = universe[sym].index
    store.write("ex", sym, "1h", universe[sym])
    checked, folded = 0, set()
    for pos in range(400, len(idx), 4):
        until = idx[pos]
        store.write("ex", "S1/USDT", "1h", universe["S1/USDT"].loc[:idx[pos - pos % 2]])  # often behind
        got = regime_update(str(tmp_path), "ex", sym, "1h", symbols, SMALL, until.isoformat(), None)
        st = _STATES[sym][1]
        x, labels = st.x.view(), st.labels.view()
        want = regime_stats({c: x[:, i] for i, c in enumerate(st.columns)}, labels)
        assert st.stats is not None and len(labels) == pos + 1
        assert repr(st.stats.stats(x[st.stats.folded:], labels[st.stats.folded:])) == repr(want), pos
        assert got["names"] and pd.Timestamp(got["bars"][-1][0]) == until
        checked += got["resumed"]
        folded.add(st.stats.folded)
    assert checked > 40 and len(folded) >= 2  # resumed updates, blocks folded as they closed
