from __future__ import annotations

import math

import numpy as np
import pytest

from singularity.validation.stats import (
    block_permutation_pvalue,
    deflated_sharpe,
    effective_trials,
    expected_max_sharpe,
    pbo_cscv,
    per_period_sharpe,
    probabilistic_sharpe,
)


def test_dsr_matches_paper_example() -> None:
    # Bailey & López de Prado (2014), numerical example: annualised SR 2.5 over 1,250 daily
    # observations, 100 trials whose annualised SRs have variance 0.5, skew −3, kurtosis 10.
    # Per-period: SR = 2.5/√250 = 0.158114; V = 0.5/250 = 0.002.
    # SR0 = √V·((1−γ)·Φ⁻¹(1−1/100) + γ·Φ⁻¹(1−1/(100e)))
    #     = 0.044721·(0.422784·2.326348 + 0.577216·2.716220) = 0.113172  (1.7894 annualised)
    # z = (0.158114 − 0.113172)·√1249 / √(1 + 3·0.158114 + (10−1)/4·0.158114²) = 1.283816
    # DSR = Φ(1.283816) = 0.900397 (the paper reports 0.9004)
    sr, v = 2.5 / math.sqrt(250), 0.5 / 250
    sr0 = expected_max_sharpe(v, 100)
    assert sr0 == pytest.approx(0.11317200186513214, abs=1e-12)
    assert probabilistic_sharpe(sr, sr0, 1250, -3.0, 10.0) == pytest.approx(0.9003968344493904, abs=1e-12)


def test_pearson_not_excess_kurtosis() -> None:
    # Passing excess kurtosis (7) where Pearson kurtosis (10) belongs gives a different,
    # over-optimistic 0.901779: the function must take Pearson kurtosis.
    sr, v = 2.5 / math.sqrt(250), 0.5 / 250
    sr0 = expected_max_sharpe(v, 100)
    assert probabilistic_sharpe(sr, sr0, 1250, -3.0, 7.0) == pytest.approx(0.9017785664393667, abs=1e-12)
    rng = np.random.default_rng(0)
    r = rng.standard_t(4, 5000) * 0.01 + 0.001
    d = deflated_sharpe(r, n_trials=50, trial_sr_variance=1e-4)
    from scipy import stats

    assert d.kurtosis == pytest.approx(stats.kurtosis(r, fisher=False))
    assert d.kurtosis > 3.5  # fat tails: Pearson kurtosis well above the normal's 3


def test_dsr_falls_with_more_trials() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(0.0005, 0.01, 2000)
    one = deflated_sharpe(r, n_trials=1, trial_sr_variance=1e-3)
    many = deflated_sharpe(r, n_trials=10_000, trial_sr_variance=1e-3)
    assert one.sr0 == 0.0 and many.sr0 > 0.0
    assert many.dsr < one.dsr


def test_per_period_sharpe_flat_is_zero() -> None:
    assert per_period_sharpe(np.zeros(10)) == 0.0
    assert per_period_sharpe(np.array([0.01, 0.03])) == pytest.approx(0.02 / np.std([0.01, 0.03], ddof=1))


def test_effective_trials_counts_clusters() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 1000))
    m = np.column_stack([a, a + 0.01 * rng.normal(size=1000), b, b * 2.0, rng.normal(size=1000)])
    assert effective_trials(m) == 3


def test_pbo_dominant_candidate_is_zero() -> None:
    rng = np.random.default_rng(3)
    m = rng.normal(0.0, 0.01, (400, 6))
    m[:, 2] += 0.02  # far better everywhere: IS winner stays OOS winner
    res = pbo_cscv(m, n_blocks=8)
    assert res.n_splits == math.comb(8, 4)
    assert res.pbo == 0.0
    assert np.all(res.logits > 0)


def test_pbo_noise_is_near_half() -> None:
    rng = np.random.default_rng(4)
    res = pbo_cscv(rng.normal(0.0, 0.01, (2000, 40)), n_blocks=10)
    assert 0.3 < res.pbo < 0.7


def test_pbo_hand_example() -> None:
    # 2 blocks of 2 bars, 2 candidates. Split IS={block0}: SRs c0=mean(1,3)/sd=2/1.414,
    # c1=mean(0,0.5)... constructed so the IS winner is the OOS loser both ways -> PBO 1.
    m = np.array([[1.0, 0.0], [3.0, 0.5], [0.0, 1.0], [0.5, 3.0]])
    res = pbo_cscv(m, n_blocks=2)
    # IS block0: c0 SR = 2/1.4142 = 1.414 > c1 SR = 0.25/0.3536 = 0.707 -> c0; OOS block1:
    # c0 SR 0.707 < c1 1.414 -> rank 1, ω = 1/3, λ = ln(0.5) < 0. Symmetric for block1.
    assert res.pbo == 1.0
    np.testing.assert_allclose(res.logits, [math.log(0.5), math.log(0.5)])


def test_permutation_pvalue() -> None:
    rng = np.random.default_rng(5)
    ret = rng.normal(0.0, 0.01, 3000)
    skilled = np.sign(ret)  # perfect foresight
    _, p = block_permutation_pvalue(skilled, ret, n_permutations=200, block=24)
    assert p == pytest.approx(1 / 201)
    _, p_noise = block_permutation_pvalue(np.sign(rng.normal(size=3000)), ret, n_permutations=200)
    assert p_noise > 0.05


def test_holm_adjust_exact() -> None:
    from singularity.validation.stats import holm_adjust

    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert holm_adjust([0.02]) == [0.02]


def test_effective_trials_from_a_sample() -> None:
    from singularity.validation.stats import estimate_effective_trials

    rng = np.random.default_rng(0)
    base = rng.normal(size=(500, 3))
    # 12 sampled trials, three families of four near-copies: no unseen family is likely
    twins = np.repeat(base, 4, axis=1) + rng.normal(scale=0.05, size=(500, 12))
    assert estimate_effective_trials(twins, total=1000) == (3, {"sampled": 12, "clusters": 3, "singletons": 0,
                                                                "doubletons": 0, "eigen": 3})
    # 10 unrelated trials, each seen once: many more are unseen (Chao1: 10 + 10·9/2)
    est, info = estimate_effective_trials(rng.normal(size=(500, 10)), total=1000)
    assert (est, info["clusters"], info["singletons"]) == (55, 10, 10)
    assert estimate_effective_trials(rng.normal(size=(500, 10)), total=30)[0] == 30  # capped
    assert estimate_effective_trials(rng.normal(size=(500, 10)), total=10)[0] == 10  # the whole population


def test_eigen_count_of_independent_trials() -> None:
    """The eigenvalue check on the clustering count (participation ratio of the correlation
    matrix's eigenvalues): copies count once, unrelated series once each, flat ones as one."""
    from singularity.validation.stats import eigen_effective_trials

    rng = np.random.default_rng(1)
    base = rng.normal(size=(2000, 3))
    assert eigen_effective_trials(np.repeat(base, 4, axis=1)) == 3
    assert eigen_effective_trials(np.repeat(base[:, :1], 5, axis=1)) == 1
    assert eigen_effective_trials(rng.normal(size=(2000, 10))) == 10
    assert eigen_effective_trials(np.c_[np.repeat(base, 2, axis=1), np.zeros((2000, 2))]) == 4
