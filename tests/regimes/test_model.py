"""DynamicRegimeModel and EnvironmentClassifier on small synthetic markets: causality, stable
ids, persistence, the single-asset case, worker-count independence, one-line errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from small_regimes import SMALL

from singularity.config import load_settings
from singularity.errors import ConfigError, DataError
from singularity.features.causality import assert_causal
from singularity.regimes.analysis import analyse_symbol
from singularity.regimes.classifier import EnvironmentClassifier, regime_name
from singularity.regimes.features import CROSS_COLUMN, symbol_regime_features
from singularity.regimes.model import DynamicRegimeModel, match_clusters, nearest_regime, persist
from singularity.regimes.synthetic import planted_regime_market
from singularity.runtime.pool import WorkerPool


@pytest.fixture(scope="module")
def market() -> tuple[dict[str, pd.DataFrame], np.ndarray]:
    return planted_regime_market(2, n_bars=1000, seed=3, min_spell=100, max_spell=250)


def _family(universe: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """S0's regime features, one-hot labels and probabilities (S1 feeds the cross level)."""
    feats, _ = symbol_regime_features(universe, "S0/USDT", SMALL)
    res = DynamicRegimeModel(SMALL).label_history(feats.to_numpy(), columns=list(feats.columns))
    k = np.arange(SMALL.max_regimes)
    out = np.hstack([(res.labels[:, None] == k).astype(float), res.proba])
    cols = [f"regime_{i}" for i in k] + [f"regime_p_{i}" for i in k]
    return pd.concat([pd.DataFrame(out, index=feats.index, columns=cols), feats], axis=1)


def test_labels_and_probabilities_are_causal(market) -> None:
    universe, _ = market
    full = _family(universe)
    first = int(np.flatnonzero(full["regime_p_0"].notna().to_numpy())[0])
    assert first >= SMALL.window
    # rows right after the first fit, just before and after refits, and the last row
    rows = [first, first + 99, first + 100, first + 350, len(full) - 1]
    assert_causal(_family, universe, points=rows, whole_prefix=True)
    assert full.loc[full.index[first:], [f"regime_{k}" for k in range(SMALL.max_regimes)]
                    ].to_numpy().sum() > 0.5 * (len(full) - first)


def test_persistence_filter() -> None:
    raw = np.array([0, 0, 1, 0, 1, 1, 1, -1, -1, 1, 2, 2, 2, 2])
    assert persist(raw, 1).tolist() == raw.tolist()
    assert persist(raw, 3).tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2]


def test_match_clusters_keeps_ids() -> None:
    scale = np.ones(2)
    slots = [(np.array([0.0, 0.0]), scale), (np.array([5.0, 5.0]), scale), None, None]
    # the same two regimes, found in the opposite order, plus one far away: a new id
    centres = np.array([[5.2, 4.9], [0.1, -0.1], [20.0, 20.0]])
    assert match_clusters(centres, scale, slots, 1.5).tolist() == [1, 0, 2]
    # more clusters than slots: the extra one joins its nearest known slot
    full = [(np.array([0.0, 0.0]), scale), (np.array([5.0, 5.0]), scale)]
    assert match_clusters(np.array([[0.0, 0.2], [5.0, 5.1], [4.0, 4.0]]), scale, full, 1.5
                          ).tolist() == [0, 1, 1]


def test_nearest_regime_fills_within_its_spread_only() -> None:
    # regime 0 at (0, 0) with spreads (1, 1); slot 1 unknown; regime 2 at (10, 0), spreads (2, 0.5)
    protos = [(np.array([0.0, 0.0]), np.array([1.0, 1.0])), None,
              (np.array([10.0, 0.0]), np.array([2.0, 0.5]))]
    x = np.array([[1.0, 1.0],    # d0 = 1                       -> 0
                  [7.0, 0.0],    # d0 = 4.95, d2 = sqrt(4.5/2) = 1.5 -> 2
                  [10.0, 2.0],   # d2 = sqrt(16/2) = 2.83 > 2.5, d0 = 7.2 -> unclassified
                  [-3.0, 3.0]])  # d0 = 3 > 2.5                 -> unclassified
    np.testing.assert_array_equal(nearest_regime(x, protos, 2.5), [0, 2, -1, -1])
    np.testing.assert_array_equal(nearest_regime(x, [None, None, None], 2.5), [-1, -1, -1, -1])


