"""Straightforward reference semantics of every primitive: plain numpy and Python loops.

These define what the fast interpreter must compute, value for value: the numba kernels in
``kernels.py`` follow the same arithmetic (float64 inside, float32 out) so the two agree
exactly, and the tests hold them to it on random trees. Conventions:

* Values are float32 arrays; NaN means "not available" (warm-up, missing data) and propagates
  through arithmetic. A position is flat wherever the tree's output is NaN.
* Every operator is causal: the value at bar t uses bars <= t only.
* Signals are 0.0/1.0; a comparison involving NaN is false.
* Trailing-window operators are NaN until the window is full, and wherever the window holds a
  NaN. Rolling sums are running sums (add the new value, subtract the one leaving).
"""

from __future__ import annotations

import math

import numpy as np

F32 = np.float32
NAN = float("nan")
DIV_EPS = 1e-9
"""Protected division: |denominator| below this gives 1.0."""


def _out(values: list[float] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).astype(F32)


def _f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _out(_f64(a) + _f64(b))


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _out(_f64(a) - _f64(b))


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _out(_f64(a) * _f64(b))


def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x, y = _f64(a), _f64(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(np.abs(y) < DIV_EPS, 1.0, x / np.where(np.abs(y) < DIV_EPS, 1.0, y))
    q = np.where(np.isnan(x) | np.isnan(y), NAN, q)
    return _out(q)


def minimum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _out(np.minimum(_f64(a), _f64(b)))


def maximum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _out(np.maximum(_f64(a), _f64(b)))


def neg(a: np.ndarray) -> np.ndarray:
    return _out(-_f64(a))


def absolute(a: np.ndarray) -> np.ndarray:
    return _out(np.abs(_f64(a)))


def sign(a: np.ndarray) -> np.ndarray:
    return _out(np.sign(_f64(a)))


def lag(a: np.ndarray, k: int) -> np.ndarray:
    x = _f64(a)
    out = np.full(len(x), NAN)
    out[k:] = x[: len(x) - k]
    return _out(out)


def diff(a: np.ndarray, k: int) -> np.ndarray:
    x = _f64(a)
    out = np.full(len(x), NAN)
    out[k:] = x[k:] - x[: len(x) - k]
    return _out(out)


def _running(a: np.ndarray, w: int) -> list[tuple[float, float, bool]]:
    """(sum, sum of squares, full-and-clean) per bar, by running sums."""
    x = _f64(a)
    s = ss = 0.0
    nans = 0
    res = []
    for t in range(len(x)):
        v = x[t]
        if math.isnan(v):
            nans += 1
        else:
            s += v
            ss += v * v
        if t >= w:
            o = x[t - w]
            if math.isnan(o):
                nans -= 1
            else:
                s -= o
                ss -= o * o
        res.append((s, ss, t >= w - 1 and nans == 0))
    return res


def _mean_std(s: float, ss: float, w: int) -> tuple[float, float]:
    m = s / w
    var = ss / w - m * m
    return m, math.sqrt(var) if var > 0.0 else 0.0


def ts_mean(a: np.ndarray, w: int) -> np.ndarray:
    return _out([s / w if ok else NAN for s, _, ok in _running(a, w)])


def ts_std(a: np.ndarray, w: int) -> np.ndarray:
    return _out([_mean_std(s, ss, w)[1] if ok else NAN for s, ss, ok in _running(a, w)])


def ts_zscore(a: np.ndarray, w: int) -> np.ndarray:
    x = _f64(a)
    out = []
    for t, (s, ss, ok) in enumerate(_running(a, w)):
        if not ok:
            out.append(NAN)
            continue
        m, sd = _mean_std(s, ss, w)
        out.append(0.0 if sd <= 1e-7 * max(abs(m), 1e-12) else (x[t] - m) / sd)
    return _out(out)


def _window_apply(a: np.ndarray, w: int, fn) -> np.ndarray:  # type: ignore[no-untyped-def]
    x = _f64(a)
    out = np.full(len(x), NAN)
    for t in range(w - 1, len(x)):
        win = x[t - w + 1 : t + 1]
        if not np.isnan(win).any():
            out[t] = fn(win)
    return _out(out)


def ts_min(a: np.ndarray, w: int) -> np.ndarray:
    return _window_apply(a, w, np.min)


def ts_max(a: np.ndarray, w: int) -> np.ndarray:
    return _window_apply(a, w, np.max)


def _rank_last(win: np.ndarray) -> float:
    last = win[-1]
    below = float(np.sum(win[:-1] < last))
    ties = float(np.sum(win[:-1] == last))
    return (below + 0.5 * ties) / (len(win) - 1)


def ts_rank(a: np.ndarray, w: int) -> np.ndarray:
    """Rank of the current value among the previous w-1, in [0, 1] (ties count half)."""
    return _window_apply(a, w, _rank_last)


def ema(a: np.ndarray, w: int) -> np.ndarray:
    """Exponential average, alpha = 2/(w+1), seeded by the first value; NaN bars skip."""
    x = _f64(a)
    alpha = 2.0 / (w + 1.0)
    e = NAN
    out = np.full(len(x), NAN)
    for t in range(len(x)):
        v = x[t]
        if math.isnan(v):
            continue
        e = v if math.isnan(e) else alpha * v + (1.0 - alpha) * e
        out[t] = e
    return _out(out)


def gt(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (_f64(a) > _f64(b)).astype(F32)


def lt(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (_f64(a) < _f64(b)).astype(F32)


def cross_above(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x, y = _f64(a), _f64(b)
    out = np.zeros(len(x), dtype=F32)
    out[1:] = (x[1:] > y[1:]) & (x[:-1] <= y[:-1])
    return out


def cross_below(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x, y = _f64(a), _f64(b)
    out = np.zeros(len(x), dtype=F32)
    out[1:] = (x[1:] < y[1:]) & (x[:-1] >= y[:-1])
    return out


def logical_and(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((_f64(a) > 0.5) & (_f64(b) > 0.5)).astype(F32)


def logical_or(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((_f64(a) > 0.5) | (_f64(b) > 0.5)).astype(F32)


def logical_not(a: np.ndarray) -> np.ndarray:
    return (~(_f64(a) > 0.5)).astype(F32)


def in_regime(a: np.ndarray) -> np.ndarray:
    """1.0 while the regime one-hot column is set (NaN, i.e. unknown, is not in it)."""
    return (_f64(a) > 0.5).astype(F32)


def if_then_else(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(_f64(c) > 0.5, a, b).astype(F32)


def positions(output: np.ndarray, long_only: bool) -> np.ndarray:
    """Target position per bar from a tree's output: its sign, flat where NaN."""
    pos = np.nan_to_num(np.sign(_f64(output)), nan=0.0)
    return np.maximum(pos, 0.0) if long_only else pos


def evaluate_tree(tree: list, features: dict[str, np.ndarray], n: int) -> np.ndarray:  # type: ignore[type-arg]
    """Plain recursive evaluation of a DEAP tree: every node computed by the functions above,
    no caching, no compilation. ``features`` maps input terminal values (column terminal
    names) to float32 arrays."""
    from deap import gp

    pos = 0

    def walk() -> object:
        nonlocal pos
        node = tree[pos]
        pos += 1
        if isinstance(node, gp.Primitive):
            args = [walk() for _ in range(node.arity)]
            return _FUNCS[node.name](*args)
        name = node.name
        if name[:1] in "wl" and name[1:].isdigit():
            return int(name[1:])
        if name in ("true", "false"):
            return np.full(n, 1.0 if name == "true" else 0.0, dtype=F32)
        if isinstance(node.value, str):  # an input column
            return np.asarray(features[node.value], dtype=F32)
        return np.full(n, node.value, dtype=F32)

    out = walk()
    assert isinstance(out, np.ndarray)
    return out


_FUNCS = {
    "add": add, "sub": sub, "mul": mul, "div": div, "min": minimum, "max": maximum,
    "neg": neg, "abs": absolute, "sign": sign, "lag": lag, "diff": diff,
    "ts_mean": ts_mean, "ts_std": ts_std, "ts_min": ts_min, "ts_max": ts_max,
    "ts_zscore": ts_zscore, "ts_rank": ts_rank, "ema": ema, "gt": gt, "lt": lt,
    "cross_above": cross_above, "cross_below": cross_below, "and_": logical_and,
    "or_": logical_or, "not_": logical_not, "if_then_else": if_then_else,
    "in_regime": in_regime,
}
