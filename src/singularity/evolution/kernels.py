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
        for t in range(n):  # branch-free selects: the loop vectorises
            x = a[t]
            y = b[t]
            m = x if x < y else y
            out[t] = _NAN if (x != x) | (y != y) else m
    elif op == P.MAX:
        for t in range(n):
            x = a[t]
            y = b[t]
            m = x if x > y else y
            out[t] = _NAN if (x != x) | (y != y) else m
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
    elif op == P.INREG:
        for t in range(n):
            out[t] = 1.0 if a[t] > 0.5 else 0.0


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
    if op == P.STD:
        _rolling_std(a, w, out)
        return
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
def _rolling_std(a: np.ndarray, w: int, out: np.ndarray) -> None:
    """ts_std as ``rolling_moments`` computes it, in two loops: the running sums (a serial
    chain), then the square roots over the stored sums (independent: vectorised)."""
    n = out.shape[0]
    sums = np.empty(n)
    sqs = np.empty(n)
    ok = np.empty(n, dtype=np.bool_)
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
        sums[t] = s
        sqs[t] = ss
        ok[t] = t >= w - 1 and nans == 0
    for t in range(n):
        m = sums[t] / w
        var = sqs[t] / w - m * m
        sd = np.sqrt(var) if var > 0.0 else 0.0
        out[t] = sd if ok[t] else _NAN


@njit(cache=True, nogil=True)
def rolling_extreme(is_max: bool, a: np.ndarray, w: int, out: np.ndarray) -> None:
    """Trailing min/max in O(n) without data-dependent branches (van Herk / Gil-Werman):
    within aligned blocks of ``w`` bars, a running extreme from each block's start (``pre``)
    and from each block's end (``suf``); the window ending at t joins ``suf[t-w+1]`` and
    ``pre[t]``. Ties go to the most recent bar, as a monotonic deque's would (even the sign
    of a zero agrees). A window holding a NaN is NaN."""
    n = out.shape[0]
    if n == 0:
        return
    sign = np.float32(1.0) if is_max else np.float32(-1.0)
    pre = np.empty(n, dtype=np.float32)
    suf = np.empty(n, dtype=np.float32)
    ninf = np.float32(-np.inf)
    for t in range(n):  # as maxima: min(a) = -max(-a)
        x = a[t] * sign
        pre[t] = ninf if x != x else x
    for b0 in range(0, n, w):
        b1 = min(b0 + w, n)
        m = pre[b1 - 1]
        suf[b1 - 1] = m
        for t in range(b1 - 2, b0 - 1, -1):
            x = pre[t]
            m = x if x > m else m
            suf[t] = m
        m = pre[b0]
        for t in range(b0 + 1, b1):
            x = pre[t]
            m = x if x >= m else m
            pre[t] = m
    last_nan = -(w + 1)
    for t in range(min(w - 1, n)):
        out[t] = _NAN
        if np.isnan(a[t]):
            last_nan = t
    for t in range(w - 1, n):
        x = pre[t]
        y = suf[t - w + 1]
        out[t] = (x if x >= y else y) * sign
    for t in range(w - 1, n):
        if np.isnan(a[t]):
            last_nan = t
        if t - last_nan < w:
            out[t] = _NAN


@njit(cache=True, nogil=True)
def rolling_rank(a: np.ndarray, w: int, out: np.ndarray) -> None:
    """Share of the previous ``w - 1`` bars below the current one (ties count half).

    Counted lag by lag over all bars (``a[t-k] < a[t]`` for k = 1..w-1): contiguous loops
    that vectorise, in place of one short window scan per bar. Counts are integers, so the
    result is exactly ``(below + 0.5 * ties) / (w - 1)``."""
    n = out.shape[0]
    half = np.zeros(n, dtype=np.float32)  # 2 * below + ties: small integers, exact
    if n >= w:
        cur = a[w - 1 : n]
        acc = half[w - 1 : n]
        for k in range(1, w):
            prev = a[w - 1 - k : n - k]  # slices: contiguous and unaliased, so LLVM vectorises
            for i in range(n - w + 1):
                x = cur[i]
                y = prev[i]
                acc[i] += np.float32(y < x) + np.float32(y <= x)
    last_nan = -(w + 1)
    for t in range(n):
        if np.isnan(a[t]):
            last_nan = t
        if t < w - 1 or t - last_nan < w:
            out[t] = _NAN
        else:
            out[t] = 0.5 * half[t] / (w - 1)


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
    elif op <= P.SIGN or op == P.NOT or op == P.INREG:
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
