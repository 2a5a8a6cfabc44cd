"""Cross-asset graph features: exact values on hand-built universes, gaps, causality, GNN."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from singularity.errors import DataError
from singularity.features.catalogue import check_catalogue
from singularity.features.causality import assert_causal
from singularity.features.gnn import clear_model_cache
from singularity.features.graph import graph_features, min_overlap_bars
from singularity.features.settings import GraphSettings

NO_GNN = GraphSettings(corr_window=8, corr_min_overlap=0.75, edge_threshold=0.3, gnn_enabled=False)
SMALL_GNN = dict(
    gnn_enabled=True,
    gnn_embedding_dim=2,
    gnn_hidden=8,
    gnn_train_window=100,
    gnn_retrain_every=40,
    gnn_epochs=3,
    gnn_batch_bars=32,
)


def frames_from_returns(returns: dict[str, np.ndarray], start: str = "2024-01-01") -> dict:
    """Candles whose log returns are exactly ``returns`` (row 0 has no return)."""
    out = {}
    for sym, r in returns.items():
        close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))
        idx = pd.date_range(start, periods=len(close), freq="1h", tz="UTC", name="timestamp")
        out[sym] = pd.DataFrame(
            {"open": close, "high": close, "low": close, "close": close, "volume": 1.0},
            index=idx,
        )
    return out


def naive_reference(universe: dict, s: GraphSettings) -> dict[str, np.ndarray]:
    """Straight from the definitions, one bar and one pair at a time (no shared code)."""
    index = sorted(set().union(*(f.index for f in universe.values())))
    close = np.column_stack([f["close"].reindex(index).to_numpy() for f in universe.values()])
    r = np.full(close.shape, np.nan)
    r[1:] = np.log(close[1:] / close[:-1])
    t_len, n = r.shape
    min_obs = math.ceil(s.corr_min_overlap * s.corr_window)
    out = {k: np.full((t_len, n), np.nan) for k in ("deg", "str", "eig", "nbr")}
    for k in range(t_len):
        lo = max(0, k - s.corr_window + 1)
        rho = np.full((n, n), np.nan)
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                a, b = r[lo : k + 1, i], r[lo : k + 1, j]
                ok = np.isfinite(a) & np.isfinite(b)
                if ok.sum() >= min_obs:
                    rho[i, j] = np.corrcoef(a[ok], b[ok])[0, 1]
        active = np.isfinite(r[k])
        adj = np.zeros((n, n))
        for i in range(n):
            if not active[i]:
                continue
            nbrs = [j for j in range(n) if j != i and active[j] and np.isfinite(rho[i, j])]
            edges = [j for j in nbrs if abs(rho[i, j]) >= s.edge_threshold]
            if nbrs:
                out["deg"][k, i] = len(edges) / len(nbrs)
                out["str"][k, i] = np.mean([abs(rho[i, j]) for j in nbrs])
            if edges:
                out["nbr"][k, i] = sum(rho[i, j] * r[k, j] for j in edges) / sum(
                    abs(rho[i, j]) for j in edges
                )
            for j in edges:
                adj[i, j] = abs(rho[i, j])
        valid = np.isfinite(out["deg"][k])
        if valid.any() and adj.any():
            v = np.ones(n)  # power iteration on A + I (aperiodic), from the uniform vector
            for _ in range(3000):
                v = (adj + np.eye(n)) @ v
                v /= np.linalg.norm(v)
            v[np.abs(v) < 1e-9] = 0.0  # nodes outside the main component
            out["eig"][k, valid] = v[valid] * math.sqrt(valid.sum())
        elif valid.any():
            out["eig"][k, valid] = 0.0
    return out


def test_three_assets_known_values() -> None:
    """B = 2A, C = -A: every |rho| = 1, so every value follows by hand."""
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.01, 40)
    uni = frames_from_returns({"A": x, "B": 2 * x, "C": -x})
    out, specs = graph_features(uni, NO_GNN)
    rows = slice(min_overlap_bars(NO_GNN), None)  # first row with 6 returns in the window
    xt = np.concatenate([[np.nan], x])[rows]
    for sym in "ABC":
        f = out[sym].iloc[rows]
        np.testing.assert_allclose(f["graph_degree"], 1.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(f["graph_strength"], 1.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(f["graph_eigcent"], 1.0, rtol=0, atol=1e-12)
        assert out[sym].iloc[: rows.start].isna().all().all()  # warm-up: NaN, not filled
    # A: (1 * 2x + (-1) * (-x)) / 2 = 1.5x ; B: (x + x) / 2 = x ; C: (-x - 2x) / 2 = -1.5x
    np.testing.assert_allclose(out["A"]["graph_nbr_ret"].iloc[rows], 1.5 * xt, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["B"]["graph_nbr_ret"].iloc[rows], xt, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["C"]["graph_nbr_ret"].iloc[rows], -1.5 * xt, rtol=0, atol=1e-12)
    # lead-lag of A on B, C is a, -a with a = corr(x_t, x_t-1): A gets sign(a) * 1.5 x_t
    k = 30
    a = np.corrcoef(x[k - 8 : k], x[k - 9 : k - 1])[0, 1]
    assert out["A"]["graph_leadlag_ret"].iloc[k] == pytest.approx(
        np.sign(a) * 1.5 * x[k - 1], abs=1e-12
    )
    check_catalogue(out["A"].columns, specs, "graph")
    assert [s.family for s in specs] == ["graph"] * len(specs)


def test_matches_naive_reference_with_gap_and_threshold() -> None:
    rng = np.random.default_rng(7)
    t_len = 70
    common = rng.normal(0, 0.01, t_len)
    loads = [0.9, 0.6, 0.3, -0.5]
    rets = {f"S{i}": b * common + rng.normal(0, 0.01, t_len) for i, b in enumerate(loads)}
    uni = frames_from_returns(rets)
    uni["S1"] = uni["S1"].drop(uni["S1"].index[30:34])  # a gap inside the windows
    s = GraphSettings(
        corr_window=12,
        corr_min_overlap=0.75,
        edge_threshold=0.3,
        lead_lag=False,
        gnn_enabled=False,
    )
    out, _ = graph_features(uni, s)
    ref = naive_reference(uni, s)
    index = out["S0"].index  # S0 has every bar
    for n_i, sym in enumerate(uni):
        got = out[sym].reindex(index)
        for col, key in (
            ("graph_degree", "deg"),
            ("graph_strength", "str"),
            ("graph_nbr_ret", "nbr"),
        ):
            np.testing.assert_allclose(got[col], ref[key][:, n_i], rtol=0, atol=1e-12)
        np.testing.assert_allclose(got["graph_eigcent"], ref["eig"][:, n_i], rtol=0, atol=1e-9)
    # the reference really exercised thresholds and gaps
    deg = np.concatenate([ref["deg"][:, i] for i in range(4)])
    assert np.nanmin(deg) < 1.0 and np.nanmax(deg) == 1.0
    assert np.isnan(ref["deg"][34, 1])  # S1's first bar back has no return


def test_gap_is_not_carried_forward() -> None:
    rng = np.random.default_rng(11)
    common = rng.normal(0, 0.01, 60)
    rets = {
        "A": common + rng.normal(0, 0.002, 60),
        "B": common + rng.normal(0, 0.002, 60),
        "C": -common + rng.normal(0, 0.002, 60),
    }
    full = frames_from_returns(rets)
    gap = full["B"].index[40:45]
    uni = dict(full, B=full["B"].drop(gap))
    out, _ = graph_features(uni, NO_GNN)
    assert not out["B"].index.isin(gap).any()  # indexed like B's own candles
    after = full["B"].index[45]  # back, but without a previous candle: no return
    assert out["B"].loc[after].isna().all()
    # during the gap A's only neighbour is C (rho ~ -1): the message is -r_C, B plays no part
    r_c = np.log(full["C"]["close"]).diff()
    for ts in [*gap, after]:
        assert out["A"].loc[ts, "graph_nbr_ret"] == pytest.approx(-r_c[ts], abs=1e-12)
        assert out["A"].loc[ts, "graph_degree"] == 1.0  # one valid neighbour, one edge
    # a forward-filled B (flat price, zero returns) would change A's features there
    filled = dict(full, B=uni["B"].reindex(full["B"].index).ffill())
    ffout, _ = graph_features(filled, NO_GNN)
    assert not np.allclose(ffout["A"].loc[gap, "graph_nbr_ret"], out["A"].loc[gap, "graph_nbr_ret"])


def test_bad_input_errors() -> None:
    uni = frames_from_returns({"A": np.zeros(20) + 0.01, "B": np.zeros(20)})
    with pytest.raises(DataError, match="at least 2 assets"):
        graph_features({"A": uni["A"]}, NO_GNN)
    late = uni["B"].copy()
    late.index = late.index + pd.Timedelta(days=30)
    with pytest.raises(DataError, match=r"do not overlap in time: A ends at .* before B starts"):
        graph_features({"A": uni["A"], "B": late}, NO_GNN)
    with pytest.raises(DataError, match="B has no candles"):
        graph_features({"A": uni["A"], "B": uni["B"].iloc[:0]}, NO_GNN)
    bad = uni["B"].copy()
    bad.iloc[5, bad.columns.get_loc("close")] = np.nan
    with pytest.raises(DataError, match="B has a NaN or non-positive close"):
        graph_features({"A": uni["A"], "B": bad}, NO_GNN)
    naive = uni["B"].tz_localize(None)
    with pytest.raises(DataError, match="tz-aware"):
        graph_features({"A": uni["A"], "B": naive}, NO_GNN)
    for err in (DataError,):
        try:
            graph_features({"A": uni["A"]}, NO_GNN)
        except err as exc:
            assert "\n" not in str(exc)


@pytest.fixture(scope="module")
def real_universe(load_feather) -> dict[str, pd.DataFrame]:
    uni = {b: load_feather(b, "1h", tail=500) for b in ("BTC", "ETH", "SOL")}
    start = max(f.index[0] for f in uni.values())  # the files end at different hours
    uni = {b: f.loc[f.index >= start].iloc[:420] for b, f in uni.items()}
    uni["ETH"] = uni["ETH"].drop(uni["ETH"].index[200:203])  # a real gap in the middle
    return uni


@pytest.mark.realdata
def test_lookahead_real_data_with_gnn(real_universe) -> None:
    s = GraphSettings(corr_window=24, **SMALL_GNN)
    p0 = min_overlap_bars(s) + s.gnn_train_window  # first retrain: an off-by-one shows here
    full, specs = graph_features(real_universe, s)
    assert full["BTC"]["graph_gnn_pup"].iloc[:p0].isna().all()
    assert full["BTC"]["graph_gnn_pup"].iloc[p0:].notna().all()
    assert specs[-1].warmup == p0
    for spec in specs:  # the declared warm-up is where values start (BTC has no gap here)
        assert full["BTC"][spec.name].notna().to_numpy().argmax() == spec.warmup, spec.name
    assert_causal(
        lambda u: graph_features(u, s),
        real_universe,
        points=[p0, p0 + s.gnn_retrain_every, 203, 204, 250, -1],
        whole_prefix=True,
    )


@pytest.mark.realdata
def test_lookahead_catches_a_gnn_off_by_one(real_universe, monkeypatch) -> None:
    """Training on [p-L+1, p] (target r[p+1], unknown at p) must fail the lookahead test."""
    from singularity.features import gnn

    monkeypatch.setattr(gnn, "training_rows", lambda p, n: slice(p - n + 1, p + 1))
    s = GraphSettings(corr_window=24, **SMALL_GNN)
    p0 = min_overlap_bars(s) + s.gnn_train_window
    with pytest.raises(AssertionError, match=r"graph_gnn_.* is not causal"):
        assert_causal(lambda u: graph_features(u, s), real_universe, points=[p0])


@pytest.mark.realdata
def test_causality_checker_catches_a_leak(real_universe) -> None:
    """Sanity of the test above: the same family fed the next bar's close must fail it."""
    s = GraphSettings(corr_window=24, gnn_enabled=False)

    def leaky(u: dict) -> tuple:
        shifted = {k: v.assign(close=v["close"].shift(-1).fillna(v["close"])) for k, v in u.items()}
        return graph_features(shifted, s)

    with pytest.raises(AssertionError, match="not causal"):
        assert_causal(leaky, real_universe, points=[100, 300])


