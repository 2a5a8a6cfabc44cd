"""Statistics of overfitting: probabilistic and deflated Sharpe ratios, PBO by CSCV,
effective number of trials, block-permutation p-values. Pure functions on arrays.

References: Bailey & López de Prado (2014), "The Deflated Sharpe Ratio"; Bailey, Borwein,
López de Prado & Zhu (2017), "The Probability of Backtest Overfitting".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

EULER_GAMMA = 0.5772156649015329


def per_period_sharpe(returns: np.ndarray) -> float:
    """Mean over standard deviation of per-bar returns (not annualised); 0 when flat."""
    r = np.asarray(returns, dtype=np.float64)
    sd = r.std(ddof=1) if r.size > 1 else 0.0
    return float(r.mean() / sd) if sd > 0 else 0.0


def probabilistic_sharpe(sr: float, sr_benchmark: float, n_obs: int, skew: float, kurtosis: float) -> float:
    """PSR: probability that the true per-period Sharpe exceeds ``sr_benchmark``.

    ``kurtosis`` is PEARSON kurtosis (3 for a normal distribution), not excess kurtosis:
    the variance of the Sharpe estimator is (1 − γ3·SR + (γ4 − 1)/4·SR²)/(T − 1).
    """
    if n_obs < 2:
        return 0.0
    var = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if var <= 0:
        var = 1e-12  # extreme skew can make the estimate negative; treat as near-certain
    z = (sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var)
    return float(stats.norm.cdf(z))


def expected_max_sharpe(sr_variance: float, n_trials: float) -> float:
    """E[max SR] of ``n_trials`` independent zero-skill trials with variance ``sr_variance``
    (per-period units): the deflated Sharpe ratio's benchmark SR0."""
    if n_trials <= 1 or sr_variance <= 0:
        return 0.0
    a = stats.norm.ppf(1.0 - 1.0 / n_trials)
    b = stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sr_variance) * ((1.0 - EULER_GAMMA) * a + EULER_GAMMA * b))


@dataclass(frozen=True)
class DeflatedSharpe:
    dsr: float
    sr: float
    """Per-period Sharpe of the candidate."""
    sr0: float
    """Benchmark: expected maximum per-period Sharpe of the trials under no skill."""
    n_trials: float
    n_obs: int
    skew: float
    kurtosis: float
    """Pearson kurtosis of the per-bar returns."""


def deflated_sharpe(returns: np.ndarray, *, n_trials: float, trial_sr_variance: float) -> DeflatedSharpe:
    """DSR of a candidate's per-bar net returns given how many trials were run and the
    variance of their per-period Sharpe ratios."""
    r = np.asarray(returns, dtype=np.float64)
    sr = per_period_sharpe(r)
    skew = float(stats.skew(r)) if r.std() > 0 else 0.0
    kurt = float(stats.kurtosis(r, fisher=False)) if r.std() > 0 else 3.0
    sr0 = expected_max_sharpe(trial_sr_variance, n_trials)
    return DeflatedSharpe(
        dsr=probabilistic_sharpe(sr, sr0, r.size, skew, kurt),
        sr=sr, sr0=sr0, n_trials=float(n_trials), n_obs=int(r.size), skew=skew, kurtosis=kurt,
    )


def effective_trials(returns_matrix: np.ndarray, *, max_correlation: float = 0.7) -> int:
    """Number of clusters of candidates whose per-bar returns correlate above
    ``max_correlation`` (average-linkage on distance 1 − ρ). Columns are candidates."""
    m = np.asarray(returns_matrix, dtype=np.float64)
    if m.shape[1] <= 1:
        return int(m.shape[1])
    return int(np.unique(cluster_labels(m, max_correlation=max_correlation)).size)


def holm_adjust(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): p_(i) · (m − i + 1), made
    monotone and capped at 1. Rejecting where adjusted p ≤ α controls the family-wise error."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: (pvalues[i], i))
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def estimate_effective_trials(returns_matrix: np.ndarray, *, total: int,
                              max_correlation: float = 0.7) -> tuple[int, dict[str, int]]:
    """Independent trials among ``total``, estimated from a uniform sample of their return
    series (columns). The sample is clustered as in ``effective_trials`` (López de Prado,
    2019: trials whose returns correlate above ``max_correlation`` are one trial); the number
    of clusters in the whole population is then estimated from the sample's cluster sizes by
    Chao1 (K + f1²/(2·f2), f1 and f2 the clusters met once and twice: unseen clusters are many
    when many are seen once), capped at ``total``. Returns (estimate, details)."""
    m = np.asarray(returns_matrix, dtype=np.float64)
    n = m.shape[1] if m.ndim == 2 else 0
    if n == 0:
        return 1, {"sampled": 0, "clusters": 0, "singletons": 0, "doubletons": 0}
    live, corr = _live_correlation(m)  # once for both counts
    labels = _cluster_labels(live, corr, max_correlation)
    sizes = np.bincount(labels)[1:] if labels.size else np.zeros(0, dtype=np.int64)
    sizes = sizes[sizes > 0]
    k = int(sizes.size)
    f1 = int((sizes == 1).sum())
    f2 = int((sizes == 2).sum())
    chao = k + (f1 * f1 / (2.0 * f2) if f2 > 0 else f1 * (f1 - 1) / 2.0)
    est = int(min(max(total, 1), max(1, math.ceil(chao)))) if n < total else k
    return est, {"sampled": n, "clusters": k, "singletons": f1, "doubletons": f2,
                 "eigen": _eigen_count(live, corr)}


