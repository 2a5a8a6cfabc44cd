"""Recovery of planted regimes: three regimes with different volatility, drift and lag-1
autocorrelation switch at random times; after warm-up the walk-forward labels agree with the
truth (adjusted Rand index over every post-warm-up bar, "unclassified" counted as a class of
its own), and each true regime keeps one stable id across the refits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from singularity.regimes.analysis import analyse_symbol
from singularity.regimes.settings import RegimeSettings
from singularity.regimes.synthetic import planted_regime_market

SETTINGS = RegimeSettings(window=1500, refit_every=250, min_cluster_size=100, min_samples=5)


def test_planted_regimes_are_recovered_with_stable_ids() -> None:
    universe, truth = planted_regime_market(2, n_bars=6000, seed=1)
    a = analyse_symbol(universe, "S0/USDT", SETTINGS)
    res = a.result
    assert res.fits == 18 and res.fallback_blocks == 0
    after = ~res.warmup
    labelled = after & (res.labels >= 0)
    share = labelled.sum() / after.sum()
    ari = adjusted_rand_score(truth[labelled], res.labels[labelled])
    assert share >= 0.9, f"only {share:.0%} of the bars after warm-up got a regime"
    assert ari >= 0.7, f"ARI {ari:.3f} on the labelled bars"
    strict = adjusted_rand_score(truth[after], res.labels[after])
    assert strict >= 0.7, f"ARI {strict:.3f} over every post-warm-up bar"
    # stable ids: over all 18 refits each true regime is (mostly) one id, a different one each
    ids = []
    for k in range(3):
        got = res.labels[labelled & (truth == k)]
        top = np.bincount(got).argmax()
        assert (got == top).mean() >= 0.8, (k, np.bincount(got))
        ids.append(int(top))
    assert len(set(ids)) == 3
    # the names describe the planted regimes (up/momentum, down, turbulent mean-reverting)
    assert "up-trend" in a.names[ids[0]] and "momentum" in a.names[ids[0]]
    assert "high volatility" in a.names[ids[2]] and "mean-reverting" in a.names[ids[2]]


@pytest.mark.parametrize("seed", [2, 3])
def test_most_bars_get_the_right_regime_on_other_seeds(seed: int) -> None:
    """The seeds where HDBSCAN alone left 36-40 % of the bars unclassified (ARI over every
    bar 0.35 and 0.53): regimes absent from a window keep the id of the centre they resemble."""
    universe, truth = planted_regime_market(2, n_bars=6000, seed=seed)
    a = analyse_symbol(universe, "S0/USDT", SETTINGS)
    res = a.result
    after = ~res.warmup
    assert (res.labels[after] >= 0).mean() >= 0.9
    assert adjusted_rand_score(truth[after], res.labels[after]) >= 0.7
    # a regime filled from an older fit's centre, unknown to the bar's classifier, has no
    # probability (not the classifier's 0); every other labelled bar has one
    lab = res.labels
    rows = lab >= 0
    unknown = rows & ~res.known[np.arange(len(lab)), np.maximum(lab, 0)]
    p = a.probability().to_numpy()
    assert unknown.any() and np.isnan(p[unknown]).all() and np.isfinite(p[rows & ~unknown]).all()
    assert (res.proba[unknown, lab[unknown]] == 0).all()