class ReversedPool:
    """A pool that runs the jobs in reverse order (results must not depend on the order) and
    counts them."""

    def __init__(self) -> None:
        self.jobs = 0

    def map(self, fn, items):
        items = list(items)
        self.jobs += len(items)
        return [fn(x) for x in items[::-1]][::-1]


@pytest.mark.realdata
def test_gnn_deterministic_any_order_and_seeded(real_universe) -> None:
    s = GraphSettings(corr_window=24, **SMALL_GNN)
    clear_model_cache()
    a, _ = graph_features(real_universe, s)
    clear_model_cache()  # retrain for real, in another order
    pool = ReversedPool()
    b, _ = graph_features(real_universe, s, pool=pool)
    assert pool.jobs == len(range(min_overlap_bars(s) + 100, 420, 40))
    c, _ = graph_features(real_universe, s.model_copy(update={"seed": s.seed + 1}))
    for sym in real_universe:
        pd.testing.assert_frame_equal(a[sym], b[sym], check_exact=True)
        assert a[sym].index.equals(real_universe[sym].index)
    emb = "graph_gnn_emb_0"
    assert not np.allclose(a["BTC"][emb].dropna(), c["BTC"][emb].dropna())
    pd.testing.assert_series_equal(a["BTC"]["graph_nbr_ret"], c["BTC"]["graph_nbr_ret"])