def eigen_effective_trials(returns_matrix: np.ndarray) -> int:
    """Independent trials among the columns by the eigenvalues λ of their correlation matrix:
    the participation ratio (Σλ)² / Σλ² (= M² / Σρ², M columns): k uncorrelated columns count
    k, k copies of one column count 1, k equal blocks of copies count k. A check on the
    clustering count of the same sample; flat columns count as one trial, as in
    ``cluster_labels``."""
    m = np.asarray(returns_matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] == 0:
        return 0
    return _eigen_count(*_live_correlation(m))


def _eigen_count(live: np.ndarray, corr: np.ndarray | None) -> int:
    flat = int((~live).any())
    k = int(live.sum())
    if corr is None:
        return k + flat
    return round(k * k / float(np.sum(corr * corr))) + flat


def cluster_labels(returns_matrix: np.ndarray, *, max_correlation: float = 0.7) -> np.ndarray:
    """Cluster id (from 1) per column: average linkage on 1 − ρ cut at 1 − ``max_correlation``;
    columns without variance (flat) form one cluster of their own."""
    m = np.asarray(returns_matrix, dtype=np.float64)
    return _cluster_labels(*_live_correlation(m), max_correlation)


def _live_correlation(m: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Which columns have variance, and the correlation matrix of those (None with fewer
    than two)."""
    live = m.std(axis=0) > 0
    if live.sum() < 2:
        return live, None
    return live, np.clip(np.corrcoef(m[:, live], rowvar=False), -1.0, 1.0)


def _cluster_labels(live: np.ndarray, corr: np.ndarray | None, max_correlation: float) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    labels = np.zeros(live.size, dtype=np.int64)
    if corr is None:
        labels[live] = 1  # one live column at most
    else:
        dist = 1.0 - corr
        np.fill_diagonal(dist, 0.0)
        labels[live] = fcluster(linkage(squareform(dist, checks=False), method="average"),
                                t=1.0 - max_correlation, criterion="distance")
    if (~live).any():
        labels[~live] = labels.max() + 1
    return labels


@dataclass(frozen=True)
class PBOResult:
    pbo: float
    logits: np.ndarray
    n_splits: int
    n_candidates: int


def pbo_cscv(returns_matrix: np.ndarray, *, n_blocks: int = 10) -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation.

    Rows are bars, columns candidates. The bars are cut into ``n_blocks`` (even) blocks;
    for every choice of half the blocks as in-sample, the in-sample best candidate (by
    per-period Sharpe) is ranked out of sample; ω = rank / (N + 1), λ = ln(ω / (1 − ω)).
    PBO is the share of splits with λ ≤ 0 (the IS winner falls to or below the OOS median).
    """
    m = np.asarray(returns_matrix, dtype=np.float64)
    if n_blocks % 2 or n_blocks < 2:
        raise ValueError("n_blocks must be even and >= 2")
    t, n = m.shape
    if n < 2 or t < n_blocks * 2:
        raise ValueError(f"need >= 2 candidates and >= {2 * n_blocks} bars, got {n} and {t}")
    blocks = np.array_split(np.arange(t), n_blocks)
    logits = []
    for is_blocks in combinations(range(n_blocks), n_blocks // 2):
        is_idx = np.concatenate([blocks[b] for b in is_blocks])
        oos_idx = np.concatenate([blocks[b] for b in range(n_blocks) if b not in is_blocks])
        best = int(np.argmax(_sharpes(m[is_idx])))
        oos = _sharpes(m[oos_idx])
        rank = stats.rankdata(oos)[best]  # 1 = worst, n = best
        omega = rank / (n + 1.0)
        logits.append(math.log(omega / (1.0 - omega)))
    lg = np.asarray(logits)
    return PBOResult(pbo=float(np.mean(lg <= 0.0)), logits=lg, n_splits=lg.size, n_candidates=n)


def _sharpes(m: np.ndarray) -> np.ndarray:
    sd = m.std(axis=0, ddof=1)
    mu = m.mean(axis=0)
    return np.where(sd > 0, mu / np.where(sd > 0, sd, 1.0), 0.0)


def block_permutation_pvalue(
    positions: np.ndarray, returns: np.ndarray, *, n_permutations: int = 500,
    block: int = 24, seed: int = 0,
) -> tuple[float, float]:
    """(observed per-period Sharpe of positions × returns, p-value) against the same
    positions applied to block-permuted returns. p = (1 + #null ≥ observed) / (1 + n)."""
    pos = np.asarray(positions, dtype=np.float64)
    ret = np.asarray(returns, dtype=np.float64)
    observed = per_period_sharpe(pos * ret)
    rng = np.random.default_rng(seed)
    starts = np.arange(0, ret.size, block)
    exceed = 0
    for _ in range(n_permutations):
        order = rng.permutation(starts.size)
        shuffled = np.concatenate([ret[starts[i]: starts[i] + block] for i in order])
        if per_period_sharpe(pos * shuffled) >= observed:
            exceed += 1
    return observed, (1.0 + exceed) / (1.0 + n_permutations)
