"""Numba kernels of the primitives: one loop over the bars per tree node.

Same arithmetic as ``reference.py`` (float64 inside, float32 stored), so results agree value
for value. Each kernel writes every element of ``out``; ``out`` never aliases an input.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from singularity.evolution import primitives as P

DIV_EPS = 1e-9
_NAN = np.float32(np.nan)


@njit(cache=True, nogil=True)
def binary(op: int, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    n = out.shape[0]
    if op == P.ADD:
        for t in range(n):
            out[t] = np.float64(a[t]) + np.float64(b[t])
    elif op == P.SUB:
        for t in range(n):
            out[t] = np.float64(a[t]) - np.float64(b[t])
    elif op == P.MUL:
        for t in range(n):
            out[t] = np.float64(a[t]) * np.float64(b[t])
    elif op == P.DIV:
        for t in range(n):
            x = np.float64(a[t])
            y = np.float64(b[t])
            if np.isnan(x) or np.isnan(y):
                out[t] = _NAN
            elif abs(y) < DIV_EPS:
                out[t] = 1.0
            else:
                out[t] = x / y
    elif op == P.MIN:
        for t in range(n):
            x = a[t]
            y = b[t]
            out[t] = _NAN if (np.isnan(x) or np.isnan(y)) else (x if x < y else y)
    elif op == P.MAX:
        for t in range(n):
            x = a[t]
            y = b[t]
            out[t] = _NAN if (np.isnan(x) or np.isnan(y)) else (x if x > y else y)
    elif op == P.GT:
        for t in range(n):
            out[t] = 1.0 if a[t] > b[t] else 0.0
    elif op == P.LT:
        for t in range(n):
            out[t] = 1.0 if a[t] < b[t] else 0.0
    elif op == P.XABOVE:
        out[0] = 0.0
        for t in range(1, n):
            out[t] = 1.0 if (a[t] > b[t] and a[t - 1] <= b[t - 1]) else 0.0
    elif op == P.XBELOW:
        out[0] = 0.0
        for t in range(1, n):
            out[t] = 1.0 if (a[t] < b[t] and a[t - 1] >= b[t - 1]) else 0.0
    elif op == P.AND:
        for t in range(n):
            out[t] = 1.0 if (a[t] > 0.5 and b[t] > 0.5) else 0.0
    elif op == P.OR:
        for t in range(n):
            out[t] = 1.0 if (a[t] > 0.5 or b[t] > 0.5) else 0.0


@njit(cache=True, nogil=True)
def unary(op: int, a: np.ndarray, out: np.ndarray) -> None:
    n = out.shape[0]
    if op == P.NEG:
        for t in range(n):
            out[t] = -a[t]
    elif op == P.ABS:
        for t in range(n):
            out[t] = abs(a[t])
    elif op == P.SIGN:
        for t in range(n):
            x = a[t]
            out[t] = _NAN if np.isnan(x) else (1.0 if x > 0 else (-1.0 if x < 0 else 0.0))
    elif op == P.NOT:
        for t in range(n):
            out[t] = 0.0 if a[t] > 0.5 else 1.0


@njit(cache=True, nogil=True)
def lagged(op: int, a: np.ndarray, k: int, out: np.ndarray) -> None:
    n = out.shape[0]
    for t in range(min(k, n)):
        out[t] = _NAN
    if op == P.LAG:
        for t in range(k, n):
            out[t] = a[t - k]
    else:  # DIFF
        for t in range(k, n):
            out[t] = np.float64(a[t]) - np.float64(a[t - k])


@njit(cache=True, nogil=True)
def rolling_moments(op: int, a: np.ndarray, w: int, out: np.ndarray) -> None:
    """ts_mean, ts_std, ts_zscore by running sums (as the reference)."""
    n = out.shape[0]
    s = 0.0
    ss = 0.0
    nans = 0
    for t in range(n):
        v = np.float64(a[t])
        if np.isnan(v):
            nans += 1
        else:
            s += v
            ss += v * v
        if t >= w:
            o = np.float64(a[t - w])
            if np.isnan(o):
                nans -= 1
            else:
                s -= o
                ss -= o * o
        if t < w - 1 or nans > 0:
            out[t] = _NAN
            continue
        m = s / w
        if op == P.MEAN:
            out[t] = m
            continue
        var = ss / w - m * m
        sd = np.sqrt(var) if var > 0.0 else 0.0
        if op == P.STD:
            out[t] = sd
        elif sd <= 1e-7 * max(abs(m), 1e-12):
            out[t] = 0.0
        else:
            out[t] = (v - m) / sd


@njit(cache=True, nogil=True)
def rolling_extreme(is_max: bool, a: np.ndarray, w: int, out: np.ndarray) -> None:
    """Trailing min/max by a monotonic deque: O(n) for any window."""
    n = out.shape[0]
    dq = np.empty(n, dtype=np.int64)
    head = 0
    tail = 0
    last_nan = -(w + 1)
    for t in range(n):
        x = a[t]
        if np.isnan(x):
            last_nan = t
        else:
            if is_max:
                while tail > head and a[dq[tail - 1]] <= x:
                    tail -= 1
            else:
                while tail > head and a[dq[tail - 1]] >= x:
                    tail -= 1
            dq[tail] = t
            tail += 1
        while tail > head and dq[head] <= t - w:
            head += 1
        if t < w - 1 or t - last_nan < w:
            out[t] = _NAN
        else:
            out[t] = a[dq[head]]


@njit(cache=True, nogil=True)
def rolling_rank(a: np.ndarray, w: int, out: np.ndarray) -> None:
    n = out.shape[0]
    last_nan = -(w + 1)
    for t in range(n):
        x = a[t]
        if np.isnan(x):
            last_nan = t
        if t < w - 1 or t - last_nan < w:
            out[t] = _NAN
            continue
        below = 0.0
        ties = 0.0
        for j in range(t - w + 1, t):
            y = a[j]
            if y < x:
                below += 1.0
            elif y == x:
                ties += 1.0
        out[t] = (below + 0.5 * ties) / (w - 1)


@njit(cache=True, nogil=True)
def ema(a: np.ndarray, w: int, out: np.ndarray) -> None:
    alpha = 2.0 / (w + 1.0)
    e = np.nan
    for t in range(out.shape[0]):
        v = np.float64(a[t])
        if np.isnan(v):
            out[t] = _NAN
            continue
        e = v if np.isnan(e) else alpha * v + (1.0 - alpha) * e
        out[t] = e


@njit(cache=True, nogil=True)
def if_then_else(c: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    for t in range(out.shape[0]):
        out[t] = a[t] if c[t] > 0.5 else b[t]


@njit(cache=True, nogil=True)
def apply(
    op: int, arg: int, val: float, a: np.ndarray, b: np.ndarray, c: np.ndarray, out: np.ndarray
) -> None:
    """One tree node: ``out = op(a, b, c)`` with window/lag ``arg`` or constant ``val``."""
    if op == P.CONST:
        out[:] = val
    elif op <= P.MAX or P.GT <= op <= P.OR:
        binary(op, a, b, out)
    elif op <= P.SIGN or op == P.NOT:
        unary(op, a, out)
    elif op <= P.DIFF:
        lagged(op, a, arg, out)
    elif op == P.MEAN or op == P.STD or op == P.ZSCORE:
        rolling_moments(op, a, arg, out)
    elif op == P.TMIN or op == P.TMAX:
        rolling_extreme(op == P.TMAX, a, arg, out)
    elif op == P.RANK:
        rolling_rank(a, arg, out)
    elif op == P.EMA:
        ema(a, arg, out)
    elif op == P.IF:
        if_then_else(a, b, c, out)