def test_classifier_and_names() -> None:
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 1, (200, 3)), rng.normal(4, 1, (200, 3))])
    y = np.r_[np.zeros(200, int), np.full(200, 7)]
    y[::50] = -1  # noise rows are ignored
    clf = EnvironmentClassifier().fit(x, y)
    p = clf.predict_proba(np.array([[0.0, 0.0, 0.0], [4.0, 4.0, 4.0]]))
    assert clf.params_.classes.tolist() == [0, 7]
    assert np.allclose(p.sum(axis=1), 1.0) and p[0, 0] > 0.99 and p[1, 1] > 0.99
    stats = {"relative_volatility": 1.6, "trend": -0.8, "autocorr": -0.2}
    assert regime_name(stats) == "high volatility, down-trend, mean-reverting"
    stats = {"relative_volatility": 0.6, "trend": 0.1, "autocorr": 0.1}
    assert regime_name(stats) == "low volatility, range-bound, momentum"


def test_single_asset_gets_regimes_without_cross_asset_level(market) -> None:
    universe, _ = market
    alone = analyse_symbol({"S0/USDT": universe["S0/USDT"]}, "S0/USDT", SMALL)
    both = analyse_symbol(universe, "S0/USDT", SMALL)
    assert CROSS_COLUMN not in alone.features.columns and CROSS_COLUMN in both.features.columns
    assert any("cross-asset correlation level absent" in n for n in alone.notes)
    out = alone.to_json("1h")
    assert out["cross_asset"] is False and len(out["regimes"]) >= 2
    assert (alone.result.labels[~alone.result.warmup] >= 0).mean() > 0.5
    assert out["timeline"][0]["regime"] is None  # warming up
    assert set(out) >= {"symbol", "timeframe", "regimes", "timeline", "transitions"}


def test_same_labels_with_one_and_two_workers(market) -> None:
    universe, _ = market
    serial = analyse_symbol(universe, "S0/USDT", SMALL)
    with WorkerPool(2) as pool:
        parallel = analyse_symbol(universe, "S0/USDT", SMALL, pool=pool)
    assert serial.result.fits == parallel.result.fits > 5
    assert np.array_equal(serial.result.labels, parallel.result.labels)
    assert np.array_equal(serial.result.proba, parallel.result.proba, equal_nan=True)


def test_bad_settings_and_too_few_bars_are_one_line_errors(tmp_path, market) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text("[features.regimes]\nwindow = 100\nmin_cluster_size = 60\n")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert "\n" not in str(e.value) and "min_cluster_size" in str(e.value)
    universe, _ = market
    short = {"S0/USDT": universe["S0/USDT"].iloc[:300]}
    with pytest.raises(DataError) as e:
        analyse_symbol(short, "S0/USDT", SMALL)
    assert str(e.value) == ("S0/USDT: 300 bars; regimes need more than 350 (feature warm-up 50 "
                            "+ window 300)")


def test_latest_features_equal_the_full_computation(market) -> None:
    from singularity.regimes.features import latest_regime_features, regime_features

    candles = market[0]["S0/USDT"]
    full = regime_features(candles, SMALL).to_numpy()
    for t in (SMALL.warmup_bars, 500, len(candles) - 1):
        tail = candles.iloc[t + 1 - SMALL.warmup_bars:t + 1]
        assert np.allclose(latest_regime_features(tail, SMALL), full[t], rtol=1e-8, atol=1e-12)
