"""Window-local rolling statistics for the regime features.

Each value at row k is computed from the rows of its own trailing window only (sums restarted
at every row, two-pass variance), never from running sums carried along the series as pandas'
rolling windows and ``features.graph.rolling_pair_corr`` do. So a value does not depend on
where the series starts: the features of a trailing slice of candles equal, bit for bit, those
of the whole history at the same rows, which lets the engine's regime worker compute only the
new rows of a growing history and still equal ``singularity regimes --until``. O(n * window);
numba, no fastmath (the float operations run in the order written).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def window_sum(x: np.ndarray, w: int) -> np.ndarray:
    """Sum of x[k-w+1..k]; NaN until w rows, or where the window holds a NaN."""
    n = len(x)
    out = np.full(n, np.nan)
    for k in range(w - 1, n):
        s = 0.0
        ok = True
        for i in range(k - w + 1, k + 1):
            if not np.isfinite(x[i]):
                ok = False
                break
            s += x[i]
        if ok:
            out[k] = s
    return out


@njit(cache=True)
def window_mean(x: np.ndarray, w: int) -> np.ndarray:
    """Mean of x[k-w+1..k] (``window_sum`` / w); NaN until w rows, or where the window holds a NaN."""
    return window_sum(x, w) / w


@njit(cache=True)
def window_std(x: np.ndarray, w: int) -> np.ndarray:
    """Sample standard deviation (ddof 1) of x[k-w+1..k], two-pass (the mean from
    ``window_sum``); NaN as ``window_mean``."""
    n = len(x)
    out = np.full(n, np.nan)
    sums = window_sum(x, w)
    for k in range(w - 1, n):
        if np.isnan(sums[k]):  # a non-finite value in the window (finite ones never sum to NaN)
            continue
        m = sums[k] / w
        ss = 0.0
        for i in range(k - w + 1, k + 1):
            d = x[i] - m
            ss += d * d
        out[k] = math.sqrt(ss / (w - 1))
    return out


@njit(cache=True)
def window_max(x: np.ndarray, w: int) -> np.ndarray:
    """Maximum of x[k-w+1..k]; NaN until w rows, or where the window holds a NaN."""
    n = len(x)
    out = np.full(n, np.nan)
    for k in range(w - 1, n):
        m = -np.inf
        ok = True
        for i in range(k - w + 1, k + 1):
            if not np.isfinite(x[i]):
                ok = False
                break
            if x[i] > m:
                m = x[i]
        if ok:
            out[k] = m
    return out


@njit(cache=True)
def _pair_corr(a: np.ndarray, b: np.ndarray, lo: int, hi: int, min_obs: int) -> float:
    """Pearson correlation of a[i], b[i] over rows lo..hi-1 where both are finite (two-pass);
    NaN with fewer than ``min_obs`` pairs or a (near-)flat side."""
    cnt = 0
    sa = 0.0
    sb = 0.0
    for i in range(lo, hi):
        if np.isfinite(a[i]) and np.isfinite(b[i]):
            cnt += 1
            sa += a[i]
            sb += b[i]
    if cnt < min_obs or cnt < 2:
        return np.nan
    ma = sa / cnt
    mb = sb / cnt
    vaa = 0.0
    vbb = 0.0
    vab = 0.0
    qa = 0.0
    qb = 0.0
    for i in range(lo, hi):
        if np.isfinite(a[i]) and np.isfinite(b[i]):
            da = a[i] - ma
            db = b[i] - mb
            vaa += da * da
            vbb += db * db
            vab += da * db
            qa += a[i] * a[i]
            qb += b[i] * b[i]
    # relative floor: a flat window leaves only rounding residue
    if vaa <= 1e-12 * qa or vbb <= 1e-12 * qb or vaa <= 0.0 or vbb <= 0.0:
        return np.nan
    c = vab / math.sqrt(vaa * vbb)
    return min(1.0, max(-1.0, c))


@njit(cache=True)
def window_lag1_corr(r: np.ndarray, w: int) -> np.ndarray:
    """corr(r[i], r[i-1]) over the w pairs i = k-w+1..k; NaN unless all are finite."""
    n = len(r)
    out = np.full(n, np.nan)
    lag = np.full(n, np.nan)
    lag[1:] = r[:-1]
    for k in range(w - 1, n):  # min_obs w: NaN unless all w pairs are finite
        out[k] = _pair_corr(r, lag, k - w + 1, k + 1, w)
    return out


@njit(cache=True)
def window_corr_level(r: np.ndarray, w: int, min_obs: int, first: int = 0) -> np.ndarray:
    """Per row k >= ``first``: mean |corr| of column 0 with each other column over rows
    k-w+1..k (from row 0 while k < w - 1), each pair counted on the rows where both are finite
    and only with at least ``min_obs`` of them; NaN where no pair qualifies (and before
    ``first``)."""
    t_len, n = r.shape
    out = np.full(t_len, np.nan)
    cols = np.ascontiguousarray(r.T)
    for k in range(first, t_len):
        lo = max(0, k - w + 1)
        total = 0.0
        valid = 0
        for j in range(1, n):
            c = _pair_corr(cols[0], cols[j], lo, k + 1, min_obs)
            if np.isfinite(c):
                total += abs(c)
                valid += 1
        if valid:
            out[k] = total / valid
    return out