def test_gnn_learns_a_lead_lag_walk_forward() -> None:
    """B's next return follows A's current one: the walk-forward model must find it out of sample."""
    rng = np.random.default_rng(5)
    t_len = 900
    a = rng.normal(0, 0.01, t_len)
    b = np.concatenate([[0.0], 0.8 * a[:-1]]) + rng.normal(0, 0.004, t_len)
    c = 0.5 * a + rng.normal(0, 0.01, t_len)
    uni = frames_from_returns({"A": a, "B": b, "C": c})
    s = GraphSettings(
        corr_window=48,
        edge_threshold=0.0,
        gnn_enabled=True,
        gnn_embedding_dim=2,
        gnn_hidden=8,
        gnn_train_window=200,
        gnn_retrain_every=100,
        gnn_epochs=15,
        gnn_batch_bars=32,
    )
    out, _ = graph_features(uni, s)
    pup = out["B"]["graph_gnn_pup"]
    nxt = np.log(uni["B"]["close"]).diff().shift(-1)
    ok = pup.notna() & nxt.notna()
    assert ok.sum() > 500
    hit = ((pup[ok] > 0.5) == (nxt[ok] > 0)).mean()
    assert hit > 0.75, hit


@pytest.mark.slow
@pytest.mark.realdata
def test_gnn_on_worker_pool_equals_serial(real_universe) -> None:
    """Retrainings spread over two spawned single-threaded workers give the serial result."""
    from singularity.runtime.pool import WorkerPool

    s = GraphSettings(corr_window=24, **SMALL_GNN)
    clear_model_cache()
    serial, _ = graph_features(real_universe, s)
    clear_model_cache()
    with WorkerPool(2) as pool:
        spread, _ = graph_features(real_universe, s, pool=pool)
    for sym in real_universe:
        pd.testing.assert_frame_equal(serial[sym], spread[sym], check_exact=True)


@pytest.mark.realdata
def test_appending_candles_retrains_only_at_retrain_bars(real_universe) -> None:
    """The live case: one more candle reuses every trained model (memo keyed by the training
    data) and equals a from-scratch computation."""
    s = GraphSettings(corr_window=24, **SMALL_GNN)
    p0 = min_overlap_bars(s) + s.gnn_train_window
    last_retrain = p0 + 7 * s.gnn_retrain_every  # 398
    idx = real_universe["BTC"].index

    def upto(row: int) -> dict[str, pd.DataFrame]:
        return {k: v.loc[v.index <= idx[row]] for k, v in real_universe.items()}

    clear_model_cache()
    graph_features(upto(last_retrain - 1), s)
    pool = ReversedPool()
    graph_features(upto(last_retrain), s, pool=pool)
    assert pool.jobs == 1  # a retrain bar: exactly one new model
    extended, _ = graph_features(upto(last_retrain + 3), s, pool=pool)
    assert pool.jobs == 1  # later candles: nothing retrained
    clear_model_cache()
    fresh, _ = graph_features(upto(last_retrain + 3), s)
    for sym in real_universe:
        pd.testing.assert_frame_equal(extended[sym], fresh[sym], check_exact=True)
